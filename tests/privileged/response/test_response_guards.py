# SPDX-License-Identifier: Apache-2.0
"""The response component on the findings bus with real containers: the registered container is
frozen; an exempt one, one outside the registry and the host are never touched."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agent.context import AgentContext
from agent.events import ContainerRef
from agent.findings import Finding, Severity, Source
from agent.response.component import build
from agent.wiring import attach
from tests.privileged.response.response_helpers import read_in
from tests.support import wait_for

COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.01; done"


def n(c: Any) -> int:
    t = read_in(c, "/tmp/c").strip()
    return int(t) if t.isdigit() else -1


def running(c: Any) -> bool:
    before = n(c)
    time.sleep(0.4)
    return n(c) > before


def test_only_the_registered_unexempt_container_is_frozen(
    run_container: Callable[..., Any], container_record: Any, response_ctx: Callable[..., AgentContext]
) -> None:
    target = run_container("sh", "-c", COUNTER)
    exempt = run_container("sh", "-c", COUNTER, labels={"riskguard.exempt": "true"})
    stranger = run_container("sh", "-c", COUNTER)  # running, but not in the registry
    for c in (target, exempt, stranger):
        wait_for(lambda c=c: n(c) > 0, what="the counter loops to start")
    ctx = response_ctx()
    for c in (target, exempt):
        ctx.registry.upsert(container_record(c))
    comp = build(ctx)
    assert comp is not None
    attach(ctx, comp)
    ctx.findings.start()
    try:
        refs = [
            container_record(target).ref(),
            container_record(exempt).ref(),
            container_record(stranger).ref(),
            None,  # the host
            ContainerRef(id="0" * 64, name=container_record(target).name, image="x"),  # a forged ref
        ]
        for ref in refs:
            ctx.report(
                Finding(container=ref, source=Source.RULE, detector_id="RG-9999", severity=Severity.CRITICAL,
                        summary="denied exec")
            )  # fmt: skip
        assert ctx.findings.drain(10)
        assert not running(target)
        assert running(exempt) and running(stranger)
        actions = comp.engine.records.actions()
        assert [a.container_id for a in actions] == [target.id]
        stored = {f.container_id: f.verdict for f in comp.engine.records.findings()}
        assert stored[exempt.id].action == "alert" and "exempt" in stored[exempt.id].reason
        assert "not a discovered container" in stored[stranger.id].reason
        assert "host" in stored[""].reason
        assert "not a discovered container" in stored["0" * 64].reason
        assert comp.status()["isolations"][0]["container_id"] == target.id
    finally:
        ctx.findings.stop(2)
        comp.stop()
        if comp.engine.records.active(target.id):
            comp.engine.release(target.id)
    assert running(target)
