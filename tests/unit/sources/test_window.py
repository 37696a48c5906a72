# SPDX-License-Identifier: Apache-2.0
"""The window aggregator on synthetic events, through the real bus, synchronously."""

from __future__ import annotations

import socket
from pathlib import Path

from agent.events import (
    AuditEvent,
    BehaviorWindow,
    ContainerRef,
    Event,
    FileOpen,
    FlowWindow,
    LogEntry,
    NetConnect,
    PrivilegeEvent,
    ProcessExec,
    ProcSnapshot,
    SyscallWindow,
)
from agent.pipeline import Bus
from agent.runtime.model import Container, ContainerRegistry
from agent.sources.window import MAX_SET, WindowAggregator
from agent.store import Store

A = ContainerRef(id="a" * 64, name="web", image="nginx", image_id="sha256:1")
B = ContainerRef(id="b" * 64, name="db", image="pg", image_id="sha256:2")
A2 = ContainerRef(id="c" * 64, name="web-2", image="nginx", image_id="sha256:1")


def exec_(ref: ContainerRef, path: str, source: str = "ebpf") -> ProcessExec:
    return ProcessExec(ts=1.0, container=ref, ppid=1, uid=0, comm=path.rsplit("/", 1)[-1], filename=path, source=source)


def connect(ref: ContainerRef, daddr: str, dport: int, op: str = "connect") -> NetConnect:
    return NetConnect(
        ts=1.0,
        container=ref,
        op=op,
        comm="curl",
        family=socket.AF_INET,
        protocol="tcp",
        saddr="10.0.0.2",
        sport=40000,
        daddr=daddr,
        dport=dport,
    )


def snapshot(ref: ContainerRef, cpu: float, procs: int = 3) -> ProcSnapshot:
    return ProcSnapshot(
        ts=1.0,
        container=ref,
        processes=procs,
        threads=procs + 2,
        fds=17,
        cpu_seconds=cpu,
        rss_bytes=4096 * 100,
    )


def feed(agg: WindowAggregator, events: list[Event]) -> list[BehaviorWindow]:
    bus: Bus[Event] = Bus("events")
    bus.subscribe(agg.on_event, kind=agg.consumed(), name="window")
    for ev in events:
        bus.process(ev)
    assert bus.stats.errors == {}
    return []


def by_id(ws: list[BehaviorWindow]) -> dict[str, BehaviorWindow]:
    return {w.container.id: w for w in ws if w.container is not None}


def test_every_field_is_filled_from_what_arrived() -> None:
    published: list[BehaviorWindow] = []
    agg = WindowAggregator(10, publish=published.append, clock=lambda: 100.0)
    feed(
        agg,
        [
            exec_(A, "/bin/sh"),
            exec_(A, "/usr/bin/curl"),
            connect(A, "10.0.0.9", 443),
            connect(A, "10.0.0.9", 80),
            connect(A, "0.0.0.0", 8080, op="listen"),
            connect(A, "10.0.0.7", 8080, op="accept"),
            FileOpen(ts=1.0, container=A, comm="cat", path="/etc/shadow", flags=0, write=False),
            PrivilegeEvent(ts=1.0, container=A, comm="su", syscall="setuid", args=(0,)),
            SyscallWindow(ts=1.0, container=A, start=90, end=100, counts={0: 5, 1: 7}, transitions={(0, 1): 4}),
            SyscallWindow(ts=2.0, container=A, start=90, end=100, counts={1: 3}, transitions={(0, 1): 1}),
            FlowWindow(
                ts=1.0,
                container=A,
                start=90,
                end=100,
                bytes_in=1000,
                bytes_out=200,
                packets_in=10,
                packets_out=4,
                peers=frozenset({"10.0.0.9", "10.0.0.8"}),
                dst_ports=frozenset({53}),
                syn_sent=3,
                syn_unanswered=2,
                dns_names=frozenset({"example.org"}),
            ),
            snapshot(A, cpu=5.0),
            LogEntry(ts=1.0, container=A, line="GET /"),
            LogEntry(ts=1.0, container=A, line="GET /x"),
            exec_(B, "/usr/bin/postgres"),
            ProcessExec(ts=1.0, ppid=1, uid=0, comm="host", filename="/usr/bin/host"),  # no container
        ],
    )
    ws = agg.flush(110.0)
    assert published == ws
    w = by_id(ws)[A.id]
    assert (w.start, w.end, w.ts) == (100.0, 110.0, 110.0)
    assert w.syscalls == {0: 5, 1: 10} and w.transitions == {(0, 1): 5}
    assert w.execs == 2
    assert w.binaries == w.new_binaries == {"/bin/sh", "/usr/bin/curl"}
    assert (w.connects, w.accepts, w.listens) == (2, 1, 1)
    assert w.sensitive_opens == 1 and w.privilege_events == 1
    assert w.peers == {"10.0.0.9", "10.0.0.8", "10.0.0.7"}
    assert w.dst_ports == {443, 80, 53}
    assert (w.bytes_in, w.bytes_out, w.packets_in, w.packets_out) == (1000, 200, 10, 4)
    assert w.syn_unanswered == 2 and w.dns_names == {"example.org"}
    assert (w.processes, w.threads, w.fds, w.rss_bytes) == (3, 5, 17, 409600)
    assert w.cpu_seconds == 0.0  # first snapshot: no earlier total to subtract
    assert w.log_lines == 2
    assert w.sources == {"ebpf", "capture", "procfs", "logs"}
    b = by_id(ws)[B.id]
    assert b.execs == 1 and b.connects == 0 and b.sources == {"ebpf"}
    assert len(ws) == 2
    assert agg.counters["unattributed"] == 1


