# SPDX-License-Identifier: Apache-2.0
"""Table tests of the policy: findings → verdicts (ladder, thresholds, guards, overrides, dedup,
budget)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.events import ContainerRef
from agent.findings import Action, Finding, Severity, Source
from agent.policy import PolicyState, Target, decide
from agent.response.budget import ResponseBudget
from agent.settings.response import BudgetSettings, ResponseSettings

KNOWN = Target(known=True)
C1 = ContainerRef(id="a" * 64, name="web", image="nginx:1.25", labels={"app": "web"})
C2 = ContainerRef(id="b" * 64, name="db", image="postgres:16", labels={})
EXEMPT = ContainerRef(id="c" * 64, name="ops", image="tools:1", labels={"riskguard.exempt": "true"})


def finding(source: Source = Source.RULE, severity: Severity = Severity.HIGH, c: ContainerRef | None = C1) -> Finding:
    return Finding(container=c, source=source, detector_id="RG-0001", severity=severity, summary="x")


def settings(**kw: Any) -> ResponseSettings:
    return ResponseSettings(**{"mode": "enforce", **kw})


# (name, settings, finding, target, expected action, expected enforce, reason fragment)
CASES = [
    ("rule high freezes", settings(), finding(), KNOWN, Action.FREEZE, True, "ladder rule->freeze"),
    ("behavior freezes", settings(), finding(Source.BEHAVIOR), KNOWN, Action.FREEZE, True, ""),
    ("audit freezes", settings(), finding(Source.AUDIT), KNOWN, Action.FREEZE, True, ""),
    ("logs quarantine", settings(), finding(Source.LOGS), KNOWN, Action.QUARANTINE, True, ""),
    ("network quarantine", settings(), finding(Source.NETWORK), KNOWN, Action.QUARANTINE, True, ""),
    (
        "syscall chain quarantine",
        settings(),
        finding(Source.SYSCALL_CHAIN),
        KNOWN,
        Action.QUARANTINE,
        True,
        "",
    ),
    ("vuln patch", settings(), finding(Source.VULN), KNOWN, Action.PATCH, True, ""),
    ("netpolicy alerts", settings(), finding(Source.NETPOLICY), KNOWN, Action.ALERT, False, ""),
    ("observe mode", settings(mode="observe"), finding(), KNOWN, Action.FREEZE, False, "observe mode"),
    (
        "medium only alerts",
        settings(),
        finding(severity=Severity.MEDIUM),
        KNOWN,
        Action.ALERT,
        False,
        "below action",
    ),
    (
        "info below alert",
        settings(),
        finding(severity=Severity.INFO),
        KNOWN,
        Action.NONE,
        False,
        "below alert",
    ),
    (
        "threshold lowered",
        settings(action_severity="medium"),
        finding(severity=Severity.MEDIUM),
        KNOWN,
        Action.FREEZE,
        True,
        "",
    ),
    (
        "host never",
        settings(),
        finding(c=None),
        Target(known=False, is_host=True),
        Action.ALERT,
        False,
        "host",
    ),
    (
        "host-flagged never",
        settings(),
        finding(),
        Target(known=True, is_host=True),
        Action.ALERT,
        False,
        "host",
    ),
    (
        "agent never",
        settings(),
        finding(),
        Target(known=True, is_agent=True),
        Action.ALERT,
        False,
        "agent itself",
    ),
    ("unknown never", settings(), finding(), Target(known=False), Action.ALERT, False, "not a discovered"),
    ("exempt label", settings(), finding(c=EXEMPT), KNOWN, Action.ALERT, False, "exempt"),
    (
        "custom exempt label",
        settings(exempt_label="safe"),
        finding(c=ContainerRef(id="d" * 64, name="n", image="i", labels={"safe": "TRUE"})),
        KNOWN,
        Action.ALERT,
        False,
        "exempt",
    ),
    (
        "allow by name",
        settings(allow_containers=["web"]),
        finding(),
        KNOWN,
        Action.ALERT,
        False,
        "allow_containers",
    ),
    (
        "allow by id prefix",
        settings(allow_containers=["a" * 12]),
        finding(),
        KNOWN,
        Action.ALERT,
        False,
        "allow",
    ),
    (
        "short prefix is not enough",
        settings(allow_containers=["aaaa"]),
        finding(),
        KNOWN,
        Action.FREEZE,
        True,
        "",
    ),
    (
        "allow by image",
        settings(allow_images=["nginx:*"]),
        finding(),
        KNOWN,
        Action.ALERT,
        False,
        "allow_images",
    ),
    (
        "override caps",
        settings(overrides=[{"image": "nginx:*", "max_action": "alert"}]),
        finding(),
        KNOWN,
        Action.ALERT,
        False,
        "override caps",
    ),
    (
        "override observe",
        settings(overrides=[{"labels": {"app": "web"}, "mode": "observe"}]),
        finding(),
        KNOWN,
        Action.FREEZE,
        False,
        "observe",
    ),
    (
        "override enforce in observe",
        settings(mode="observe", overrides=[{"image": "nginx:*", "mode": "enforce"}]),
        finding(),
        KNOWN,
        Action.FREEZE,
        True,
        "",
    ),
    (
        "override not matching",
        settings(overrides=[{"image": "redis:*", "max_action": "alert"}]),
        finding(),
        KNOWN,
        Action.FREEZE,
        True,
        "",
    ),
    (
        "override exempt",
        settings(overrides=[{"labels": {"app": "web"}, "exempt": True}]),
        finding(),
        KNOWN,
        Action.ALERT,
        False,
        "override: exempt",
    ),
    ("ladder edited", settings(ladder={"rule": "quarantine"}), finding(), KNOWN, Action.QUARANTINE, True, ""),
    ("unknown source alerts", settings(ladder={}), finding(), KNOWN, Action.ALERT, False, ""),
]


@pytest.mark.parametrize(("name", "cfg", "f", "target", "action", "enforce", "why"), CASES, ids=[c[0] for c in CASES])
def test_policy_table(
    name: str, cfg: ResponseSettings, f: Finding, target: Target, action: Action, enforce: bool, why: str
) -> None:
    v = decide(f, cfg, PolicyState(), 1000.0, target)
    assert (v.action, v.enforce) == (action, enforce), v.reason
    assert why in v.reason
    assert v.finding is f


def test_one_verdict_per_container_per_incident() -> None:
    state, cfg = PolicyState(), settings(incident_seconds=60)
    first = decide(finding(), cfg, state, 1000.0, KNOWN)
    second = decide(finding(Source.BEHAVIOR), cfg, state, 1010.0, KNOWN)
    assert first.action == Action.FREEZE and first.enforce
    assert second.action == Action.NONE and "joined incident" in second.reason
    # Another container is its own incident.
    other = decide(finding(c=C2), cfg, state, 1011.0, KNOWN)
    assert other.action == Action.FREEZE
    # A higher rung escalates the same incident once.
    up = decide(finding(Source.NETWORK), cfg, state, 1020.0, KNOWN)
    assert up.action == Action.QUARANTINE and "escalated" in up.reason
    again = decide(finding(Source.LOGS), cfg, state, 1030.0, KNOWN)
    assert again.action == Action.NONE
    # Long after the last finding (> incident_seconds), a new incident and a new verdict.
    later = decide(finding(), cfg, state, 1030.0 + 61, KNOWN)
    assert later.action == Action.FREEZE and "incident" in later.reason


def test_budget_downgrades_to_alert_per_workload_and_recovers() -> None:
    budget = ResponseBudget(BudgetSettings(per_workload_per_minute={"high": 2}))
    state, cfg = PolicyState(budget=budget), settings()
    refs = [ContainerRef(id=f"{i:064x}", name=f"c{i}", image="x") for i in range(4)]
    got = [decide(finding(c=r), cfg, state, 1000.0 + i, KNOWN) for i, r in enumerate(refs[:3])]
    assert [v.action for v in got] == [Action.FREEZE, Action.FREEZE, Action.ALERT]
    assert "budget of x spent" in got[2].reason and not got[2].enforce
    # Another image has its own budget.
    other = ContainerRef(id="e" * 64, name="other", image="y")
    assert decide(finding(c=other), cfg, state, 1003.0, KNOWN).action == Action.FREEZE
    # The downgraded container's incident stays at "alert": a later finding may still act.
    assert decide(finding(c=refs[2]), cfg, state, 1070.0, KNOWN).action == Action.FREEZE


def test_observe_mode_does_not_spend_the_budget() -> None:
    budget = ResponseBudget(BudgetSettings(per_workload_per_minute={"high": 1}))
    state, cfg = PolicyState(budget=budget), settings(mode="observe")
    for i in range(3):
        v = decide(finding(c=ContainerRef(id=f"{i:064x}", name="", image="")), cfg, state, 1000.0, KNOWN)
        assert v.action == Action.FREEZE and not v.enforce
    assert not state.applied and not budget.counters


def test_guarded_container_still_dedups_alerts() -> None:
    state = PolicyState()
    a = decide(finding(c=EXEMPT), settings(), state, 1.0, KNOWN)
    b = decide(finding(c=EXEMPT), settings(), state, 2.0, KNOWN)
    assert a.action == Action.ALERT and b.action == Action.NONE
