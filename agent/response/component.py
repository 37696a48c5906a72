# SPDX-License-Identifier: Apache-2.0
"""The ``response`` component: wires the engine to the buses, the registry and the control socket.

Consumes findings (``ctx.findings``) and events (``ctx.events``, kept per container for evidence);
registers the control methods ``findings``, ``isolate``, ``release`` and ``actions``; reconciles the
records at start and again for each container the registry discovers later.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import structlog

from agent.context import AgentContext, FindingSink
from agent.findings import Finding, Severity
from agent.pipeline import Periodic
from agent.response.budget import BudgetCollector, ResponseBudget
from agent.response.deferred import DeferredActions
from agent.response.engine import ResponseEngine
from agent.response.fastpath import ActionWorker, FastPath
from agent.response.observeplan import plan_observed
from agent.response.plans import register_control as register_plans_control
from agent.runtime.model import Container

log = structlog.get_logger("agent.response")

SWEEP_SECONDS = 0.5


class ResponseComponent:
    """Findings → verdicts → recorded actions, and the operator's isolate/release."""

    name = "response"

    def __init__(self, ctx: AgentContext, outputs: FindingSink | None = None) -> None:
        self.ctx = ctx
        self.engine = ResponseEngine(ctx, kube=_kube(ctx))
        # The engine sends each finding (with verdict and action) and each action result to the
        # outputs (``agent.outputs.component.Outputs``) itself.
        self.engine.outputs = outputs
        # The in-kernel first response's fast path (``agent.response.fastpath``): handed to the
        # eBPF source by ``agent.wiring``; its outputs and evidence run on the worker.
        self.worker = ActionWorker()
        self.fast = FastPath(self.engine, self.worker, _allowances(ctx))
        # Budgets per workload and severity (``agent.response.budget``): the policy asks it for
        # every enforced action; refused ones are queued and retried or escalated.
        self.budget = ResponseBudget(ctx.config.response.budget)
        self.engine.policy.budget = self.budget
        self.deferred = DeferredActions(self.engine, self.budget, self.worker)
        ctx.metrics.register(BudgetCollector(self.budget))
        self._sweeps = 0
        self._timer = Periodic("response-sweep", SWEEP_SECONDS, self._sweep)

    def start(self, ctx: AgentContext) -> None:
        engine = self.engine
        reconciled = engine.reconcile()
        if reconciled:
            log.info("response_reconciled", records=len(reconciled), isolations=len(engine.isolations()))
        ctx.control("findings", self._findings)
        ctx.control("isolate", self._isolate)
        ctx.control("release", self._release)
        ctx.control("actions", self._actions)
        register_plans_control(ctx)
        self.worker.start()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop(2)
        self.worker.stop()

    def status(self) -> Mapping[str, Any]:
        return {
            "state": "running",
            "mode": self.ctx.config.response.mode,
            "dry_run": self.ctx.config.response.dry_run,
            "isolations": self.engine.isolations(),
            "counters": dict(self.engine.counters),
            "kernel_stop": self.fast.status(),
            "budget": self.budget.status(time.time()),
        }

    # --- internals -----------------------------------------------------------------------
    def on_finding(self, finding: Finding) -> None:
        """Findings bus handler: verdict and action for ``finding`` (queued when over budget)."""
        verdict = self.engine.on_finding(finding)
        plan_observed(self.ctx, finding, verdict)  # observe mode: the plan is shown, not applied
        self.deferred.after_finding(finding)

    def on_container(self, what: str, c: Container) -> None:
        """Registry handler: reconcile a container's records when it appears, forget it when gone."""
        try:
            if what == "added":
                self.engine.reconcile(c.id)
            elif what == "removed":
                self.engine.forget(c.id)
        except Exception as exc:  # never break discovery
            log.error("response_reconcile_failed", container_id=c.id, error=repr(exc))

    def _sweep(self) -> None:
        self._sweeps += 1
        try:
            self.deferred.tick()
        except Exception as exc:
            log.error("response_budget_tick_failed", error=repr(exc))
        try:
            # Costly checks (a quarantine's table: entering a netns) run every 10th sweep.
            self.engine.sweep(full=self._sweeps % 10 == 0)
        except Exception as exc:
            log.error("response_sweep_failed", error=repr(exc))

    # --- control methods -----------------------------------------------------------------
    def _findings(self, params: Mapping[str, Any]) -> list[dict[str, Any]] | dict[str, Any]:
        """Stored findings (newest first) for the filters in ``params``; with ``with_total``,
        ``{"findings": [...], "total": N}`` so a cut list can say "N of M"."""
        severity = params.get("severity")
        try:
            min_sev = int(Severity.parse(str(severity))) if severity else None
        except KeyError:
            raise ValueError(f"unknown severity {severity!r} (info, low, medium, high, critical)") from None
        try:
            limit = int(params.get("limit", 100))
            since = float(params.get("since", 0))
        except (TypeError, ValueError):
            raise ValueError("limit and since must be numbers") from None
        container, source = str(params.get("container") or ""), str(params.get("source") or "")
        records = self.engine.records
        rows = [f.to_dict() for f in records.findings(container, source, min_sev, limit, since)]
        if not params.get("with_total"):
            return rows
        total = len(rows) if len(rows) < limit else records.count_findings(container, source, min_sev, since)
        return {"findings": rows, "total": total}

    def _isolate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cid = str(params.get("id") or "")
        if not cid:
            raise ValueError("isolate needs a container id")
        return self.engine.isolate(
            cid,
            str(params.get("action") or "freeze"),
            actor=str(params.get("actor") or "operator"),
            method=str(params.get("method") or ""),
            dry_run=bool(params.get("dry_run", False)),
        ).to_dict()

    def _release(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        cid = str(params.get("id") or "")
        if not cid:
            raise ValueError("release needs a container id")
        return [r.to_dict() for r in self.engine.release(cid, actor=str(params.get("actor") or "operator"))]

    def _actions(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        records = self.engine.records
        out = records.actions(str(params.get("container") or ""), int(params.get("limit", 100)))
        return [{**rec.to_dict(), "history": [h.to_dict() for h in records.history(rec.id)]} for rec in out]


def _allowances(ctx: AgentContext) -> Any:
    """The images' learned allowances (the kernel's exec rule needs them), when learned."""
    if not ctx.config.detectors.learned_allowances:
        return None
    from agent.behavior.allowances import Allowances

    return Allowances(ctx.store, ctx.config.behavior)


def _kube(ctx: AgentContext) -> Any:
    if not ctx.config.kubernetes.enabled:
        return None
    try:
        from agent.response.patch import kube_client

        return kube_client(ctx)
    except Exception as exc:  # KubeError: configured but unreachable; quarantine falls back
        log.error("kubernetes_unavailable", error=str(exc))
        return None


def build(ctx: AgentContext, outputs: FindingSink | None = None) -> ResponseComponent | None:
    """The response component reporting to ``outputs``, or None when ``response.enabled`` is false."""
    if not ctx.config.response.enabled:
        return None
    return ResponseComponent(ctx, outputs)