def test_windows_reset_and_cpu_is_a_delta() -> None:
    agg = WindowAggregator(10, clock=lambda: 0.0)
    feed(agg, [snapshot(A, cpu=5.0), exec_(A, "/bin/sh")])
    agg.flush(10)
    feed(agg, [snapshot(A, cpu=7.5), exec_(A, "/bin/sh"), exec_(A, "/bin/ls")])
    w = by_id(agg.flush(20))[A.id]
    assert w.cpu_seconds == 2.5
    assert w.execs == 2
    assert w.binaries == {"/bin/sh", "/bin/ls"}
    assert w.new_binaries == {"/bin/ls"}  # /bin/sh was seen in the first window
    assert w.start == 10 and w.end == 20


def test_new_binaries_are_per_image_and_survive_a_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.db")
    try:
        agg = WindowAggregator(10, store=store, clock=lambda: 0.0)
        feed(agg, [exec_(A, "/bin/sh")])
        agg.flush(10)
        again = WindowAggregator(10, store=store, clock=lambda: 10.0)
        feed(again, [exec_(A2, "/bin/sh"), exec_(B, "/bin/sh")])
        ws = by_id(again.flush(20))
    finally:
        store.close()
    assert ws[A2.id].new_binaries == frozenset()  # same image as A, seen before the restart
    assert ws[B.id].new_binaries == {"/bin/sh"}  # another image


def test_audit_and_ebpf_execs_are_not_double_counted() -> None:
    agg = WindowAggregator(10, clock=lambda: 0.0)
    audit = AuditEvent(
        ts=1.0,
        container=A,
        serial=1,
        record_types=("SYSCALL", "EXECVE"),
        syscall="execve",
        success=True,
        exe="/bin/busybox",
    )
    feed(agg, [exec_(A, "/bin/busybox"), audit, audit])
    w = by_id(agg.flush(10))[A.id]
    assert w.execs == 2  # max over sources: audit saw 2, ebpf 1
    assert w.sources == {"ebpf", "audit"}


def test_registered_idle_container_gets_an_empty_window() -> None:
    reg = ContainerRegistry()
    reg.upsert(Container(id=B.id, name="db", image="pg", image_id="sha256:2", runtime="docker", init_pid=1))
    agg = WindowAggregator(10, registry=reg, clock=lambda: 0.0)
    ws = agg.flush(10)
    assert len(ws) == 1 and ws[0].container is not None and ws[0].container.id == B.id
    assert ws[0].execs == 0 and ws[0].sources == frozenset()


