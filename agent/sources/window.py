# SPDX-License-Identifier: Apache-2.0
"""The window aggregator: every source's events per container folded into one ``BehaviorWindow``
every ``behavior.window_seconds``. This is what behaviour analysis consumes.

Events are counted in the window open when they arrive (their ``ts`` is not re-sorted: sources
deliver within a second, windows are ≥ seconds). ``flush(now)`` closes the current window of
every container and returns the windows; the daemon drives it from a timer thread, tests call it
directly. ``new_binaries`` are executables never seen before for the container's image (kept in
the store, so a restart does not make every binary new again).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from agent.context import AgentContext
from agent.events import (
    AuditEvent,
    BehaviorWindow,
    ContainerRef,
    Event,
    FileOpen,
    FlowWindow,
    KnownActivity,
    LogEntry,
    NetConnect,
    PacketsDenied,
    PrivilegeEvent,
    ProcessExec,
    ProcSnapshot,
    SyscallWindow,
)
from agent.pipeline import Periodic
from agent.runtime.model import ContainerRegistry
from agent.sources.collectors import StatusCollector
from agent.store import Store

log = structlog.get_logger("agent.sources.window")

CONSUMED: tuple[type[Event], ...] = (
    ProcessExec,
    NetConnect,
    KnownActivity,
    FileOpen,
    PrivilegeEvent,
    SyscallWindow,
    FlowWindow,
    ProcSnapshot,
    LogEntry,
    AuditEvent,
    PacketsDenied,
)
# Bounds per container per window: a flooding container cannot grow our memory without limit.
MAX_SET = 4096
MAX_BINARIES_PER_IMAGE = 20000

_MIGRATIONS = [
    """CREATE TABLE window_binaries (
        image TEXT NOT NULL,
        path TEXT NOT NULL,
        first_seen REAL NOT NULL,
        PRIMARY KEY (image, path)
    )""",
]


@dataclass
class _Acc:
    """What arrived for one container in the open window."""

    ref: ContainerRef
    syscalls: Counter[int] = field(default_factory=Counter)
    transitions: Counter[tuple[int, int]] = field(default_factory=Counter)
    execs_by_source: Counter[str] = field(default_factory=Counter)
    binaries: set[str] = field(default_factory=set)
    new_binaries: set[str] = field(default_factory=set)
    connects: int = 0
    accepts: int = 0
    listens: int = 0
    sensitive_opens: int = 0
    privilege_events: int = 0
    peers: set[str] = field(default_factory=set)
    dst_ports: set[int] = field(default_factory=set)
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    syn_unanswered: int = 0
    dns_names: set[str] = field(default_factory=set)
    snapshot: ProcSnapshot | None = None
    log_lines: int = 0
    denied_packets: int = 0
    sources: set[str] = field(default_factory=set)
    overflow: int = 0


def _add_bounded(s: set[Any], value: Any, acc: _Acc) -> None:
    if value in s:
        return
    if len(s) >= MAX_SET:
        acc.overflow += 1
        return
    s.add(value)


def _key(ref: ContainerRef) -> str:
    return ref.image_id or ref.image


class WindowAggregator:
    """Joins every source per container into ``BehaviorWindow`` values."""

    name = "window"

    def __init__(
        self,
        window_seconds: float,
        publish: Callable[[BehaviorWindow], Any] | None = None,
        registry: ContainerRegistry | None = None,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_seconds = window_seconds
        self._publish = publish
        self.registry = registry
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._acc: dict[str, _Acc] = {}
        self._cpu_total: dict[str, float] = {}  # container -> cumulative CPU of its last snapshot
        self._last_snap: dict[str, ProcSnapshot] = {}  # container -> its last snapshot (gauges)
        self._seen: dict[str, set[str]] = {}  # image -> binaries seen
        self._window_start = clock()
        self.counters: Counter[str] = Counter()
        self._timer = Periodic("window-timer", window_seconds, self._tick)
        # Sources that count in the kernel and hand their counts over on request (``add_drain``).
        self._drains: list[Callable[[float], Sequence[Event]]] = []
        if store is not None:
            store.migrate("window", _MIGRATIONS)
            for row in store.query("SELECT image, path FROM window_binaries"):
                self._seen.setdefault(row["image"], set()).add(row["path"])

    # --- wiring ------------------------------------------------------------------------
    def consumed(self) -> tuple[type[Event], ...]:
        """The event types ``on_event`` makes windows of (``agent.wiring`` subscribes them)."""
        return CONSUMED

    def start(self, ctx: AgentContext | None = None) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def status(self) -> Mapping[str, Any]:
        with self._lock:
            open_containers = len(self._acc)
        return {"window_seconds": self.window_seconds, "open_containers": open_containers, **self.counters}

    def _tick(self) -> None:
        try:
            self.flush(self.clock())
        except Exception as exc:  # a bad window must not end the timer
            self.counters["flush_errors"] += 1
            log.error("window_flush_failed", error=repr(exc))

    # --- folding -----------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        """Fold one event into its container's open window (events without container are ignored)."""
        ref = ev.container
        if ref is None:
            self.counters["unattributed"] += 1
            return
        with self._lock:
            acc = self._acc.get(ref.id)
            if acc is None:
                acc = self._acc[ref.id] = _Acc(ref=ref)
            self._fold(acc, ev)
        self.counters["events"] += 1

    def _fold(self, acc: _Acc, ev: Event) -> None:
        if isinstance(ev, ProcessExec):
            acc.sources.add(ev.source)
            acc.execs_by_source[ev.source] += 1
            self._binary(acc, ev.filename)
        elif isinstance(ev, AuditEvent):
            acc.sources.add("audit")
            if ev.syscall in ("execve", "execveat") and ev.success is not False:
                acc.execs_by_source["audit"] += 1
                self._binary(acc, ev.exe or (ev.paths[0] if ev.paths else ""))
        elif isinstance(ev, NetConnect):
            acc.sources.add(ev.source)
            if ev.op == "connect":
                acc.connects += 1
                _add_bounded(acc.peers, ev.daddr, acc)
                _add_bounded(acc.dst_ports, ev.dport, acc)
            elif ev.op == "accept":
                acc.accepts += 1
                _add_bounded(acc.peers, ev.daddr, acc)
            elif ev.op == "listen":
                acc.listens += 1
        elif isinstance(ev, KnownActivity):
            # Execs and connects the kernel counted instead of sending (the image knew them).
            acc.sources.add(ev.source)
            acc.execs_by_source[ev.source] += ev.execs
            for path in ev.binaries:
                self._binary(acc, path)
            acc.connects += ev.connects
            for peer in ev.peers:
                _add_bounded(acc.peers, peer, acc)
            for port in ev.dst_ports:
                _add_bounded(acc.dst_ports, port, acc)
        elif isinstance(ev, FileOpen):
            acc.sources.add(ev.source)
            acc.sensitive_opens += 1
        elif isinstance(ev, PrivilegeEvent):
            acc.sources.add(ev.source)
            acc.privilege_events += 1
        elif isinstance(ev, SyscallWindow):
            acc.sources.add("ebpf")
            acc.syscalls.update(ev.counts)
            acc.transitions.update(ev.transitions)
        elif isinstance(ev, FlowWindow):
            acc.sources.add("capture")
            acc.bytes_in += ev.bytes_in
            acc.bytes_out += ev.bytes_out
            acc.packets_in += ev.packets_in
            acc.packets_out += ev.packets_out
            acc.syn_unanswered += ev.syn_unanswered
            for p in ev.peers:
                _add_bounded(acc.peers, p, acc)
            for port in ev.dst_ports:
                _add_bounded(acc.dst_ports, port, acc)
            for name in ev.dns_names:
                _add_bounded(acc.dns_names, name, acc)
        elif isinstance(ev, ProcSnapshot):
            acc.sources.add("procfs")
            acc.snapshot = ev
        elif isinstance(ev, LogEntry):
            acc.sources.add("logs")
            acc.log_lines += 1
        elif isinstance(ev, PacketsDenied):
            acc.sources.add("netpolicy")
            acc.denied_packets += ev.packets

    def _binary(self, acc: _Acc, path: str) -> None:
        if not path:
            return
        _add_bounded(acc.binaries, path, acc)
        image = _key(acc.ref)
        seen = self._seen.setdefault(image, set())
        if path in seen or len(seen) >= MAX_BINARIES_PER_IMAGE:
            return
        seen.add(path)
        acc.new_binaries.add(path)
        if self.store is not None:
            self.store.execute(
                "INSERT OR IGNORE INTO window_binaries (image, path, first_seen) VALUES (?, ?, ?)",
                (image, path, self.clock()),
            )

    def add_drain(self, drain: Callable[[float], Sequence[Event]]) -> None:
        """``drain(now)`` is asked for its pending events just before each window closes
        (the eBPF source's known-exec/connect counts), so they land in the window they happened in."""
        self._drains.append(drain)

    def _drain(self, now: float) -> None:
        for drain in self._drains:
            try:
                pending = drain(now)
            except Exception as exc:  # the window closes anyway; the sync thread reads them later
                self.counters["drain_errors"] += 1
                log.error("window_drain_failed", error=repr(exc))
                continue
            for ev in pending:
                if ev.container is None and ev.cgroup_id and self.registry is not None:
                    c = self.registry.by_cgroup_id(ev.cgroup_id)
                    if c is not None:
                        ev = dataclasses.replace(ev, container=c.ref())
                self.on_event(ev)

    # --- closing -----------------------------------------------------------------------
    def flush(self, now: float) -> list[BehaviorWindow]:
        """Close the open window at ``now``: one ``BehaviorWindow`` per container that sent
        anything or is registered (idle containers get an all-zero window); publish and return them."""
        self._drain(now)
        with self._lock:
            start, self._window_start = self._window_start, now
            accs, self._acc = self._acc, {}
            if self.registry is not None:
                for c in self.registry.all():
                    if c.id not in accs:
                        accs[c.id] = _Acc(ref=c.ref())
            windows = [self._close(acc, start, now) for acc in accs.values()]
            live = set(accs)
            for cid in [c for c in self._cpu_total if c not in live]:
                del self._cpu_total[cid]
            for cid in [c for c in self._last_snap if c not in live]:
                del self._last_snap[cid]
        for w in windows:
            self.counters["windows"] += 1
            if self._publish is not None:
                self._publish(w)
        return windows

    def _close(self, acc: _Acc, start: float, end: float) -> BehaviorWindow:
        snap = acc.snapshot
        cpu = 0.0
        if snap is None:
            # No snapshot landed in this window (the /proc timer and the window timer drift, more
            # so under load): the container's processes, fds and memory did not vanish, so the
            # gauges keep their last reading; CPU growth is counted by the next snapshot.
            snap = self._last_snap.get(acc.ref.id)
        else:
            self._last_snap[acc.ref.id] = snap
            # Snapshots carry cumulative CPU of the live processes; the window gets the growth
            # (0 when processes exited and the total shrank).
            prev = self._cpu_total.get(acc.ref.id)
            cpu = max(0.0, snap.cpu_seconds - prev) if prev is not None else 0.0
            self._cpu_total[acc.ref.id] = snap.cpu_seconds
        if acc.overflow:
            self.counters["set_overflow"] += acc.overflow
        return BehaviorWindow(
            ts=end,
            container=acc.ref,
            start=start,
            end=end,
            syscalls=dict(acc.syscalls),
            transitions=dict(acc.transitions),
            # ebpf and audit may both report an exec: count the larger of the two, not the sum.
            execs=max(acc.execs_by_source.values(), default=0),
            new_binaries=frozenset(acc.new_binaries),
            binaries=frozenset(acc.binaries),
            connects=acc.connects,
            accepts=acc.accepts,
            listens=acc.listens,
            sensitive_opens=acc.sensitive_opens,
            privilege_events=acc.privilege_events,
            peers=frozenset(acc.peers),
            dst_ports=frozenset(acc.dst_ports),
            bytes_in=acc.bytes_in,
            bytes_out=acc.bytes_out,
            packets_in=acc.packets_in,
            packets_out=acc.packets_out,
            syn_unanswered=acc.syn_unanswered,
            dns_names=frozenset(acc.dns_names),
            cpu_seconds=cpu,
            rss_bytes=snap.rss_bytes if snap else 0,
            fds=snap.fds if snap else 0,
            processes=snap.processes if snap else 0,
            threads=snap.threads if snap else 0,
            log_lines=acc.log_lines,
            denied_packets=acc.denied_packets,
            sources=frozenset(acc.sources),
        )


def build(ctx: AgentContext) -> WindowAggregator | None:
    """The aggregator component (``None`` when behaviour analysis is disabled)."""
    if not ctx.config.behavior.enabled:
        return None
    agg = WindowAggregator(ctx.config.behavior.window_seconds, ctx.publish, ctx.registry, ctx.store)
    ctx.control("window.status", lambda _params: dict(agg.status()))
    ctx.metrics.register(
        StatusCollector(
            "riskguard_window",
            agg.status,
            [("windows", "Behaviour windows emitted"), ("unattributed", "Events without a container (ignored)")],
        )
    )
    return agg
