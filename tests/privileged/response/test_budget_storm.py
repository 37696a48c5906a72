# SPDX-License-Identifier: Apache-2.0
"""A budget storm from one image never blocks a critical freeze of another (agent/response/budget.py).

Three containers of a decoy image raise high findings at once (a decoy campaign: the findings go
through the findings bus like a detector's). With a budget of 2 actions a minute per workload,
two decoys are frozen and the third is queued, not dropped. Then a container of another image
reads /etc/shadow in its shell session: the kernel stops the read and the fast path freezes the
container (critical, never downgraded), and a high finding on a second container of that image
is still acted on: the decoys spent only their own image's budget. The queued decoy is frozen
once its budget frees (the test shortens the budget window to see it).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from agent.findings import Finding, Severity, Source
from tests.privileged.response.kstop_harness import KStop, running_kstop
from tests.support import TEST_IMAGE, wait_for

DECOY_IMAGE = "rgtest-h12-decoy:latest"


@pytest.fixture(scope="module")
def storm(docker_client: Any) -> Iterator[KStop]:
    subprocess.run(["docker", "tag", TEST_IMAGE, DECOY_IMAGE], check=True, capture_output=True)
    roles: dict[str, dict[str, Any]] = {f"decoy{i}": {"image": DECOY_IMAGE} for i in range(3)}
    roles |= {"victim": {}, "victim2": {}}
    try:
        with running_kstop(docker_client, {"budget": {"per_workload_per_minute": {"high": 2}}}, roles) as k:
            yield k
    finally:
        subprocess.run(["docker", "rmi", DECOY_IMAGE], check=False, capture_output=True)


def _high(k: KStop, role: str) -> Finding:
    return Finding(
        container=k.records[role].ref(),
        source=Source.RULE,
        detector_id="RG-0001",
        severity=Severity.HIGH,
        summary=f"decoy campaign in {role}",
    )


def test_a_storm_from_one_image_never_blocks_a_critical_freeze_of_another(storm: KStop) -> None:
    k = storm
    engine, comp = k.response.engine, k.response
    for i in range(3):
        k.ctx.report(_high(k, f"decoy{i}"))
    k.ctx.findings.drain(10)
    frozen = [r for r in (f"decoy{i}" for i in range(3)) if k.freezer_state(r) == "FROZEN"]
    assert len(frozen) == 2, frozen
    status = comp.status()["budget"]
    assert status["queued_total"] == 1 and status["queued"][0]["workload"] == DECOY_IMAGE, status
    assert status["breaker"] == "closed"
    # The victim image: the kernel stops a shadow read and the container is frozen at once.
    k.type_in("victim", "cat /etc/shadow > /tmp/out; echo done > /tmp/done")
    wait_for(lambda: k.freezer_state("victim") == "FROZEN", timeout=10, what="the victim frozen")
    [rec] = engine.records.active(k.records["victim"].id)
    assert rec.actor == "kernel:RG-0002" and rec.phase == "confirmed"
    assert k.file_in("victim", "/tmp/out").stat().st_size == 0
    # A high (not critical) finding of the same image is not blocked by the decoys either.
    k.ctx.report(_high(k, "victim2"))
    k.ctx.findings.drain(10)
    assert k.freezer_state("victim2") == "FROZEN"
    # The queued decoy is frozen once its budget frees (a 1 s window instead of a minute).
    comp.budget.window = 1.0
    queued = next(r for r in (f"decoy{i}" for i in range(3)) if r not in frozen)
    wait_for(lambda: k.freezer_state(queued) == "FROZEN", timeout=10, what="the queued decoy frozen")
    [late] = engine.records.active(k.records[queued].id)
    assert late.actor == "policy:RG-0001 (queued)" and "applied after" in late.reason
    assert comp.budget.counters["retried"] == 1 and not comp.budget.queue