def test_a_flooding_container_is_bounded() -> None:
    agg = WindowAggregator(10, clock=lambda: 0.0)
    feed(agg, [connect(A, f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 443) for i in range(MAX_SET + 50)])
    feed(agg, [connect(B, "10.0.0.1", 443)])
    ws = by_id(agg.flush(10))
    assert len(ws[A.id].peers) == MAX_SET and ws[A.id].connects == MAX_SET + 50
    assert ws[B.id].peers == {"10.0.0.1"}
    assert agg.counters["set_overflow"] == 50


def test_timer_thread_publishes_windows() -> None:
    got: list[BehaviorWindow] = []
    agg = WindowAggregator(0.05, publish=got.append)
    agg.on_event(exec_(A, "/bin/sh"))
    agg.start()
    try:
        import time

        deadline = time.monotonic() + 3
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        agg.stop()
    assert got and got[0].execs == 1


def test_denied_packets_from_netpolicy_reach_the_window() -> None:
    """PacketsDenied (netpolicy's deny counters) are summed into BehaviorWindow.denied_packets."""
    from agent.events import PacketsDenied

    agg = WindowAggregator(10, clock=lambda: 0.0)
    feed(
        agg,
        [
            PacketsDenied(ts=1.0, container=A, start=0.0, end=1.0, packets_in=2, packets_out=5, enforced=True),
            PacketsDenied(ts=2.0, container=A, start=1.0, end=2.0, packets_out=1),
        ],
    )
    w = by_id(agg.flush(10.0))[A.id]
    assert w.denied_packets == 8 and "netpolicy" in w.sources


def test_counts_a_drain_hands_over_land_in_the_window_that_closes() -> None:
    """The eBPF source's known-exec/connect counts are read as the window closes (``add_drain``),
    attributed by cgroup id, so a short window does not read 0 connects and the next one twice as
    many; a drain that fails costs nothing but its own counts."""
    from agent.events import KnownActivity

    reg = ContainerRegistry()
    reg.upsert(
        Container(id=A.id, name="web", image="nginx", image_id="sha256:1", runtime="docker", init_pid=1, cgroup_id=77)
    )
    agg = WindowAggregator(2.0, registry=reg, clock=lambda: 0.0)
    pending = [
        KnownActivity(ts=1.0, cgroup_id=77, connects=3, peers=frozenset({"10.0.0.9"}), dst_ports=frozenset({80}))
    ]
    asked: list[float] = []

    def drain(now: float) -> list[Event]:
        asked.append(now)
        out: list[Event] = list(pending)
        pending.clear()
        return out

    def broken(now: float) -> list[Event]:
        raise RuntimeError("map gone")

    agg.add_drain(broken)
    agg.add_drain(drain)
    (first,) = [w for w in agg.flush(2.0) if w.container and w.container.id == A.id]
    (second,) = [w for w in agg.flush(4.0) if w.container and w.container.id == A.id]
    assert asked == [2.0, 4.0]
    assert (first.connects, first.peers, first.dst_ports) == (3, frozenset({"10.0.0.9"}), frozenset({80}))
    assert second.connects == 0
    assert agg.counters["drain_errors"] == 2


def test_a_window_without_a_snapshot_keeps_the_last_gauges() -> None:
    """The /proc snapshot timer and the window timer drift apart: a window no snapshot landed in
    keeps the container's processes, threads, fds and memory (its CPU growth is counted by the
    next snapshot), rather than reporting a container with nothing running."""
    agg = WindowAggregator(2.0, clock=lambda: 0.0)
    agg.on_event(snapshot(A, cpu=1.0, procs=4))
    agg.flush(2.0)
    agg.on_event(exec_(A, "/bin/true"))
    (gap,) = agg.flush(4.0)
    assert (gap.processes, gap.threads, gap.fds, gap.rss_bytes) == (4, 6, 17, 4096 * 100)
    assert gap.cpu_seconds == 0.0
    agg.on_event(snapshot(A, cpu=1.5, procs=4))
    (after,) = agg.flush(6.0)
    assert after.cpu_seconds == 0.5
