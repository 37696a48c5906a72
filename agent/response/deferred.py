# SPDX-License-Identifier: Apache-2.0
"""Actions the budget refused (``agent.response.budget``): queued after their verdict, applied on
the action worker when the workload's budget frees, escalated when they waited too long.

``after_finding`` runs right after the engine's verdict (the budget remembers which finding it
refused); ``tick`` runs on the response's sweep timer: expired and overflowing items become an
escalation finding (stored and sent to the outputs, never acted on: source ``operator``,
detector ``RG-BUDGET``), due items are applied by the worker with the engine's ``execute`` (idempotent:
a container isolated meanwhile stays as it is), with their incident raised to the action.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import structlog

from agent.findings import Finding, Severity, Source
from agent.response.budget import Deferred, ResponseBudget
from agent.response.fastpath import ActionWorker
from agent.response.model import VerdictRecord

if TYPE_CHECKING:
    from agent.response.engine import ResponseEngine

log = structlog.get_logger("agent.response")

ESCALATION_DETECTOR = "RG-BUDGET"


class DeferredActions:
    """The budget's queue, carried out: retries on the worker, escalations to the operator."""

    def __init__(self, engine: ResponseEngine, budget: ResponseBudget, worker: ActionWorker) -> None:
        self.engine = engine
        self.budget = budget
        self.worker = worker

    def after_finding(self, finding: Finding) -> None:
        """Queue the action the budget refused for ``finding``, if it refused one."""
        d = self.budget.defer(finding.id)
        if d is not None:
            log.info(
                "response_action_queued",
                container_id=finding.container_id,
                workload=d.workload,
                action=str(d.action),
                reason=d.reason,
            )

    def tick(self, now: float | None = None) -> None:
        """Escalate what waited too long, hand what is due to the worker."""
        now = time.time() if now is None else now
        for d in self.budget.overflow() + self.budget.expired(now):
            self.escalate(d, now)
        for d in self.budget.due(now):
            self.worker.submit(lambda d=d: self.apply(d, now))  # type: ignore[misc]

    def apply(self, d: Deferred, queued_until: float) -> None:
        """Apply a queued action now that its budget freed (the worker's job)."""
        engine = self.engine
        c, _target = engine.guards.resolve(d.finding.container)
        if c is None:
            log.info("response_queued_action_dropped", container_id=d.finding.container_id, why="container gone")
            return
        waited = round(queued_until - d.queued, 1)
        rec = engine.execute(
            c,
            str(d.action),
            actor=f"policy:{d.finding.detector_id} (queued)",
            reason=f"{d.reason}; applied after {waited}s",
            finding=d.finding,
        )
        incident = engine.policy.incidents.get(c.id)
        if incident is not None:
            incident.action = d.action  # later findings of this incident join it
        log.info("response_queued_action_applied", container_id=c.id, action=str(d.action), phase=rec.phase)

    def escalate(self, d: Deferred, now: float) -> None:
        """Tell the operator an action waited past ``retry_seconds`` (or the queue overflowed)."""
        engine = self.engine
        waited = round(now - d.queued, 1)
        ref = d.finding.container
        finding = Finding(
            container=ref,
            source=Source.OPERATOR,
            detector_id=ESCALATION_DETECTOR,
            severity=Severity.HIGH,
            summary=(
                f"{d.action} of {ref.name if ref else 'host'} held {waited}s by the response budget "
                f"({d.reason}); an operator must decide"
            ),
            evidence={"deferred_finding": d.finding.id, "detector_id": d.finding.detector_id, "workload": d.workload},
        )
        verdict = VerdictRecord(id=uuid.uuid4().hex, action="alert", enforce=False, reason="escalated by the budget")
        engine.records.save_finding(finding, verdict)
        engine._emit_finding(finding, verdict.to_dict(), None)
        log.warning(
            "response_action_escalated",
            container_id=d.finding.container_id,
            action=str(d.action),
            workload=d.workload,
            waited_seconds=waited,
        )
