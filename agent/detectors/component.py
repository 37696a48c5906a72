# SPDX-License-Identifier: Apache-2.0
"""The rule-detector component: runs every enabled detector on the events it needs.

It subscribes to exactly the event types the enabled detectors declare, evaluates them in id
order on the events bus thread, suppresses repeats of the same (detector, container, subject)
within ``detectors.repeat_suppress_seconds`` and reports the rest with ``ctx.report``. A
detector that raises is counted and logged; it never stops the others.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from prometheus_client import Counter as PromCounter

from agent.context import AgentContext
from agent.detectors.activity import activity
from agent.detectors.lineage_allowances import AllowanceReview
from agent.detectors.registry import BY_ID, enabled
from agent.detectors.spec import Detector, DetectorState, container_key, syscall_name
from agent.events import Event, NetConnect, PrivilegeEvent, ProcessExec, ProcessExit
from agent.findings import Finding
from agent.runtime.model import Container
from agent.settings.detectors import DetectorsSettings

log = structlog.get_logger("agent.detectors")

_MAX_SUPPRESS_KEYS = 65536


# How often (seconds, on the events thread, at an exec) the lineage drops the processes that
# have exited (no source publishes every exit).
PRUNE_SECONDS = 10.0


def settings_of(ctx: AgentContext) -> DetectorsSettings:
    """The ``detectors`` config section (defaults until the section exists in ``AgentConfig``)."""
    value = getattr(ctx.config, "detectors", None)
    return value if isinstance(value, DetectorsSettings) else DetectorsSettings()


def evaluate_all(detectors: Iterable[Detector], event: Event, state: DetectorState) -> list[Finding]:
    """Run ``detectors`` that need ``event``'s type on it; exceptions propagate (tests, replays)."""
    out: list[Finding] = []
    for d in detectors:
        if isinstance(event, d.events):
            f = d.evaluate(event, state)
            if f is not None:
                out.append(f)
    out += [f for _ev, f in state.take_late()]
    return out


