# SPDX-License-Identifier: Apache-2.0
"""The response engine: finding → verdict (``agent.policy``) → recorded action → result.

Every action is recorded before it is applied (``intended``), then ``applied`` and ``confirmed``
by reading the effect back; at start-up ``reconcile`` completes or rolls back whatever a crash
interrupted, and re-asserts isolations recorded as in effect (a container frozen before the
crash stays frozen, and ``status``/``actions`` show it). Releases happen only through
``release`` (an operator via ``riskguardctl release`` or an explicit rule naming itself as the
actor). The engine never acts on a container outside ``ctx.registry``, on the host, on the
agent's own cgroup, or on a container labelled exempt (``agent.response.guards``).

What an action does is its handler's business (``agent.response.handlers``: one per action,
looked up by name in a table): the engine knows no action by name.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from agent.context import AgentContext, FindingSink
from agent.events import Event
from agent.findings import Finding, Severity, Source, Verdict
from agent.policy import PolicyState, decide, incident_id
from agent.response.evidence import connections_of, event_dict, evidence_snapshot
from agent.response.guards import Guards
from agent.response.handlers import ActionHandler, Done, HandlerDeps, HandlerFactory, Outcome, Request, build_handlers
from agent.response.model import IN_PLACE, ActionRecord, VerdictRecord
from agent.response.records import Records
from agent.runtime.model import Container

if TYPE_CHECKING:
    from agent.response.kube import KubeClient

log = structlog.get_logger("agent.response")

IntentObserver = Callable[[str, Container, str], None]
# What ``isolations`` shows of each record (plus the handler's ``view``).
ISOLATION_FIELDS = ("id", "container_id", "container_name", "action", "method", "phase", "actor", "created")


class ResponseError(LookupError):
    """An isolate/release request that cannot be carried out (reported to the operator)."""


class ResponseEngine:
    """Decides on findings and carries out (and records) the actions of its handler table."""

    def __init__(
        self,
        ctx: AgentContext,
        kube: KubeClient | None = None,
        handlers: Mapping[str, HandlerFactory] | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.config.response
        self.records = Records(ctx.store)
        self.policy = PolicyState()
        self.kube = kube
        self.handlers: dict[str, ActionHandler] = build_handlers(HandlerDeps(ctx=ctx, kube=kube), handlers)
        self.guards = Guards(ctx.paths, ctx.registry, self.settings)
        self.counters: Counter[str] = Counter()
        self.intent_observers: list[IntentObserver] = []
        self._recent: dict[str, deque[Event]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._decide_lock = threading.Lock()
        # The outputs component (``agent.outputs``), when attached: findings with their verdicts
        # and every action result go out through it.
        self.outputs: FindingSink | None = None

    # --- facts ---------------------------------------------------------------------------
    def isolation_actions(self) -> list[str]:
        """Names of the actions that isolate a container (what ``isolate`` accepts)."""
        return [name for name, h in self.handlers.items() if h.isolation]

    def _lock(self, container_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(container_id, threading.Lock())

    # --- outputs -------------------------------------------------------------------------
    def _emit_finding(self, finding: Finding, verdict: Verdict | Mapping[str, Any], rec: ActionRecord | None) -> None:
        if self.outputs is None:
            return
        try:
            self.outputs.emit_finding(finding, verdict, rec.output() if rec else None)
        except Exception as exc:  # an output problem never stops the response
            log.error("response_output_failed", error=repr(exc))

    def _emit_action(self, rec: ActionRecord, kind: str = "") -> None:
        if self.outputs is None:
            return
        try:
            self.outputs.emit_action(rec.output(kind))
        except Exception as exc:
            log.error("response_output_failed", error=repr(exc))

    # --- bus handlers --------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        """Keep the last few events of each container for evidence snapshots."""
        if ev.container is None or self.settings.evidence_events <= 0:
            return
        q = self._recent.get(ev.container.id)
        if q is None:
            q = self._recent.setdefault(ev.container.id, deque(maxlen=self.settings.evidence_events))
        q.append(ev)

    def on_finding(self, finding: Finding) -> Verdict:
        """Decide on ``finding``, store it with its verdict, and carry the verdict out."""
        c, target = self.guards.resolve(finding.container)
        with self._decide_lock:
            verdict = decide(finding, self.settings, self.policy, time.time(), target)
            incident = incident_id(self.policy, finding.container_id)
        self.counters[f"verdict_{verdict.action}"] += 1
        self.records.save_finding(finding, VerdictRecord.of(verdict, incident=incident))
        rec: ActionRecord | None = None
        if verdict.enforce and c is not None and str(verdict.action) in self.handlers:
            try:
                rec = self.execute(
                    c,
                    verdict.action,
                    actor=f"policy:{finding.detector_id}",
                    reason=verdict.reason,
                    finding=finding,
                    verdict=verdict,
                )
                if rec.phase != "confirmed" or rec.finding_id != finding.id:
                    # Failed, or an isolation already in place (idempotent): say which record.
                    self.records.set_finding_verdict(
                        finding.id, VerdictRecord.of(verdict, incident=incident, action_id=rec.id, result=rec.phase)
                    )
            except ResponseError as exc:
                log.warning("response_refused", container_id=c.id, action=str(verdict.action), reason=str(exc))
        # Every finding reaches the outputs, with its verdict: also one that joined an open
        # incident or stayed below the alert threshold (verdict "none").
        self._emit_finding(finding, verdict, rec)
        return verdict

    # --- actions -------------------------------------------------------------------------
    def _handler(self, action: str) -> ActionHandler:
        handler = self.handlers.get(str(action))
        if handler is None:
            raise ResponseError(f"no such action {action}")
        return handler

    def execute(
        self,
        c: Container,
        action: str,
        *,
        actor: str,
        reason: str,
        finding: Finding | None = None,
        verdict: Verdict | None = None,
        method: str = "",
        dry_run: bool | None = None,
    ) -> ActionRecord:
        """Record, apply and confirm ``action`` on ``c``; returns the action record."""
        handler = self._handler(action)
        refusal = self.guards.refusal(*self.guards.resolve(c.id))
        if refusal:
            self.counters["refused"] += 1
            raise ResponseError(f"refusing to {handler.name} {c.short_id}: {refusal}")
        dry = self.settings.dry_run if dry_run is None else dry_run
        method = method or handler.default_method
        with self._lock(c.id):
            if handler.isolation and not dry:
                for rec in self.records.active(c.id):
                    if rec.action == handler.name and rec.phase in IN_PLACE:
                        return rec  # idempotent: already isolated this way
            late_connections = handler.evidence_after_apply
            evidence = (
                evidence_snapshot(
                    self.ctx.paths,
                    c,
                    [event_dict(e) for e in list(self._recent.get(c.id, ()))],
                    connections=not late_connections,
                )
                if handler.isolation
                else None
            )
            action_id = self.records.intend(
                container_id=c.id,
                container_name=c.name,
                image=c.image,
                init_pid=c.init_pid,
                action=handler.name,
                method=method,
                actor=actor,
                reason=reason,
                dry_run=dry,
                finding_id=finding.id if finding else "",
                verdict_id=verdict.id if verdict else "",
                evidence=evidence,
            )
            for observer in self.intent_observers:
                observer(action_id, c, handler.name)
            return self._apply(action_id, c, handler, method, dry, finding, reason, verdict, late_connections)

    def _apply(
        self,
        action_id: str,
        c: Container,
        handler: ActionHandler,
        method: str,
        dry: bool,
        finding: Finding | None,
        reason: str,
        verdict: Verdict | None = None,
        late_connections: bool = False,
    ) -> ActionRecord:
        action = handler.name
        result = handler.apply(Request(container=c, method=method, dry_run=dry, reason=reason, finding=finding))
        state = dict(result.state)
        used = handler.method_used(state, method)
        if not result.ok:
            self.records.advance(action_id, "failed", result.detail, state=state, active=False, method=used)
            self.counters[f"{action}_failed"] += 1
            log.error("response_action_failed", container_id=c.id, action=action, detail=result.detail)
        else:
            late = (
                {"ts": time.time(), "container_id": c.id, "connections": connections_of(self.ctx.paths, c)}
                if late_connections and not dry
                else None
            )
            verdict_record = (
                VerdictRecord.of(
                    verdict, incident=incident_id(self.policy, c.id), action_id=action_id, result="confirmed"
                )
                if verdict is not None and finding is not None
                else None
            )
            self.records.complete(
                action_id,
                result.detail,
                state,
                used,
                active=handler.isolation,
                evidence=late,
                finding_id=finding.id if finding else "",
                verdict=verdict_record,
            )
            self.counters[f"{action}_{'dry_run' if dry else 'confirmed'}"] += 1
            log.info(
                handler.applied_event,
                container_id=c.id,
                container_name=c.name,
                method=used,
                dry_run=dry,
                reason=reason,
            )
        rec = self.records.must_get(action_id)
        self._emit_action(rec)
        return rec

    # --- operator ------------------------------------------------------------------------
    def isolate(
        self,
        container: str,
        action: str = "freeze",
        actor: str = "operator",
        method: str = "",
        dry_run: bool = False,
    ) -> ActionRecord:
        """Isolate a container on request (any mode) with one of the isolation actions (freeze,
        quarantine); returns the action record."""
        handler = self.handlers.get(action)
        if handler is None or not handler.isolation:
            names = " or ".join(self.isolation_actions())
            raise ValueError(f"isolate: action must be {names}, not {action!r}")
        c, _target = self.guards.resolve(container)
        if c is None:
            raise ResponseError(f"no discovered container {container!r}")
        finding = Finding(
            container=c.ref(),
            source=Source.OPERATOR,
            detector_id="operator",
            severity=Severity.HIGH,
            summary=f"{handler.name} requested by {actor}",
        )
        rec = self.execute(
            c,
            handler.name,
            actor=actor,
            reason=f"{handler.name} requested by {actor}",
            finding=finding,
            method=method,
            dry_run=dry_run or None,
        )
        verdict = VerdictRecord(
            id=uuid.uuid4().hex,
            action=handler.name,
            enforce=not rec.dry_run,
            reason=f"requested by {actor}",
            action_id=rec.id,
            result=rec.phase,
        )
        self.records.save_finding(finding, verdict)
        self._emit_finding(finding, verdict.to_dict(), rec)
        return rec

    def release(self, container: str, actor: str = "operator") -> list[ActionRecord]:
        """Undo every isolation in effect on ``container`` (id, prefix or name)."""
        c = self.ctx.registry.get(container)
        cid = c.id if c is not None else container
        recs = self.records.active(cid)
        if not recs and c is None:
            hits = {r.container_id for r in self.records.active() if r.container_id.startswith(container)}
            hits |= {r.container_id for r in self.records.active() if r.container_name == container}
            if len(hits) == 1:
                recs = self.records.active(hits.pop())
        if not recs:
            raise ResponseError(f"nothing to release on {container!r}")
        out = []
        for rec in recs:
            with self._lock(rec.container_id):
                self.records.advance(rec.id, "release_intended", f"release by {actor}", active=True)
                out.append(self._release(rec, actor))
        # A new finding after a release starts a new incident.
        self.policy.incidents.pop(cid, None)
        return out

    def _release(self, rec: ActionRecord, actor: str) -> ActionRecord:
        handler = self.handlers.get(rec.action)
        result: Outcome
        if rec.phase == "intended" or not rec.state:
            result = Done(ok=True, detail="")  # never applied: nothing on the host to undo
        elif handler is None:
            result = Done(ok=False, detail=f"no handler for action {rec.action!r}")
        else:
            result = handler.release(rec)
        if result.ok:
            self.records.advance(rec.id, "released", f"by {actor}: {result.detail}", active=False)
            log.info("container_released", container_id=rec.container_id, action=rec.action, actor=actor)
        else:
            self.records.advance(rec.id, "confirmed", f"release failed: {result.detail}", active=True)
            log.error("container_release_failed", container_id=rec.container_id, detail=result.detail)
        got = self.records.must_get(rec.id)
        self._emit_action(got, kind=f"release_{rec.action}")
        return got

    # --- start-up and upkeep -------------------------------------------------------------
    def reconcile(self, container_id: str = "") -> list[ActionRecord]:
        """Complete or roll back interrupted actions and re-assert isolations in effect.

        With ``container_id``, only that container's records (called when the registry
        discovers it). Records whose container is not (yet) discovered are left pending; they
        are rolled back once the container is known to be gone.
        """
        touched: list[ActionRecord] = []
        for rec in self.records.pending():
            if container_id and rec.container_id != container_id:
                continue
            touched.append(self._reconcile_pending(rec))
        touched += [self._reconcile_confirmed(r) for r in self.records.active(container_id) if r.phase == "confirmed"]
        return touched

    def _reconcile_pending(self, rec: ActionRecord) -> ActionRecord:
        if rec.phase == "release_intended":
            log.info("release_completed_at_startup", container_id=rec.container_id, action_id=rec.id)
            return self._release(rec, "reconcile (release interrupted)")
        handler = self.handlers.get(rec.action)
        if handler is None:
            self.records.advance(rec.id, "rolled_back", f"no handler for action {rec.action!r}", active=False)
            return self.records.must_get(rec.id)
        c, target = self.guards.resolve(rec.container_id)
        if c is None:
            if handler.gone(rec):
                self.records.advance(rec.id, "rolled_back", "container gone before the action completed", active=False)
                log.warning("action_rolled_back", container_id=rec.container_id, action=rec.action, why="gone")
            return self.records.must_get(rec.id)
        refusal = self.guards.refusal(c, target)
        if refusal:
            self.records.advance(rec.id, "rolled_back", f"no longer allowed: {refusal}", active=False)
            return self.records.must_get(rec.id)
        if rec.phase == "applied" and rec.state and handler.is_applied(rec) is True:
            self.records.advance(rec.id, "confirmed", "confirmed at start-up", active=handler.isolation)
        else:
            log.info("action_completed_at_startup", container_id=c.id, action=rec.action, action_id=rec.id)
            with self._lock(c.id):
                self._apply(rec.id, c, handler, rec.method, rec.dry_run, None, "completed at start-up")
        return self.records.must_get(rec.id)

    def _reconcile_confirmed(self, rec: ActionRecord) -> ActionRecord:
        handler = self.handlers.get(rec.action)
        if handler is None or handler.is_applied(rec) is not False:
            return self.records.must_get(rec.id)
        with self._lock(rec.container_id):
            # Read again under the container's lock: an operator's release between the sweep's
            # read and this check undid the isolation on purpose, and must not be put back.
            now = self.records.must_get(rec.id)
            if not now.active or now.phase != "confirmed" or handler.is_applied(now) is not False:
                return now
            if handler.gone(now):
                self.records.advance(now.id, "gone", "container exited while isolated", active=False)
            else:
                c, target = self.guards.resolve(now.container_id)
                if c is not None and not self.guards.refusal(c, target):
                    # Someone undid the isolation behind our back (docker unpause, nft flush):
                    # only an operator or a rule releases, so put it back.
                    log.warning("isolation_reasserted", container_id=c.id, action=now.action)
                    self._apply(now.id, c, handler, now.method, False, None, "re-asserted")
        return self.records.must_get(rec.id)

    def sweep(self, full: bool = False) -> None:
        """Periodic upkeep of the isolations in effect: re-assert the ones undone behind our back
        (checked every time when the handler's check is cheap, e.g. a freeze that ``docker
        unpause`` undid, else only with ``full``), then the handler's own ``reconcile`` (e.g.
        re-home late processes of a v1 net_cls quarantine)."""
        for rec in self.records.active():
            if rec.phase != "confirmed" or rec.dry_run:
                continue
            handler = self.handlers.get(rec.action)
            if handler is None:
                continue
            if (handler.check_every_sweep or full) and handler.is_applied(rec) is False:
                self._reconcile_confirmed(rec)
                continue
            c = self.ctx.registry.get(rec.container_id)
            if c is not None:
                handler.reconcile(rec, c)

    def forget(self, container_id: str) -> None:
        """A container left the registry: drop its cached events and close its records."""
        self._recent.pop(container_id, None)
        for rec in self.records.active(container_id):
            handler = self.handlers.get(rec.action)
            if rec.phase == "confirmed" and handler is not None and handler.gone(rec):
                self.records.advance(rec.id, "gone", "container exited while isolated", active=False)
                log.info("isolated_container_gone", container_id=container_id, action=rec.action)

    # --- views ---------------------------------------------------------------------------
    def isolations(self) -> list[dict[str, Any]]:
        """Isolations in effect, with their state read back now (e.g. the freezer's)."""
        out = []
        for rec in self.records.active():
            item: dict[str, Any] = {k: getattr(rec, k) for k in ISOLATION_FIELDS}
            handler = self.handlers.get(rec.action)
            if handler is not None:
                item.update(handler.view(rec))
            out.append(item)
        return out
