# SPDX-License-Identifier: Apache-2.0
"""The fast path from a must-act record to the freezer (the kernel already stopped the task).

``FastPath.on_stop`` runs on the eBPF source's ``ebpf-act`` thread, which reads nothing but the
must-act ring buffer: container lookup by cgroup id, the finding, the policy's verdict, the
intent record, the freezer write and its read-back, the confirmed record; then the stopped task
is continued (SIGCONT) inside the frozen cgroup, so a release resumes it with everything else.
Nothing on this path waits for the events bus, the detectors, the outputs or a Docker or
Kubernetes call: the finding's storage with its verdict, the outputs and the evidence snapshot
(taken after the freeze, when the processes hold still) go to the ``ActionWorker``, one thread
of its own, so a slow output or quarantine never delays a freeze.

When the verdict is not a freeze (observe by override, an incident already frozen, a refusal),
the task is continued at once; a freeze another thread is applying is waited for first.

A stopped open of a secret is judged like RG-0002 judges it (``sensitive_file.package_manager_in``):
when the stopped task runs below a package manager (itself or an ancestor, by executable and
script interpreter, read from /proc while the task holds still: debconf's perl below
``apt-get install``), the task is continued at once and the finding is MEDIUM, not must-act;
every other stop stays critical and freezes.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from agent.decoders.ebpf import KernelStop
from agent.detectors.lineage import ProcessTree, ProcInfo
from agent.detectors.sensitive_file import package_manager_in
from agent.findings import Action, Finding, Severity, Source, Verdict
from agent.policy import decide, incident_id, rung
from agent.response.evidence import evidence_snapshot
from agent.response.freezers import Freezers
from agent.response.handlers import Request
from agent.response.kernel_rules import RULE_DETECTORS, KernelRules, effective_mode
from agent.response.model import IN_PLACE, ActionRecord, VerdictRecord
from agent.runtime.model import Container

if TYPE_CHECKING:
    from agent.response.engine import ResponseEngine

log = structlog.get_logger("agent.response")

LATENCIES_KEPT = 2048
# How long the fast path polls its own freeze write before the handler's freeze (runc's retries:
# re-writes, an occasional thaw) takes over: a container whose forks keep it FREEZING.
FAST_POLL_SECONDS = 0.25
PRUNE_SECONDS = 5.0


def fast_freeze(
    engine: ResponseEngine,
    c: Container,
    finding: Finding,
    marks: list[int] | None = None,
    freezers: Freezers | None = None,
) -> tuple[Verdict, ActionRecord | None]:
    """Decide on ``finding`` and, when the verdict is a freeze, record and apply it now, on the
    calling thread; no output, no evidence (the caller's worker adds them after). ``marks`` gets
    the CLOCK_MONOTONIC ns when the intent is recorded, when the freeze write returned and the
    freezer read frozen (with ``freezers``: the fast write), and when the handler confirmed it."""
    _known, target = engine.guards.resolve(c.id)
    with engine._decide_lock:
        verdict = decide(finding, engine.settings, engine.policy, time.time(), target)
        incident = engine.policy.incidents.get(c.id)
        if (
            verdict.action == Action.NONE
            and finding.evidence.get("must_act")
            and incident is not None
            and rung(incident.action) > rung(Action.FREEZE)
            and _enforcing(engine, c)
        ):
            # The container's incident is at a higher rung (quarantine, a patch plan) that does not
            # stop its processes: a must-act stop still freezes it.
            verdict = Verdict(
                finding=finding,
                action=Action.FREEZE,
                enforce=True,
                reason=f"{verdict.reason}; must-act: freeze beside {incident.action}",
            )
    engine.counters[f"verdict_{verdict.action}"] += 1
    handler = engine.handlers.get(str(Action.FREEZE))
    if handler is None or not verdict.enforce or verdict.action != Action.FREEZE:
        return verdict, None
    if engine.guards.refusal(_known, target):
        engine.counters["refused"] += 1
        return verdict, None
    dry = engine.settings.dry_run
    method = handler.default_method
    with engine._lock(c.id):
        if not dry:
            for rec in engine.records.active(c.id):
                if rec.action == handler.name and rec.phase in IN_PLACE:
                    return verdict, rec  # already frozen (idempotent)
        action_id = engine.records.intend(
            container_id=c.id,
            container_name=c.name,
            image=c.image,
            init_pid=c.init_pid,
            action=handler.name,
            method=method,
            actor=f"kernel:{finding.detector_id}",
            reason=verdict.reason,
            dry_run=dry,
            finding_id=finding.id,
            verdict_id=verdict.id,
        )
        for observer in engine.intent_observers:
            observer(action_id, c, handler.name)
        if marks is not None:
            marks.append(time.monotonic_ns())
        fast: dict[str, Any] = {}
        if freezers is not None and marks is not None and not dry and handler.name == str(Action.FREEZE):
            n = len(marks)
            before = freezers.freeze(c, min(FAST_POLL_SECONDS, engine.settings.freeze_timeout_seconds), marks)
            if before:
                fast = {"was": before, "write_to_frozen_ms": round((marks[-1] - marks[n]) / 1e6, 3)}
            while len(marks) < n + 2:
                marks.append(marks[-1])  # no fast write (or not frozen in time): the handler's time
        result = handler.apply(Request(container=c, method=method, dry_run=dry, reason=verdict.reason, finding=finding))
        if marks is not None:
            marks.append(time.monotonic_ns())
        state = dict(result.state)
        if fast:
            state.update(was=fast["was"], fast_path=fast)
        used = handler.method_used(state, method)
        if result.ok:
            engine.records.complete(action_id, result.detail, state, used, active=handler.isolation)
            engine.counters[f"{handler.name}_{'dry_run' if dry else 'confirmed'}"] += 1
        else:
            engine.records.advance(action_id, "failed", result.detail, state=state, active=False, method=used)
            engine.counters[f"{handler.name}_failed"] += 1
            log.error("response_action_failed", container_id=c.id, action=handler.name, detail=result.detail)
        return verdict, engine.records.must_get(action_id)


def _enforcing(engine: ResponseEngine, c: Container) -> bool:
    """The container's mode is enforce (after overrides and allow-lists), no dry run."""
    return not engine.settings.dry_run and effective_mode(engine.settings, c)[0] == "enforce"


class ActionWorker:
    """One thread running queued jobs in order (outputs, evidence, queued actions); a job that
    fails is logged and counted, the next one runs."""

    def __init__(self, name: str = "response-worker") -> None:
        self.name = name
        self._q: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.done = 0
        self.failed = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def submit(self, job: Callable[[], object]) -> None:
        self._q.put(job)

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every job queued so far has run."""
        if self._thread is None:
            return True
        ev = threading.Event()
        self._q.put(ev.set)
        return ev.wait(timeout)

    def stop(self, timeout: float = 3.0) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            try:
                job()
                self.done += 1
            except Exception as exc:
                self.failed += 1
                log.error("response_worker_job_failed", worker=self.name, error=repr(exc))


class FastPath:
    """The response's half of the in-kernel first response (``agent.sources.ebpf.act.KernelActs``)."""

    def __init__(self, engine: ResponseEngine, worker: ActionWorker, allowances: Any = None) -> None:
        self.engine = engine
        self.worker = worker
        disabled = engine.ctx.config.detectors.disabled
        self.rules = KernelRules(engine.settings, engine.guards, allowances, disabled)
        self.counters: Counter[str] = Counter()
        # (rule, syscall -> frozen ms) of the last stops that froze their container.
        self.latencies: deque[tuple[str, float]] = deque(maxlen=LATENCIES_KEPT)
        self.last_stop: KernelStop | None = None
        # Called with each stop and whether it froze, after the task was continued (benchmarks).
        self.observers: list[Callable[[KernelStop, bool], None]] = []
        # (syscall -> record handled, handled -> intent recorded, intent -> frozen), ms, of the
        # same stops.
        self.phases: deque[tuple[float, float, float]] = deque(maxlen=LATENCIES_KEPT)
        # (handled -> intent recorded, intent -> freeze written, written -> read frozen, frozen ->
        # confirmed by the handler), ms: where the freeze's time goes.
        self.freeze_phases: deque[tuple[float, float, float, float]] = deque(maxlen=LATENCIES_KEPT)
        realtime = engine.settings.kernel_stop.realtime
        self.freezers = Freezers(engine.ctx.paths, engine.settings.freezer, boost=realtime)
        self._pruned = time.monotonic()

    def rules_for(self, c: Container) -> int:
        """The rules ``c``'s cgroup enforces; an enforcing container's freezer files are opened
        now, ahead of a stop."""
        bits = self.rules.rules_for(c)
        if bits:
            self.freezers.prepare(c)
        now = time.monotonic()
        if now - self._pruned > PRUNE_SECONDS:
            self._pruned = now
            self.freezers.prune(self.engine.ctx.registry.ids())
        return bits

    def on_stop(self, stop: KernelStop) -> None:
        """A task was stopped by the kernel: freeze its container, then continue it."""
        t0 = time.monotonic_ns()
        self.counters["stops"] += 1
        self.last_stop = stop
        c = self.engine.ctx.registry.by_cgroup_id(stop.cgroup_id)
        if c is None:
            self.counters["unknown_cgroup"] += 1
            _continue(stop.pid)
            log.warning("kernel_stop_unknown_container", pid=stop.pid, cgroup_id=stop.cgroup_id, rule=stop.rule)
            return
        finding = self._finding(c, stop)
        if not finding.evidence.get("must_act"):
            # Below a package manager: continued before anything else, the verdict is an alert.
            _continue(stop.pid)
            self.counters["continued_below_package_manager"] += 1
            verdict, _rec = fast_freeze(self.engine, c, finding)
            for observer in self.observers:
                observer(stop, False)
            self.worker.submit(lambda: self._after(c, stop, finding, verdict, None, 0))
            return
        marks: list[int] = []
        verdict, rec = fast_freeze(self.engine, c, finding, marks, self.freezers)
        frozen = rec is not None and rec.phase == "confirmed" and not rec.dry_run and len(marks) == 4
        # Frozen: the freezer read back FROZEN (the fast path's poll, else the handler's; the
        # confirmed record follows right after).
        frozen_ns = (marks[2] if marks[2] > marks[0] else marks[3]) if frozen else time.monotonic_ns()
        if not frozen:
            # A freeze applied concurrently by the normal path holds the container's lock.
            with self.engine._lock(c.id):
                pass
        _continue(stop.pid)
        if frozen:
            self.counters["frozen"] += 1
            self.latencies.append((stop.rule, (frozen_ns - stop.ts_ns) / 1e6))
            self.phases.append(((t0 - stop.ts_ns) / 1e6, (marks[0] - t0) / 1e6, (frozen_ns - marks[0]) / 1e6))
            gaps = (marks[0] - t0, marks[1] - marks[0], marks[2] - marks[1], marks[3] - marks[2])
            self.freeze_phases.append((gaps[0] / 1e6, gaps[1] / 1e6, gaps[2] / 1e6, gaps[3] / 1e6))
        else:
            self.counters["continued_unfrozen"] += 1
        for observer in self.observers:
            observer(stop, frozen)
        self.worker.submit(lambda: self._after(c, stop, finding, verdict, rec, frozen_ns if frozen else 0))

    def _finding(self, c: Container, stop: KernelStop) -> Finding:
        detector, mitre = RULE_DETECTORS.get(stop.rule, ("RG-KSTOP", ""))
        what = {
            "open": f"{stop.comm} opened {stop.path}",
            "namespace": f"{stop.comm} called {stop.syscall} (namespace escape)",
            "runtime_socket": f"{stop.comm} connected to the runtime socket {stop.path}",
            "exec": f"{stop.path} executed from a writable or memory path",
        }.get(stop.rule, f"{stop.comm}: {stop.rule}")
        manager = self._package_manager(c, stop) if stop.rule == "open" else None
        if manager is not None:
            return Finding(
                container=c.ref(),
                source=Source.RULE,
                detector_id=detector,
                severity=Severity.MEDIUM,
                summary=f"{what} below the package manager {manager.program}; continued",
                evidence={
                    "kernel_stop": _stop_evidence(stop),
                    "must_act": False,
                    "context": "package_manager",
                    "package_manager": manager.to_dict(),
                },
                mitre=mitre,
                ts=stop.ts,
            )
        return Finding(
            container=c.ref(),
            source=Source.RULE,
            detector_id=detector,
            severity=Severity.CRITICAL,
            summary=f"{what}; stopped in the kernel",
            evidence={"kernel_stop": _stop_evidence(stop), "must_act": True},
            mitre=mitre,
            ts=stop.ts,
        )

    def _package_manager(self, c: Container, stop: KernelStop) -> ProcInfo | None:
        """The package manager the stopped task runs below (RG-0002's judgement), else ``None``;
        read from /proc into a tree of this stop's own (the detectors' tree is another thread's)."""
        tree = ProcessTree(settings=self.engine.ctx.config.detectors, paths=self.engine.ctx.paths)
        me = tree.lookup(c.id, stop.pid)
        if me is None:
            return None  # gone or unreadable: not known to be a package's, so it stays must-act
        return package_manager_in([me, *tree.ancestors(c.id, stop.pid)])

    def _after(
        self, c: Container, stop: KernelStop, finding: Finding, verdict: Verdict, rec: ActionRecord | None, frozen: int
    ) -> None:
        """The worker's part: the finding stored with its verdict, the outputs, the evidence."""
        engine = self.engine
        vrec = VerdictRecord.of(
            verdict,
            incident=incident_id(engine.policy, c.id),
            action_id=rec.id if rec else None,
            result=rec.phase if rec else None,
        )
        engine.records.save_finding(finding, vrec)
        engine._emit_finding(finding, verdict, rec)
        if rec is not None and rec.finding_id == finding.id:
            engine._emit_action(rec)
            if frozen and engine.handlers.get(rec.action) is not None:
                snap = evidence_snapshot(engine.ctx.paths, c, connections=True)
                snap["kernel_stop"] = {"syscall_to_frozen_ms": round((frozen - stop.ts_ns) / 1e6, 3)}
                with engine.ctx.store.transaction() as conn:
                    conn.execute(
                        "INSERT INTO response_evidence(action_id, ts, data) VALUES (?,?,?)",
                        (rec.id, time.time(), _json(snap)),
                    )
        log.info(
            "kernel_stop_handled",
            container_id=c.id,
            rule=stop.rule,
            pid=stop.pid,
            frozen=bool(frozen),
            verdict=str(verdict.action),
            syscall_to_frozen_ms=round((frozen - stop.ts_ns) / 1e6, 3) if frozen else None,
        )

    def status(self) -> dict[str, Any]:
        ms = sorted(v for _r, v in self.latencies)
        out: dict[str, Any] = dict(self.counters)
        if ms:
            out["syscall_to_frozen_ms"] = {
                "n": len(ms),
                "p50": round(ms[len(ms) // 2], 3),
                "p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
            }
        return out


def _stop_evidence(stop: KernelStop) -> dict[str, Any]:
    return {
        "rule": stop.rule,
        "pid": stop.pid,
        "tid": stop.tid,
        "comm": stop.comm,
        "uid": stop.uid,
        "syscall": stop.syscall,
        "arg": stop.arg,
        "path": stop.path,
        "stopped": stop.stopped,
    }


def _continue(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def _json(data: Any) -> str:
    import json

    return json.dumps(data, default=str)
