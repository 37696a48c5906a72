# SPDX-License-Identifier: Apache-2.0
"""The response engine: finding → verdict (``agent.policy``) → recorded action → result.

Every action is recorded before it is applied (``intended``), then ``applied`` and ``confirmed``
by reading the effect back; at start-up ``reconcile`` completes or rolls back whatever a crash
interrupted, and re-asserts isolations recorded as in effect (a container frozen before the
crash stays frozen, and ``status``/``actions`` show it). Releases happen only through
``release`` (an operator via ``riskguardctl release`` or an explicit rule naming itself as the
actor). The engine never acts on a container outside ``ctx.registry``, on the host, on the
agent's own cgroup, or on a container labelled exempt.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from agent.context import AgentContext
from agent.events import ContainerRef, Event
from agent.findings import Action, ActionResult, Finding, Severity, Source, Verdict
from agent.policy import PolicyState, Target, decide, incident_id
from agent.response import freeze as freezer
from agent.response import quarantine
from agent.response.records import Records
from agent.runtime.cgroups import read_proc_cgroup
from agent.runtime.model import Container

log = structlog.get_logger("agent.response")

ISOLATIONS = (Action.FREEZE, Action.QUARANTINE)
IntentObserver = Callable[[str, Container, Action], None]


class ResponseError(LookupError):
    """An isolate/release request that cannot be carried out (reported to the operator)."""


def _event_dict(ev: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": ev.kind}
    for f in dataclasses.fields(ev):
        if f.name == "container":
            continue
        v = getattr(ev, f.name)
        if isinstance(v, str | int | float | bool) or v is None:
            out[f.name] = v
        elif isinstance(v, tuple | list | frozenset | set):
            out[f.name] = [x if isinstance(x, str | int | float) else str(x) for x in list(v)[:32]]
    return out


def _action_out(rec: Mapping[str, Any], kind: str = "") -> dict[str, Any]:
    """An action record as the outputs take it (``kind``, ``ok``, ``detail`` …)."""
    phase = str(rec.get("phase", ""))
    return {
        "kind": kind or str(rec.get("action", "")),
        "action_id": rec.get("id", ""),
        "container_id": rec.get("container_id", ""),
        "container_name": rec.get("container_name", ""),
        "method": rec.get("method", ""),
        "actor": rec.get("actor", ""),
        "phase": phase,
        "ok": phase in ("confirmed", "released"),
        "detail": rec.get("detail", ""),
        "dry_run": bool(rec.get("dry_run")),
    }


class ResponseEngine:
    """Decides on findings and carries out (and records) freezes, quarantines and patch plans."""

    def __init__(self, ctx: AgentContext, kube: Any = None) -> None:
        self.ctx = ctx
        self.settings = ctx.config.response
        self.records = Records(ctx.store)
        self.policy = PolicyState()
        self.kube = kube
        self.counters: Counter[str] = Counter()
        self.intent_observers: list[IntentObserver] = []
        self._recent: dict[str, deque[Event]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._decide_lock = threading.Lock()
        self._own_cgroups = self._agent_cgroups()
        # The outputs component (``agent.outputs``), when attached: findings with their verdicts
        # and every action result go out through it.
        self.outputs: Any = None

    # --- facts ---------------------------------------------------------------------------
    def _agent_cgroups(self) -> list[tuple[str, str]]:
        """(hierarchy, path) of the agent's own cgroups: a container holding them is the agent."""
        try:
            cg = read_proc_cgroup(self.ctx.paths, os.getpid())
        except Exception:
            return []
        own = [(k, v) for k, v in cg.v1.items() if k == "freezer"]
        if cg.v2 is not None:
            own.append(("v2", cg.v2))
        return own

    def _is_agent(self, c: Container) -> bool:
        if c.init_pid == os.getpid():
            return True
        for hierarchy, path in self._own_cgroups:
            mine = c.cgroup_v2 if hierarchy == "v2" else c.cgroup_v1.get(hierarchy, "")
            if mine.strip("/") and (path == mine or path.startswith(mine.rstrip("/") + "/")):
                return True
        return False

    def resolve(self, ref: ContainerRef | str | None) -> tuple[Container | None, Target]:
        """The registry's record of a finding's container and the facts the policy needs."""
        if ref is None:
            return None, Target(known=False, is_host=True)
        cid = ref.id if isinstance(ref, ContainerRef) else ref
        c = self.ctx.registry.get(cid)
        if c is None or (isinstance(ref, ContainerRef) and c.id != ref.id):
            return None, Target(known=False)
        is_host = not c.cgroup_v2.strip("/") and not c.cgroup_v1.get("freezer", "").strip("/")
        return c, Target(known=True, is_agent=self._is_agent(c), is_host=is_host)

    def refusal(self, c: Container | None, target: Target) -> str:
        """Why the engine must not act on this container ('' when it may)."""
        if c is None or not target.known:
            return "not a discovered container"
        if target.is_host:
            return "the host"
        if target.is_agent:
            return "the agent itself"
        if c.labels.get(self.settings.exempt_label, "").lower() == "true":
            return f"labelled {self.settings.exempt_label}=true"
        return ""

    def _lock(self, container_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(container_id, threading.Lock())

    # --- outputs -------------------------------------------------------------------------
    def _emit_finding(self, finding: Finding, verdict: Verdict, rec: Mapping[str, Any] | None) -> None:
        if self.outputs is None:
            return
        try:
            self.outputs.emit_finding(finding, verdict, _action_out(rec) if rec else None)
        except Exception as exc:  # an output problem never stops the response
            log.error("response_output_failed", error=repr(exc))

    def _emit_action(self, rec: Mapping[str, Any], kind: str = "") -> None:
        if self.outputs is None:
            return
        try:
            self.outputs.emit_action(_action_out(rec, kind))
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
        c, target = self.resolve(finding.container)
        with self._decide_lock:
            verdict = decide(finding, self.settings, self.policy, time.time(), target)
            incident = incident_id(self.policy, finding.container_id)
        self.counters[f"verdict_{verdict.action}"] += 1
        self.records.save_finding(finding, verdict, {"incident": incident})
        rec: dict[str, Any] | None = None
        if verdict.enforce and c is not None and verdict.action in (*ISOLATIONS, Action.PATCH):
            try:
                rec = self.execute(
                    c,
                    verdict.action,
                    actor=f"policy:{finding.detector_id}",
                    reason=verdict.reason,
                    finding=finding,
                    verdict=verdict,
                )
                if rec["phase"] != "confirmed" or rec["finding_id"] != finding.id:
                    # Failed, or an isolation already in place (idempotent): say which record.
                    self.records.set_finding_verdict(
                        finding.id,
                        {
                            "id": verdict.id,
                            "action": str(verdict.action),
                            "enforce": True,
                            "reason": verdict.reason,
                            "incident": incident,
                            "action_id": rec["id"],
                            "result": rec["phase"],
                        },
                    )
            except ResponseError as exc:
                log.warning("response_refused", container_id=c.id, action=str(verdict.action), reason=str(exc))
        # Every finding reaches the outputs, with its verdict: also one that joined an open
        # incident or stayed below the alert threshold (verdict "none").
        self._emit_finding(finding, verdict, rec)
        return verdict

    # --- actions -------------------------------------------------------------------------
    def execute(
        self,
        c: Container,
        action: Action,
        *,
        actor: str,
        reason: str,
        finding: Finding | None = None,
        verdict: Verdict | None = None,
        method: str = "",
        dry_run: bool | None = None,
    ) -> dict[str, Any]:
        """Record, apply and confirm ``action`` on ``c``; returns the action record."""
        refusal = self.refusal(*self.resolve(c.id))
        if refusal:
            self.counters["refused"] += 1
            raise ResponseError(f"refusing to {action} {c.short_id}: {refusal}")
        dry = self.settings.dry_run if dry_run is None else dry_run
        if action == Action.FREEZE:
            method = method or self.settings.freezer
        elif action == Action.QUARANTINE:
            method = method or self.settings.quarantine
        with self._lock(c.id):
            if action in ISOLATIONS and not dry:
                for rec in self.records.active(c.id):
                    if rec["action"] == str(action) and rec["phase"] in ("confirmed", "applied", "intended"):
                        return rec  # idempotent: already isolated this way
            late_connections = action == Action.FREEZE and self.settings.evidence_connections == "after_freeze"
            evidence = (
                freezer.evidence_snapshot(
                    self.ctx.paths,
                    c,
                    [_event_dict(e) for e in list(self._recent.get(c.id, ()))],
                    connections=not late_connections,
                )
                if action in ISOLATIONS
                else None
            )
            action_id = self.records.intend(
                container_id=c.id,
                container_name=c.name,
                image=c.image,
                init_pid=c.init_pid,
                action=str(action),
                method=method,
                actor=actor,
                reason=reason,
                dry_run=dry,
                finding_id=finding.id if finding else "",
                verdict_id=verdict.id if verdict else "",
                evidence=evidence,
            )
            for observer in self.intent_observers:
                observer(action_id, c, action)
            return self._apply(action_id, c, action, method, dry, finding, reason, verdict, late_connections)

    def _apply(
        self,
        action_id: str,
        c: Container,
        action: Action,
        method: str,
        dry: bool,
        finding: Finding | None,
        reason: str,
        verdict: Verdict | None = None,
        late_connections: bool = False,
    ) -> dict[str, Any]:
        result = self._do(c, action, method, dry, finding, reason)
        state = dict(result.state)
        used = str(state.get("method") or state.get("freezer") or method)
        if not result.ok:
            self.records.advance(action_id, "failed", result.detail, state=state, active=False, method=used)
            self.counters[f"{action}_failed"] += 1
            log.error("response_action_failed", container_id=c.id, action=str(action), detail=result.detail)
        else:
            late = (
                {"ts": time.time(), "container_id": c.id, "connections": freezer.connections_of(self.ctx.paths, c)}
                if late_connections and not dry
                else None
            )
            verdict_record = (
                {
                    "id": verdict.id,
                    "action": str(action),
                    "enforce": True,
                    "reason": verdict.reason,
                    "incident": incident_id(self.policy, c.id),
                    "action_id": action_id,
                    "result": "confirmed",
                }
                if verdict is not None and finding is not None
                else None
            )
            self.records.complete(
                action_id,
                result.detail,
                state,
                used,
                active=action in ISOLATIONS,
                evidence=late,
                finding_id=finding.id if finding else "",
                verdict=verdict_record,
            )
            self.counters[f"{action}_{'dry_run' if dry else 'confirmed'}"] += 1
            log.info(
                "container_frozen" if action == Action.FREEZE else f"container_{action}_applied",
                container_id=c.id,
                container_name=c.name,
                method=used,
                dry_run=dry,
                reason=reason,
            )
        rec = self.records.get(action_id)
        assert rec is not None
        self._emit_action(rec)
        return rec

    def _do(
        self, c: Container, action: Action, method: str, dry: bool, finding: Finding | None, reason: str
    ) -> ActionResult:
        if action == Action.FREEZE:
            return freezer.freeze(self.ctx.paths, c, method, self.settings.freeze_timeout_seconds, dry)
        if action == Action.QUARANTINE:
            return quarantine.apply(
                self.ctx.paths,
                c,
                method,
                self.settings.quarantine_cgroup,
                dry,
                kube=self.kube,
                reason=reason,
            )
        if action == Action.PATCH:
            from agent.response.patch import plan_for

            plan = plan_for(self.ctx, c, [finding] if finding else [], kube=self.kube)
            d = plan.to_dict()
            return ActionResult(
                action=Action.PATCH,
                container_id=c.id,
                ok=True,
                detail=f"patch plan {d.get('id', '')}: {d.get('status', '')}",
                state={"method": "plan", "plan_id": d.get("id", "")},
            )
        return ActionResult(action=action, container_id=c.id, ok=False, detail=f"no such action {action}")

    # --- operator ------------------------------------------------------------------------
    def isolate(
        self,
        container: str,
        action: str = "freeze",
        actor: str = "operator",
        method: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Freeze or quarantine a container on request (any mode); returns the action record."""
        act = Action(action)
        if act not in ISOLATIONS:
            raise ValueError(f"isolate: action must be freeze or quarantine, not {action!r}")
        c, _target = self.resolve(container)
        if c is None:
            raise ResponseError(f"no discovered container {container!r}")
        finding = Finding(
            container=c.ref(),
            source=Source.OPERATOR,
            detector_id="operator",
            severity=Severity.HIGH,
            summary=f"{act} requested by {actor}",
        )
        rec = self.execute(
            c,
            act,
            actor=actor,
            reason=f"{act} requested by {actor}",
            finding=finding,
            method=method,
            dry_run=dry_run or None,
        )
        verdict = Verdict(finding=finding, action=act, enforce=not rec["dry_run"], reason=f"requested by {actor}")
        self.records.save_finding(finding, verdict, {"action_id": rec["id"], "result": rec["phase"]})
        self._emit_finding(finding, verdict, rec)
        return rec

    def release(self, container: str, actor: str = "operator") -> list[dict[str, Any]]:
        """Undo every isolation in effect on ``container`` (id, prefix or name)."""
        c = self.ctx.registry.get(container)
        cid = c.id if c is not None else container
        recs = self.records.active(cid)
        if not recs and c is None:
            hits = {r["container_id"] for r in self.records.active() if r["container_id"].startswith(container)}
            hits |= {r["container_id"] for r in self.records.active() if r["container_name"] == container}
            if len(hits) == 1:
                recs = self.records.active(hits.pop())
        if not recs:
            raise ResponseError(f"nothing to release on {container!r}")
        out = []
        for rec in recs:
            with self._lock(rec["container_id"]):
                self.records.advance(rec["id"], "release_intended", f"release by {actor}", active=True)
                out.append(self._release(rec, actor))
        # A new finding after a release starts a new incident.
        self.policy.incidents.pop(cid, None)
        return out

    def _release(self, rec: Mapping[str, Any], actor: str) -> dict[str, Any]:
        state = rec["state"]
        if rec["phase"] in ("intended",) or not state:
            # Never applied: nothing on the host to undo.
            result = ActionResult(action=Action(rec["action"]), container_id=rec["container_id"], ok=True, detail="")
        elif rec["action"] == str(Action.FREEZE):
            result = freezer.thaw(self.ctx.paths, rec["container_id"], state)
        else:
            result = quarantine.release(
                self.ctx.paths, rec["container_id"], int(rec["init_pid"]), state, kube=self.kube
            )
        if result.ok:
            self.records.advance(rec["id"], "released", f"by {actor}: {result.detail}", active=False)
            log.info("container_released", container_id=rec["container_id"], action=rec["action"], actor=actor)
        else:
            self.records.advance(rec["id"], "confirmed", f"release failed: {result.detail}", active=True)
            log.error("container_release_failed", container_id=rec["container_id"], detail=result.detail)
        got = self.records.get(rec["id"])
        assert got is not None
        self._emit_action(got, kind=f"release_{rec['action']}")
        return got

    # --- start-up ------------------------------------------------------------------------
    def reconcile(self, container_id: str = "") -> list[dict[str, Any]]:
        """Complete or roll back interrupted actions and re-assert isolations in effect.

        With ``container_id``, only that container's records (called when the registry
        discovers it). Records whose container is not (yet) discovered are left pending; they
        are rolled back once the container is known to be gone.
        """
        touched: list[dict[str, Any]] = []
        for rec in self.records.pending():
            if container_id and rec["container_id"] != container_id:
                continue
            touched.append(self._reconcile_pending(rec))
        for rec in self.records.active(container_id):
            if rec["phase"] == "confirmed":
                touched.append(self._reconcile_confirmed(rec))
        return touched

    def _gone(self, rec: Mapping[str, Any]) -> bool:
        pid = int(rec["init_pid"])
        state = rec["state"] or {}
        if rec["action"] == str(Action.FREEZE) and state.get("cgroup"):
            return freezer.current_state(self.ctx.paths, state) == "gone"
        return not self.ctx.paths.pid_dir(pid).exists() if pid else True

    def _reconcile_pending(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        action = Action(rec["action"])
        if rec["phase"] == "release_intended":
            log.info("release_completed_at_startup", container_id=rec["container_id"], action_id=rec["id"])
            return self._release(rec, "reconcile (release interrupted)")
        c, target = self.resolve(rec["container_id"])
        if c is None:
            if self._gone(rec):
                self.records.advance(
                    rec["id"], "rolled_back", "container gone before the action completed", active=False
                )
                log.warning("action_rolled_back", container_id=rec["container_id"], action=str(action), why="gone")
            got = self.records.get(rec["id"])
            assert got is not None
            return got
        refusal = self.refusal(c, target)
        if refusal:
            self.records.advance(rec["id"], "rolled_back", f"no longer allowed: {refusal}", active=False)
            got = self.records.get(rec["id"])
            assert got is not None
            return got
        if rec["phase"] == "applied" and rec["state"] and self._in_effect(rec) is True:
            self.records.advance(rec["id"], "confirmed", "confirmed at start-up", active=action in ISOLATIONS)
        else:
            log.info("action_completed_at_startup", container_id=c.id, action=str(action), action_id=rec["id"])
            with self._lock(c.id):
                self._apply(
                    rec["id"],
                    c,
                    action,
                    str(rec["method"]),
                    bool(rec["dry_run"]),
                    None,
                    "completed at start-up",
                )
        got = self.records.get(rec["id"])
        assert got is not None
        return got

    def _in_effect(self, rec: Mapping[str, Any]) -> bool | None:
        state = rec["state"] or {}
        if rec["action"] == str(Action.FREEZE):
            return freezer.current_state(self.ctx.paths, state) == "frozen"
        if rec["action"] == str(Action.QUARANTINE):
            try:
                return quarantine.is_applied(self.ctx.paths, int(rec["init_pid"]), state)
            except Exception:
                return None
        return None

    def _reconcile_confirmed(self, rec: Mapping[str, Any]) -> dict[str, Any]:
        effect = self._in_effect(rec)
        if effect is False:
            if self._gone(rec):
                self.records.advance(rec["id"], "gone", "container exited while isolated", active=False)
            else:
                c, target = self.resolve(rec["container_id"])
                if c is not None and not self.refusal(c, target):
                    # Someone undid the isolation behind our back (docker unpause, nft flush):
                    # only an operator or a rule releases, so put it back.
                    log.warning("isolation_reasserted", container_id=c.id, action=rec["action"])
                    with self._lock(c.id):
                        self._apply(
                            rec["id"],
                            c,
                            Action(rec["action"]),
                            str(rec["method"]),
                            False,
                            None,
                            "re-asserted",
                        )
        got = self.records.get(rec["id"])
        assert got is not None
        return got

    def sweep(self, check_quarantines: bool = False) -> None:
        """Periodic upkeep: put back freezes undone behind our back (``docker unpause`` writes
        the same v1 freezer), re-home late processes of v1 net_cls quarantines, and with
        ``check_quarantines`` re-check that quarantine tables are still in place."""
        for rec in self.records.active():
            if rec["phase"] != "confirmed" or rec["dry_run"]:
                continue
            due = rec["action"] == str(Action.FREEZE) or check_quarantines
            if due and self._in_effect(rec) is False:
                self._reconcile_confirmed(rec)
                continue
            if rec["action"] == str(Action.QUARANTINE):
                c = self.ctx.registry.get(rec["container_id"])
                if c is not None:
                    try:
                        quarantine.sweep_netcls(self.ctx.paths, c, rec["state"])
                    except OSError as exc:
                        log.warning("netcls_sweep_failed", container_id=c.id, error=str(exc))

    def forget(self, container_id: str) -> None:
        """A container left the registry: drop its cached events and close its records."""
        self._recent.pop(container_id, None)
        for rec in self.records.active(container_id):
            if rec["phase"] == "confirmed" and self._gone(rec):
                self.records.advance(rec["id"], "gone", "container exited while isolated", active=False)
                log.info("isolated_container_gone", container_id=container_id, action=rec["action"])

    # --- views ---------------------------------------------------------------------------
    def isolations(self) -> list[dict[str, Any]]:
        """Isolations in effect, with the freezer state read back now."""
        out = []
        for rec in self.records.active():
            item = {
                k: rec[k]
                for k in (
                    "id",
                    "container_id",
                    "container_name",
                    "action",
                    "method",
                    "phase",
                    "actor",
                    "created",
                )
            }
            if rec["action"] == str(Action.FREEZE) and rec["state"].get("cgroup"):
                item["freezer_state"] = freezer.current_state(self.ctx.paths, rec["state"])
            out.append(item)
        return out
