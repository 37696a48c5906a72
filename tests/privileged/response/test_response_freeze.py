# SPDX-License-Identifier: Apache-2.0
"""Real containers frozen and thawed through the v1 freezer and the v2 cgroup.freeze."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.response import freeze as freezer
from agent.response.engine import ResponseEngine
from tests.privileged.response.response_helpers import read_in
from tests.support import wait_for

COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.01; done"


def counter(c: Any) -> int:
    text = read_in(c, "/tmp/c").strip()
    return int(text) if text.isdigit() else -1


def advancing(c: Any, seconds: float = 0.4) -> bool:
    before = counter(c)
    time.sleep(seconds)
    return counter(c) > before


@pytest.mark.parametrize("method", ["v1", "v2"])
def test_freeze_stops_the_container_and_thaw_resumes_it(
    method: str, run_container: Callable[..., Any], container_record: Any, response_ctx: Callable[..., AgentContext]
) -> None:
    c = run_container("sh", "-c", COUNTER)
    wait_for(lambda: counter(c) > 0, what="the counter loop to start")
    assert advancing(c), "the counter loop does not run"
    ctx = response_ctx(freezer=method)
    ctx.registry.upsert(container_record(c))
    engine = ResponseEngine(ctx)
    rec = engine.isolate(c.id, "freeze")
    assert rec.phase == "confirmed" and rec.state["freezer"] == method
    if method == "v1":
        assert Path(f"/sys/fs/cgroup/freezer/docker/{c.id}/freezer.state").read_text().strip() == "FROZEN"
    else:
        events = Path(f"/sys/fs/cgroup/unified/docker/{c.id}/cgroup.events").read_text()
        assert "frozen 1" in events.splitlines()
        assert Path(f"/sys/fs/cgroup/unified/docker/{c.id}/cgroup.freeze").read_text().strip() == "1"
    assert not advancing(c, 0.5), "the container's processes kept running while frozen"
    assert engine.isolations()[0]["freezer_state"] == "frozen"
    # Evidence was taken before the freeze: the process tree names the loop's shell.
    [ev] = engine.records.evidence(rec.id)
    assert any(p["comm"] == "sh" for p in ev["processes"])
    [released] = engine.release(c.id)
    assert released.phase == "released"
    assert freezer.current_state(ctx.paths, rec.state) == "thawed"
    assert advancing(c), "the container did not resume after thaw"


def test_freeze_wins_against_a_fork_storm(run_container: Callable[..., Any], container_record: Any) -> None:
    # Two shells forking short-lived children as fast as they can keep the v1 freezer in
    # FREEZING; the runc-style retry must still reach FROZEN.
    storm = "for n in 1 2; do (while true; do /bin/true & /bin/true; done) & done; wait"
    c = run_container("sh", "-c", storm, pids_limit=512)
    time.sleep(0.5)
    rec = container_record(c)
    result = freezer.freeze(HostPaths(), rec, "v1", timeout=10)
    try:
        assert result.ok, result.detail
        assert freezer.read_state("v1", Path(result.state["cgroup"])) == "frozen"
        procs = Path(f"/sys/fs/cgroup/pids/docker/{c.id}/pids.current").read_text()
        time.sleep(0.3)
        assert Path(f"/sys/fs/cgroup/pids/docker/{c.id}/pids.current").read_text() == procs
    finally:
        assert freezer.thaw(HostPaths(), rec.id, result.state).ok


def test_dry_run_and_refusals_do_not_touch_the_cgroup(run_container: Callable[..., Any], container_record: Any) -> None:
    c = run_container("sh", "-c", COUNTER)
    wait_for(lambda: counter(c) > 0, what="the counter loop to start")
    rec = container_record(c)
    dry = freezer.freeze(HostPaths(), rec, "v2", dry_run=True)
    assert dry.ok and dry.dry_run and "cgroup.freeze=1" in dry.detail
    assert Path(f"/sys/fs/cgroup/unified/docker/{c.id}/cgroup.freeze").read_text().strip() == "0"
    # A record that points at the root cgroup (the host) is refused before any write.
    import dataclasses

    host = dataclasses.replace(rec, cgroup_v1={"freezer": "/"}, cgroup_v2="/")
    for method in ("v1", "v2", "auto"):
        r = freezer.freeze(HostPaths(), host, method)
        assert not r.ok and "of its own" in r.detail
    assert Path("/sys/fs/cgroup/freezer/freezer.state").exists() is False or (
        Path("/sys/fs/cgroup/freezer/freezer.state").read_text().strip() == "THAWED"
    )
    assert advancing(c)


def test_a_sweep_removes_the_frozen_cgroup_a_removed_container_left(
    run_container: Callable[..., Any], container_record: Any, response_ctx: Callable[..., AgentContext]
) -> None:
    # docker rm -f thaws, kills and removes; a sweep that re-freezes in between (the thaw looks
    # like a `docker unpause`) makes runc's rmdir fail and the empty, frozen cgroup stays. The
    # test leaves that state deterministically: the container removed, its freezer directory made
    # again and frozen. The sweep removes it and closes the record; a frozen live container (the
    # twin) keeps its cgroup and its freeze.
    gone, twin = run_container("sh", "-c", COUNTER), run_container("sh", "-c", COUNTER)
    ctx = response_ctx(freezer="v1")
    for c in (gone, twin):
        wait_for(lambda c=c: counter(c) > 0, what="the counter loops to start")
        ctx.registry.upsert(container_record(c))
    engine = ResponseEngine(ctx)
    rec, kept = engine.isolate(gone.id, "freeze"), engine.isolate(twin.id, "freeze")
    cg = Path(rec.state["cgroup"])
    assert rec.phase == kept.phase == "confirmed" and cg == Path(f"/sys/fs/cgroup/freezer/docker/{gone.id}")
    (cg / "freezer.state").write_text("THAWED")
    gone.remove(force=True)
    wait_for(lambda: not cg.exists(), 10, what="docker to remove the cgroup")
    cg.mkdir()
    try:
        (cg / "freezer.state").write_text("FROZEN")
        assert freezer.read_state("v1", cg) == "frozen" and freezer.holds_no_process("v1", cg)
        engine.sweep()
        assert not cg.exists(), "the sweep left the emptied frozen cgroup"
        after = engine.records.get(rec.id)
        assert after is not None and after.phase == "gone" and not after.active
        twin_rec = engine.records.get(kept.id)
        assert twin_rec is not None and twin_rec.phase == "confirmed"
        assert freezer.current_state(ctx.paths, kept.state) == "frozen" and not advancing(twin, 0.5)
    finally:
        if cg.exists():
            (cg / "freezer.state").write_text("THAWED")
            cg.rmdir()
    engine.release(twin.id)
    assert advancing(twin)
