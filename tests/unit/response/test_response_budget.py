# SPDX-License-Identifier: Apache-2.0
"""The response budget (agent/response/budget.py): per workload and severity, critical findings
never downgraded, refused actions queued then retried or escalated, the host-wide breaker only
on a storm across many workloads; and the retired host-wide key."""

from __future__ import annotations

from typing import Any

import structlog

from agent.config import AgentConfig
from agent.events import ContainerRef
from agent.findings import Action, Finding, Severity, Source
from agent.response.budget import ResponseBudget
from agent.settings.response import BudgetSettings


def ref(i: int, image: str, labels: dict[str, str] | None = None) -> ContainerRef:
    return ContainerRef(id=f"{i:064x}", name=f"c{i}", image=image, labels=labels or {})


def finding(c: ContainerRef, severity: Severity = Severity.HIGH, **evidence: Any) -> Finding:
    return Finding(
        container=c, source=Source.RULE, detector_id="RG-0001", severity=severity, summary="x", evidence=evidence
    )


def budget(**kw: Any) -> ResponseBudget:
    return ResponseBudget(BudgetSettings(**{"per_workload_per_minute": {"medium": 1, "high": 2}, **kw}))


def test_a_storm_from_one_image_spends_only_that_images_budget() -> None:
    b = budget()
    storm = [b.take(finding(ref(i, "decoy")), Action.FREEZE, 100.0 + i) for i in range(10)]
    assert storm[:2] == ["", ""] and all("budget of decoy spent (2/min at high)" in r for r in storm[2:])
    assert b.take(finding(ref(99, "victim")), Action.FREEZE, 111.0) == ""
    # Per severity too: the medium budget of the same image is separate.
    assert b.take(finding(ref(50, "decoy"), Severity.MEDIUM), Action.QUARANTINE, 112.0) == ""
    assert b.take(finding(ref(51, "decoy"), Severity.MEDIUM), Action.QUARANTINE, 113.0) != ""


def test_critical_and_must_act_are_never_downgraded() -> None:
    b = budget()
    for i in range(20):
        assert b.take(finding(ref(i, "decoy"), Severity.CRITICAL), Action.FREEZE, 100.0 + i) == ""
    assert b.take(finding(ref(30, "decoy"), Severity.HIGH, must_act=True), Action.FREEZE, 121.0) == ""
    assert b.counters["granted_critical"] == 21 and not b.counters["downgraded"]
    # ... even with the breaker open.
    b.breaker_until = 1000.0
    assert b.take(finding(ref(31, "x"), Severity.CRITICAL), Action.FREEZE, 122.0) == ""
    assert b.take(finding(ref(32, "x")), Action.FREEZE, 122.0).startswith("circuit breaker open")


def test_workload_label_groups_containers_across_images() -> None:
    b = budget(workload_label="app")
    a = [b.take(finding(ref(i, f"img{i}", {"app": "shop"})), Action.FREEZE, 100.0) for i in range(3)]
    assert a[:2] == ["", ""] and "budget of app=shop spent" in a[2]


def test_a_refused_action_is_queued_retried_when_budget_frees_or_escalated() -> None:
    b = budget(retry_seconds=120)
    for i in range(2):
        assert b.take(finding(ref(i, "app")), Action.FREEZE, 100.0) == ""
    late = finding(ref(2, "app"))
    assert b.take(late, Action.FREEZE, 110.0)
    assert b.defer("no-such-finding") is None
    d = b.defer(late.id)
    assert d is not None and d.action == Action.FREEZE and list(b.queue) == [d]
    assert b.due(130.0) == []  # the minute has not passed: still no budget
    assert b.due(161.0) == [d] and not b.queue  # budget freed: taken and spent
    assert b.take(finding(ref(3, "app")), Action.FREEZE, 162.0) == ""
    assert b.take(finding(ref(4, "app")), Action.FREEZE, 162.5) != ""  # the retry spent one
    # One that never gets budget is escalated after retry_seconds.
    stuck = finding(ref(5, "app"))
    b.take(stuck, Action.FREEZE, 163.0)
    b.defer(stuck.id)
    assert b.expired(200.0) == []
    [old] = b.expired(300.0)
    assert old.finding is stuck and not b.queue and b.counters["escalated"] == 1


def test_the_breaker_trips_only_on_a_storm_across_many_workloads(capsys: Any) -> None:
    structlog.configure(processors=[structlog.processors.JSONRenderer()], logger_factory=structlog.PrintLoggerFactory())
    b = budget(breaker_workloads=3, breaker_seconds=30)
    # One image overspending a lot: no breaker.
    for i in range(20):
        b.take(finding(ref(i, "decoy")), Action.FREEZE, 100.0 + i * 0.1)
    assert not b.breaker_open(103.0)
    # Three workloads overspent within a minute: open; a fourth image's high action is queued.
    for img in ("b", "c"):
        for i in range(3):
            b.take(finding(ref(100 + i, img)), Action.FREEZE, 104.0)
    assert b.breaker_open(104.0) and b.breaker_trips == 1
    assert b.take(finding(ref(200, "fresh")), Action.FREEZE, 105.0).startswith("circuit breaker open")
    st = b.status(105.0)
    assert st["breaker"] == "open" and st["workloads_overspent"] == ["b", "c", "decoy"]
    assert b.due(105.0) == []  # nothing is retried while open
    assert not b.breaker_open(135.0)
    assert b.take(finding(ref(201, "fresh")), Action.FREEZE, 135.0) == ""
    out = capsys.readouterr().out
    assert '"event": "response_breaker_tripped"' in out and '"event": "response_breaker_closed"' in out


def test_the_retired_host_wide_key_becomes_every_workloads_budget(capsys: Any) -> None:
    structlog.configure(processors=[structlog.processors.JSONRenderer()], logger_factory=structlog.PrintLoggerFactory())
    cfg = AgentConfig.model_validate({"response": {"max_actions_per_minute": 7}})
    assert cfg.response.budget.per_workload_per_minute == {"low": 7, "medium": 7, "high": 7}
    both = {"max_actions_per_minute": 4, "budget": {"per_workload_per_minute": {"high": 9}}}
    assert AgentConfig.model_validate({"response": both}).response.budget.per_workload_per_minute == {
        "low": 4,
        "medium": 4,
        "high": 9,
    }
    assert "response.max_actions_per_minute" in capsys.readouterr().out