class DetectorsComponent:
    """Dispatches events to rule detectors and reports their findings."""

    name = "detectors"

    def __init__(self, settings: DetectorsSettings, detectors: tuple[Detector, ...]) -> None:
        self.settings = settings
        self.detectors = detectors
        self.state = DetectorState(settings=settings)
        by_type: dict[type[Event], list[Detector]] = {}
        for d in detectors:
            for t in d.events:
                by_type.setdefault(t, []).append(d)
        # Dispatch: the rules of an event type; of a PrivilegeEvent, those that judge its syscall
        # (by raw name). Each group counts the events it ran on (``evaluated`` sums them).
        self._groups: list[_Group] = []
        self._by_type: dict[type[Event], _Group] = {t: self._group(tuple(ds)) for t, ds in by_type.items()}
        self._none = self._group(())
        self._by_syscall: dict[str, _Group] = {}
        self._last: OrderedDict[tuple[str, str, str], float] = OrderedDict()
        self.findings: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        # (detector, container) -> (minute of event time, findings reported in it)
        self._minute: dict[tuple[str, str], tuple[int, int]] = {}
        self.errors: Counter[str] = Counter()
        self._ctx: AgentContext | None = None
        self._m_findings: PromCounter | None = None
        self._m_suppressed: PromCounter | None = None
        self._m_errors: PromCounter | None = None
        self._next_prune = 0.0
        self.prune_seconds = PRUNE_SECONDS
        self.pruned = 0
        # (container id, init pid) of containers just added (registry thread -> events thread).
        self._new_inits: deque[tuple[str, int]] = deque(maxlen=1024)
        # Learned per-image allowances (set at start when detectors.learned_allowances).
        self.review: AllowanceReview | None = None
        self.allowance_errors = 0

    # --- component -----------------------------------------------------------------------
    def start(self, ctx: AgentContext) -> None:
        self._ctx = ctx
        registry = ctx.registry

        def init_pid(container_id: str) -> int:
            c = registry.get(container_id) if container_id else None
            return c.init_pid if c is not None else 0

        def started_at(container_id: str) -> float:
            c = registry.get(container_id) if container_id else None
            return c.started_at if c is not None else 0.0

        self.state.init_pid = init_pid
        self.state.started_at = started_at
        self.state.lineage.init_pid = init_pid
        self.state.lineage.paths = ctx.paths
        if self.settings.learned_allowances:
            from agent.behavior.allowances import Allowances

            self.review = AllowanceReview(Allowances(ctx.store, ctx.config.behavior), self.state)
        self._m_findings = PromCounter(
            "riskguard_detector_findings",
            "Findings reported by rule detectors",
            ["detector", "severity"],
            registry=ctx.metrics,
        )
        self._m_suppressed = PromCounter(
            "riskguard_detector_suppressed",
            "Rule findings not reported: repeats within detectors.repeat_suppress_seconds and "
            "those over detectors.max_findings_per_minute",
            ["detector"],
            registry=ctx.metrics,
        )
        self._m_errors = PromCounter(
            "riskguard_detector_errors",
            "Rule detector evaluations that raised",
            ["detector"],
            registry=ctx.metrics,
        )
        ctx.control("detectors.list", lambda _params: self.describe())
        log.info(
            "detectors_started",
            enabled=[d.id for d in self.detectors],
            events=sorted(t.__name__ for t in self._by_type),
        )

    def stop(self) -> None:
        self._ctx = None

    def status(self) -> Mapping[str, Any]:
        return {
            "enabled": [d.id for d in self.detectors],
            "evaluated": dict(self.evaluated),
            "findings": dict(self.findings),
            "suppressed": dict(self.suppressed),
            "rate_limited": dict(self.rate_limited),
            "errors": dict(self.errors),
            "known_processes": len(self.state.lineage.procs),
            "exited_processes_forgotten": self.pruned,
            "lineage": dict(self.state.lineage.counters),
            "allowances": {
                "learned": self.review.allowances.learned if self.review else 0,
                "findings_lowered": self.review.lowered if self.review else 0,
                "errors": self.allowance_errors,
            },
        }

    @property
    def evaluated(self) -> Counter[str]:
        """Events each detector was run on."""
        out: Counter[str] = Counter()
        for g in self._groups:
            if g.runs:
                for d in g.detectors:
                    out[d.id] += g.runs
        return out

    def describe(self) -> list[dict[str, Any]]:
        """Every known detector with whether it runs and what it found so far."""
        on = {d.id for d in self.detectors}
        return [{**d.describe(), "enabled": d.id in on, "findings": self.findings[d.id]} for d in BY_ID.values()]

    # --- event path ----------------------------------------------------------------------
    def _group(self, detectors: tuple[Detector, ...]) -> _Group:
        g = _Group(detectors)
        self._groups.append(g)
        return g

    def _for_syscall(self, syscall: str) -> _Group:
        """The PrivilegeEvent rules that judge ``syscall`` (raw name), computed once per name."""
        found = self._by_syscall.get(syscall)
        if found is None:
            every = self._by_type.get(PrivilegeEvent, self._none)
            if len(self._by_syscall) >= 4096:  # not a kernel's syscall names: every rule looks
                return every
            call = syscall_name(syscall)
            found = self._by_syscall[syscall] = self._group(
                tuple(d for d in every.detectors if not d.syscalls or call in d.syscalls)
            )
        return found

    def handle(self, event: Event) -> None:
        """Evaluate the detectors that need ``event`` and report what they find."""
        while self._new_inits:
            cid, pid = self._new_inits.popleft()
            if self.state.lineage.get(cid, pid) is None:
                self.state.lineage.fill_from_proc(cid, pid)
        is_exec = False
        if isinstance(event, ProcessExec):
            # Lineage first: a rule evaluating this exec sees the process it starts.
            self.state.remember_exec(event)
            group = self._by_type.get(type(event), self._none)
            is_exec = True
        elif isinstance(event, PrivilegeEvent):
            group = self._for_syscall(event.syscall)
        else:
            group = self._by_type.get(type(event), self._none)
        group.runs += 1
        state = self.state
        for d in group.detectors:
            try:
                finding = d.evaluate(event, state)
            except Exception as exc:  # a faulty rule must not stop the others
                self.errors[d.id] += 1
                if self._m_errors is not None:
                    self._m_errors.labels(d.id).inc()
                log.error("detector_failed", detector=d.id, event_kind=event.kind, error=repr(exc))
                continue
            if finding is not None:
                self._emit(self._reviewed(d, event, finding))
        if state.late:
            for earlier, finding in state.take_late():
                late = BY_ID.get(finding.detector_id)
                self._emit(self._reviewed(late, earlier, finding) if late is not None else finding)
        if self.review is not None:
            try:
                self.review.observe(event)
            except sqlite3.Error as exc:  # the store is busy or full: detection goes on
                self._allowance_failed(exc)
        if is_exec:
            now = time.monotonic()
            if now >= self._next_prune and self._ctx is not None:
                self._next_prune = now + self.prune_seconds
                self.pruned += self.state.lineage.sweep()
        elif isinstance(event, NetConnect) and event.op == "connect":
            self.state.remember_connect(event, self.settings.scan_window_seconds)

    def _reviewed(self, d: Detector, event: Event, finding: Finding) -> Finding:
        """``finding`` as the image's learned allowances weigh it (unchanged without them)."""
        if self.review is None:
            return finding
        try:
            return self.review.review(d, event, finding)
        except sqlite3.Error as exc:
            self._allowance_failed(exc)
            return finding

    def _allowance_failed(self, exc: Exception) -> None:
        self.allowance_errors += 1
        if self.allowance_errors in (1, 10, 100) or self.allowance_errors % 1000 == 0:
            log.warning("allowances_unavailable", errors=self.allowance_errors, error=repr(exc))

    def kinds(self) -> tuple[type[Event], ...]:
        """The event types ``handle`` needs: those the enabled detectors declare, and ProcessExec."""
        return tuple(dict.fromkeys([*self._by_type, ProcessExec]))

    def on_container(self, what: str, c: Container) -> None:
        """Registry handler: forget a removed container's state; for a new one, have lineage read
        its init process (on the events thread, at the next event) while it may still be the
        entrypoint script, before it execs its server."""
        if what == "removed":
            self.state.forget_container(c.id)
        elif what == "added" and c.init_pid > 0:
            self._new_inits.append((c.id, c.init_pid))

    def forget(self, event: ProcessExit) -> None:
        """ProcessExit handler: forget the process; its recent exec record keeps what lineage knew
        of it (its file records travel in another kernel buffer and may be judged later)."""
        key = container_key(event)
        activity(self.state).keep_exited(key, self.state.lineage.get(key, event.pid))
        self.state.lineage.on_exit(event)

    def _emit(self, finding: Finding) -> None:
        key = (finding.detector_id, finding.container_id, str(finding.evidence.get("subject", "")))
        window = self.settings.repeat_suppress_seconds
        last = self._last.get(key)
        if window > 0 and last is not None and 0 <= finding.ts - last < window:
            self.suppressed[finding.detector_id] += 1
            if self._m_suppressed is not None:
                self._m_suppressed.labels(finding.detector_id).inc()
            return
        self._last[key] = finding.ts
        self._last.move_to_end(key)
        while len(self._last) > _MAX_SUPPRESS_KEYS:
            self._last.popitem(last=False)
        if not self._within_rate(finding):
            self.rate_limited[finding.detector_id] += 1
            if self._m_suppressed is not None:
                self._m_suppressed.labels(finding.detector_id).inc()
            return
        self.findings[finding.detector_id] += 1
        if self._m_findings is not None:
            self._m_findings.labels(finding.detector_id, str(finding.severity)).inc()
        log.info(
            "rule_matched",
            detector=finding.detector_id,
            container_id=finding.container_id[:12],
            severity=str(finding.severity),
            summary=finding.summary,
        )
        if self._ctx is not None:
            self._ctx.report(finding)

    def _within_rate(self, finding: Finding) -> bool:
        key = (finding.detector_id, finding.container_id)
        minute = int(finding.ts // 60)
        start, count = self._minute.get(key, (minute, 0))
        if start != minute:
            start, count = minute, 0
            if len(self._minute) > _MAX_SUPPRESS_KEYS:
                self._minute.clear()
        if count >= self.settings.max_findings_per_minute:
            if count == self.settings.max_findings_per_minute:
                log.warning(
                    "detector_rate_limited", detector=finding.detector_id, container_id=finding.container_id[:12]
                )
            self._minute[key] = (start, count + 1)
            return False
        self._minute[key] = (start, count + 1)
        return True


class _Group:
    """Rules run on the same events, and how many events they ran on."""

    __slots__ = ("detectors", "runs")

    def __init__(self, detectors: tuple[Detector, ...]) -> None:
        self.detectors = detectors
        self.runs = 0


def build(ctx: AgentContext) -> DetectorsComponent | None:
    """The detectors component, or ``None`` when ``detectors.enabled`` is false."""
    settings = settings_of(ctx)
    if not settings.enabled:
        return None
    unknown = sorted(set(settings.disabled) - set(BY_ID))
    if unknown:
        log.warning("detectors_unknown_disabled", ids=unknown)
    return DetectorsComponent(settings, enabled(settings.disabled))
