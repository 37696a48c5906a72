# SPDX-License-Identifier: Apache-2.0
"""Findings → verdicts: a pure function of the finding, the ``response`` settings and a small
in-memory state (incidents, recent actions).

The graded ladder: alert → freeze (behaviour deviation, rule detectors, audit) → network
quarantine (abnormal request sequences from logs or network, illegal syscall chains) → patch
(vulnerabilities). Guards come before the ladder: the host, the agent itself, a container outside
the discovered set, a container labelled exempt or allow-listed are never acted on (alert only).
Dedup: one verdict per container per incident; a later finding in the same incident gets a new
verdict only when it calls for a higher rung. The budget (``PolicyState.budget``: per workload and
severity, ``agent.response.budget``) may downgrade an enforced action to an alert.
Nothing here does I/O: the engine supplies the facts (``Target``) and the clock.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from agent.findings import Action, Finding, Severity, Verdict
from agent.settings.response import ResponseOverride, ResponseSettings

LADDER: tuple[Action, ...] = (Action.NONE, Action.ALERT, Action.FREEZE, Action.QUARANTINE, Action.PATCH)


def rung(action: Action) -> int:
    """The position of ``action`` on the graded ladder (higher = stronger)."""
    return LADDER.index(action)


@dataclass(frozen=True, slots=True)
class Target:
    """Facts about a finding's container that the engine establishes before asking the policy."""

    known: bool  # the container is in the registry (discovered by the runtime)
    is_agent: bool = False  # the container (cgroup) holds the agent itself
    is_host: bool = False  # the "container" is the host (root cgroup, host pid namespace …)


@dataclass(slots=True)
class Incident:
    """Findings of one container close together in time: at most one verdict per rung."""

    id: str
    started: float
    last: float
    action: Action


class ActionBudget(Protocol):
    """Who grants enforced actions (``agent.response.budget.ResponseBudget``): per workload and
    severity, never refusing critical findings."""

    def take(self, finding: Finding, action: Action, now: float) -> str:
        """Spend one action for ``finding``: '' when granted, else why not (the action is
        downgraded to an alert; the budget queues it for later)."""
        ...


@dataclass(slots=True)
class PolicyState:
    """What the policy remembers between findings (lost on restart: a new incident starts)."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    applied: deque[float] = field(default_factory=deque)  # times of enforced actions
    budget: ActionBudget | None = None  # None: every enforced action is granted


def _matches(override: ResponseOverride, image: str, labels: dict[str, str]) -> bool:
    if override.image and not fnmatch.fnmatchcase(image, override.image):
        return False
    return all(labels.get(k) == v for k, v in override.labels.items())


def _allowed(settings: ResponseSettings, cid: str, name: str, image: str) -> str:
    """The allow-list entry that covers this container, or ''."""
    for entry in settings.allow_containers:
        if entry and (entry in (name, cid) or (len(entry) >= 12 and cid.startswith(entry))):
            return f"allow_containers={entry}"
    for pattern in settings.allow_images:
        if pattern and fnmatch.fnmatchcase(image, pattern):
            return f"allow_images={pattern}"
    return ""


def _cap(action: Action, limit: Action) -> Action:
    return action if rung(action) <= rung(limit) else limit


def decide(
    finding: Finding,
    settings: ResponseSettings,
    state: PolicyState,
    now: float,
    target: Target,
) -> Verdict:
    """Return the verdict for ``finding``; updates ``state`` (incidents, rate-limit window)."""
    severity = finding.severity
    if severity < Severity.parse(settings.alert_severity):
        return Verdict(finding=finding, action=Action.NONE, enforce=False, reason="below alert_severity")

    c = finding.container
    cid = c.id if c else ""
    wanted = Action(settings.ladder.get(str(finding.source), "alert"))
    reasons = [f"ladder {finding.source}->{wanted}"]
    if rung(wanted) > rung(Action.ALERT) and severity < Severity.parse(settings.action_severity):
        wanted = Action.ALERT
        reasons.append("below action_severity")

    # Guards: never act on the host, the agent, an undiscovered or protected container.
    guard = ""
    if c is None or not cid or target.is_host:
        guard = "host: never acted on"
    elif target.is_agent:
        guard = "the agent itself: never acted on"
    elif not target.known:
        guard = "not a discovered container: never acted on"
    elif c.labels.get(settings.exempt_label, "").lower() == "true":
        guard = f"label {settings.exempt_label}=true: exempt"
    else:
        allowed = _allowed(settings, cid, c.name, c.image)
        if allowed:
            guard = f"allow-listed ({allowed})"
    mode = settings.mode
    if c is not None and not guard:
        labels = dict(c.labels)
        for ov in settings.overrides:
            if _matches(ov, c.image, labels):
                if ov.exempt:
                    guard = "override: exempt"
                if ov.mode is not None:
                    mode = ov.mode
                if ov.max_action is not None and rung(Action(ov.max_action)) < rung(wanted):
                    wanted = Action(ov.max_action)
                    reasons.append(f"override caps at {ov.max_action}")
                break
    if guard:
        wanted = _cap(wanted, Action.ALERT)
        reasons.append(guard)

    # Dedup: one verdict per container per incident (escalation to a higher rung excepted).
    key = cid or "host"
    incident = state.incidents.get(key)
    if incident is not None and now - incident.last <= settings.incident_seconds:
        incident.last = now
        if rung(wanted) <= rung(incident.action):
            return Verdict(
                finding=finding,
                action=Action.NONE,
                enforce=False,
                reason=f"joined incident {incident.id} ({incident.action})",
            )
        reasons.append(f"escalated incident {incident.id} from {incident.action}")
    else:
        incident = Incident(id=uuid.uuid4().hex[:12], started=now, last=now, action=Action.NONE)
        state.incidents[key] = incident
        reasons.append(f"incident {incident.id}")

    enforce = mode == "enforce" and rung(wanted) > rung(Action.ALERT)
    if enforce:
        while state.applied and now - state.applied[0] > 60.0:
            state.applied.popleft()
        refused = state.budget.take(finding, wanted, now) if state.budget is not None else ""
        if refused:
            wanted, enforce = Action.ALERT, False
            reasons.append(refused)
        else:
            state.applied.append(now)
    if not enforce and rung(wanted) > rung(Action.ALERT):
        reasons.append("observe mode")
    if rung(wanted) > rung(incident.action):
        incident.action = wanted
    # Forget incidents long over, so the state stays small on a busy host.
    if len(state.incidents) > 4096:
        for k in [k for k, v in state.incidents.items() if now - v.last > settings.incident_seconds]:
            del state.incidents[k]
    return Verdict(finding=finding, action=wanted, enforce=enforce, reason="; ".join(reasons))


def incident_id(state: PolicyState, container_id: str) -> str:
    """The id of the container's current incident ('' when none)."""
    inc = state.incidents.get(container_id or "host")
    return inc.id if inc else ""
