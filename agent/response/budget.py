# SPDX-License-Identifier: Apache-2.0
"""The response budget: how many actions may be applied, per workload and severity, so that decoys
in a few containers cannot spend what an attack elsewhere needs.

- A workload is the value of ``response.budget.workload_label`` on the container, else its image.
  Each (workload, severity) has ``per_workload_per_minute`` actions in any sliding minute.
- Critical findings (and the kernel's must-act records, always critical) are never downgraded;
  they are counted, never refused.
- A refused action is downgraded to an alert by the policy and queued here (``Deferred``): the
  response retries it when the workload's budget frees (``due``), or, after ``retry_seconds``,
  escalates it: a finding tells the operator the action is theirs to take (``expired``).
- The host-wide circuit breaker trips when ``breaker_workloads`` distinct workloads spent their
  budget within a minute (a storm across many images): while open, every non-critical action is
  queued. Tripping and closing are logged (``response_breaker_tripped`` / ``_closed``), shown in
  status and exported as metrics.

Pure bookkeeping with an injected clock: the caller applies and escalates.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.findings import Action, Finding, Severity
from agent.settings.response import BudgetSettings

log = structlog.get_logger("agent.response")

WINDOW = 60.0
MAX_UNCLAIMED = 1024


@dataclass(slots=True)
class Deferred:
    """An action the budget refused, waiting for budget."""

    finding: Finding
    action: Action
    workload: str
    severity: str
    queued: float
    reason: str


def _severity_key(sev: Severity) -> str:
    return "low" if sev <= Severity.LOW else "medium" if sev == Severity.MEDIUM else "high"


class ResponseBudget:
    """Per-workload, per-severity action budgets, the deferred queue and the circuit breaker."""

    def __init__(self, settings: BudgetSettings) -> None:
        self.settings = settings
        self.window = WINDOW  # seconds of the sliding budget window (and of the breaker's count)
        self._used: dict[tuple[str, str], deque[float]] = {}
        self._overspent: dict[str, float] = {}  # workload -> last refusal time
        self.breaker_until = 0.0
        self.breaker_trips = 0
        self.queue: deque[Deferred] = deque()
        self.counters: Counter[str] = Counter()
        self._refused: dict[str, Deferred] = {}  # finding id -> its deferred action (until taken)
        self._lock = threading.Lock()

    # --- policy side ---------------------------------------------------------------------
    def workload_of(self, finding: Finding) -> str:
        c = finding.container
        if c is None:
            return "host"
        label = self.settings.workload_label
        if label and c.labels.get(label):
            return f"{label}={c.labels[label]}"
        return c.image or c.id

    @staticmethod
    def critical(finding: Finding) -> bool:
        return finding.severity >= Severity.CRITICAL or bool(finding.evidence.get("must_act"))

    def take(self, finding: Finding, action: Action, now: float) -> str:
        """Spend one action for ``finding``; '' when granted, else why not (then queued)."""
        workload = self.workload_of(finding)
        sev = _severity_key(finding.severity)
        with self._lock:
            self._close_breaker(now)
            window = self._used.setdefault((workload, sev), deque())
            while window and now - window[0] > self.window:
                window.popleft()
            if self.critical(finding):
                window.append(now)
                self.counters["granted_critical"] += 1
                return ""
            if now < self.breaker_until:
                reason = "circuit breaker open (an action storm across many workloads): queued"
            elif len(window) >= self.settings.per_workload_per_minute.get(sev, 0):
                limit = self.settings.per_workload_per_minute.get(sev, 0)
                reason = f"budget of {workload} spent ({limit}/min at {sev}): queued"
                self._overspend(workload, now)
            else:
                window.append(now)
                self.counters["granted"] += 1
                return ""
            self.counters["downgraded"] += 1
            d = Deferred(finding=finding, action=action, workload=workload, severity=sev, queued=now, reason=reason)
            if len(self._refused) >= MAX_UNCLAIMED:  # refusals no response claimed (tests, tools)
                del self._refused[next(iter(self._refused))]
            self._refused[finding.id] = d
            return reason

    def _overspend(self, workload: str, now: float) -> None:
        self._overspent[workload] = now
        for w in [w for w, t in self._overspent.items() if now - t > self.window]:
            del self._overspent[w]
        if len(self._overspent) >= self.settings.breaker_workloads:
            if now >= self.breaker_until:
                self.breaker_trips += 1
                log.warning(
                    "response_breaker_tripped",
                    workloads=sorted(self._overspent)[:20],
                    overspent=len(self._overspent),
                    seconds=self.settings.breaker_seconds,
                )
            self.breaker_until = now + self.settings.breaker_seconds

    def _close_breaker(self, now: float) -> None:
        if self.breaker_until and now >= self.breaker_until:
            self.breaker_until = 0.0
            log.warning("response_breaker_closed", queued=len(self.queue))

    # --- response side -------------------------------------------------------------------
    def defer(self, finding_id: str) -> Deferred | None:
        """Queue the action refused for ``finding_id`` (the policy's verdict came back as an
        alert); returns the queued item, or None when the budget refused nothing for it."""
        with self._lock:
            d = self._refused.pop(finding_id, None)
            if d is None:
                return None
            self.queue.append(d)
            self.counters["queued"] += 1
            return d

    def overflow(self) -> list[Deferred]:
        """The oldest queued actions beyond ``max_queued`` (to escalate now)."""
        with self._lock:
            out = []
            while len(self.queue) > self.settings.max_queued:
                out.append(self.queue.popleft())
            return out

    def due(self, now: float) -> list[Deferred]:
        """Queued actions whose budget has freed, taken from the queue and spent; the rest wait."""
        ready: list[Deferred] = []
        with self._lock:
            self._close_breaker(now)
            if now < self.breaker_until:
                return []
            keep: deque[Deferred] = deque()
            for d in self.queue:
                window = self._used.setdefault((d.workload, d.severity), deque())
                while window and now - window[0] > self.window:
                    window.popleft()
                if now - d.queued <= self.settings.retry_seconds and len(
                    window
                ) < self.settings.per_workload_per_minute.get(d.severity, 0):
                    window.append(now)
                    ready.append(d)
                else:
                    keep.append(d)
            self.queue = keep
            self.counters["retried"] += len(ready)
        return ready

    def expired(self, now: float) -> list[Deferred]:
        """Queued actions older than ``retry_seconds``: removed, to be escalated."""
        with self._lock:
            old = [d for d in self.queue if now - d.queued > self.settings.retry_seconds]
            if old:
                self.queue = deque(d for d in self.queue if now - d.queued <= self.settings.retry_seconds)
                self.counters["escalated"] += len(old)
            return old

    def breaker_open(self, now: float) -> bool:
        return now < self.breaker_until

    def status(self, now: float) -> dict[str, Any]:
        with self._lock:
            return {
                "breaker": "open" if now < self.breaker_until else "closed",
                "breaker_open_seconds_left": round(max(0.0, self.breaker_until - now), 1),
                "breaker_trips": self.breaker_trips,
                "workloads_overspent": sorted(w for w, t in self._overspent.items() if now - t <= self.window),
                "queued": [
                    {
                        "container_id": d.finding.container_id,
                        "workload": d.workload,
                        "action": str(d.action),
                        "severity": d.severity,
                        "waiting_seconds": round(now - d.queued, 1),
                        "detector_id": d.finding.detector_id,
                    }
                    for d in list(self.queue)[:50]
                ],
                "queued_total": len(self.queue),
                "counters": dict(self.counters),
            }


class BudgetCollector(Collector):
    """Prometheus view of the budget: the breaker, the queue, what was downgraded."""

    def __init__(self, budget: ResponseBudget) -> None:
        self.budget = budget

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        import time

        b = self.budget
        now = time.time()
        yield GaugeMetricFamily(
            "riskguard_response_breaker_open", "1 while the host-wide action circuit breaker is open",
            value=1.0 if b.breaker_open(now) else 0.0,
        )  # fmt: skip
        yield CounterMetricFamily(
            "riskguard_response_breaker_trips", "Times the action circuit breaker tripped", value=b.breaker_trips
        )
        yield GaugeMetricFamily("riskguard_response_actions_queued", "Actions waiting for budget", value=len(b.queue))
        c = CounterMetricFamily(
            "riskguard_response_budget", "Actions by what the budget did with them", labels=["outcome"]
        )
        for outcome in ("granted", "granted_critical", "downgraded", "queued", "retried", "escalated"):
            c.add_metric([outcome], b.counters.get(outcome, 0))
        yield c
