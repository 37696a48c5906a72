# SPDX-License-Identifier: Apache-2.0
"""The /proc source on a live container: process count, the listening port of an ``nc -l`` inside
it, a binary written after start, nothing of another container, and the same listening sockets
through sock_diag as through /proc."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.runtime.model import ContainerRegistry
from agent.settings.sources import ProcfsSettings
from agent.sources import procfs, sockdiag, window
from agent.sources.procfs import snapshot
from agent.wiring import attach
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


def test_snapshots_reach_the_behaviour_window(
    run_container: Callable[..., Any], container_record: Callable[[Any], Any], make_ctx: Callable[..., AgentContext]
) -> None:
    """procfs source → bus → window aggregator, on a live container: the window carries its counts."""
    c = run_container("sh", "-c", "sleep 600 & sleep 600 & exec sleep 600")
    ctx = make_ctx()
    ctx.registry.upsert(container_record(c))
    src = procfs.build(ctx)
    agg = window.build(ctx)
    assert src is not None and agg is not None
    attach(ctx, src, agg, start=False)  # subscribed as the agent does; the test drives collect/flush
    ctx.events.start()
    wait_for(lambda: (s := src.collect()) and s[0].processes == 3, what="3 processes in the container")
    time.sleep(0.2)
    src.collect()  # a second snapshot: CPU becomes a delta
    assert ctx.events.drain()
    (w,) = agg.flush(time.time())
    assert w.container is not None and w.container.id == c.id
    assert w.processes == 3 and w.threads == 3 and w.rss_bytes > 0 and w.fds >= 9
    assert w.sources == {"procfs"} and w.cpu_seconds >= 0.0


UDHCPD = (
    "mkdir -p /var/lib/misc && touch /var/lib/misc/udhcpd.leases && printf 'interface eth0\\n' > /tmp/u.conf && "
    "udhcpd -f /tmp/u.conf & nc -l -p 7171 & exec sleep 600"
)


def test_sock_diag_lists_what_proc_lists(
    run_container: Callable[..., Any], container_record: Callable[[Any], Any]
) -> None:
    """Listening TCP (nc -l) and bound UDP (udhcpd on 67) sockets of a real container, through
    sock_diag in its netns, equal the /proc/<pid>/net tables; the source uses sock_diag."""
    c = run_container("sh", "-c", UDHCPD, network_mode="bridge")
    rec = container_record(c)
    paths = HostPaths()

    def both() -> Any:
        from_proc = procfs.listening_sockets(paths, rec.init_pid)
        ports = {(port, proto[:3]) for _a, port, proto in from_proc}
        return from_proc if {(7171, "tcp"), (67, "udp")} <= ports else None

    from_proc = wait_for(both, timeout=10, what="nc on 7171/tcp and udhcpd on 67/udp")
    sock = sockdiag.open_diag_socket(paths.pid_netns(rec.init_pid))
    try:
        assert sockdiag.listening(sock) == from_proc
    finally:
        sock.close()
    reg = ContainerRegistry()
    reg.upsert(rec)
    got: list[Any] = []
    src = procfs.ProcfsSource(ProcfsSettings(), paths, reg, got.append, interval=3600)
    try:
        src.collect()
        src.collect()  # the second one reuses the container's sock_diag socket
    finally:
        src.stop()
    assert [tuple(s.listening) for s in got] == [tuple(from_proc)] * 2
    assert src.status().get("listening_from_proc", 0) == 0
