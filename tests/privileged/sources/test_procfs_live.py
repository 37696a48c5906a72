# SPDX-License-Identifier: Apache-2.0
"""The /proc source on a live container: process count, the listening port of an ``nc -l`` inside
it, a binary written after start, and nothing of another container."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.hostfs import HostPaths
from agent.sources.procfs import snapshot
from tests.support import wait_for


def test_live_snapshot(run_container: Callable[..., Any], container_record: Callable[[Any], Any]) -> None:
    c = run_container(
        "sh", "-c", "mkdir /tmp/x; cp /bin/busybox /tmp/x/sleep; /tmp/x/sleep 600 & nc -l -p 7171 & exec sleep 600"
    )
    other = run_container("sh", "-c", "nc -l -p 7272 & exec sleep 600")
    rec = container_record(c)
    rec_other = container_record(other)

    def listening() -> Any:
        snap = snapshot(HostPaths(), rec)
        return snap if snap is not None and any(port == 7171 for _a, port, _p in snap.listening) else None

    snap = wait_for(listening, timeout=10, what="nc -l -p 7171 listening in the container")
    assert snap.processes == 3  # sleep (init), /tmp/x/sleep, nc
    assert {comm for _pid, _ppid, comm in snap.tree} == {"sleep", "nc"}
    assert all(port != 7272 for _a, port, _p in snap.listening)  # the other container's netns
    assert [(exe, why) for _pid, exe, why in snap.suspicious_exes] == [("/tmp/x/sleep", "not_in_image")]
    assert snap.threads >= 3 and snap.fds >= 9 and snap.rss_bytes > 0
    other_snap = wait_for(lambda: snapshot(HostPaths(), rec_other), what="other container snapshot")
    assert {pid for pid, _pp, _c in other_snap.tree}.isdisjoint({pid for pid, _pp, _c in snap.tree})
