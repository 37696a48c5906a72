# SPDX-License-Identifier: Apache-2.0
"""The in-kernel first response, user-space half (``probes/act.h``): the decision tables the
probes read (which rules each monitored cgroup enforces, the exec stop prefixes) and the reader
of the must-act ring buffer.

The must-act buffer has its own ring buffer manager and its own thread (``ebpf-act``), blocked
in ``epoll_wait`` on that one buffer: a must-act record never waits behind the other probes'
records, their /proc completion or the events bus. Each record goes straight to the response's
fast path (``KernelActs.on_stop``), on this thread. The per-cgroup rule masks come from the
same object (``KernelActs.rules_for``): the source never decides what a container enforces.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import structlog

from agent.decoders.ebpf import DecodeError, KernelStop, decode_act
from agent.runtime.model import Container
from agent.settings.response import KernelStopSettings
from agent.sources.ebpf.loader import fill_prefix_trie
from agent.sources.ebpf.program import ACT_OUTPUT

log = structlog.get_logger("agent.sources.ebpf")

# How often every cgroup's rule mask is recomputed (an image's baseline finishing its learning
# period, an operator's allowance, an override changed by a reload).
RULES_REFRESH_SECONDS = 5.0
POLL_MS = 100
COMM_LEN = 15
RECENT_KEPT = 256
ORPHAN_SECONDS = 30.0  # a stop older than this whose record was never handled is continued
COMM_CREDENTIAL, COMM_RUNTIME = 1, 2  # RG_COMM_* of probes/act.h
SWITCH_INTERVAL = 5e-5  # seconds: the GIL hand-over interval while a must-act record is handled


class KernelActs(Protocol):
    """What the response gives the eBPF source: the rules per container and the fast path."""

    def rules_for(self, c: Container) -> int:
        """The RG_RULE_* bits the kernel enforces in ``c``'s cgroup (0: observe, stop nothing)."""
        ...

    def on_stop(self, stop: KernelStop) -> None:
        """Handle a must-act record (the task is stopped): freeze, then continue the task."""
        ...


class ActReader:
    """The must-act ring buffer's reader thread and the ``rg_act_mask`` / ``rg_exec_stop`` maps."""

    def __init__(
        self, settings: KernelStopSettings, credential_comms: Iterable[str] = (), runtime_comms: Iterable[str] = ()
    ) -> None:
        self.settings = settings
        # The detectors' exceptions by name (probes/act.h rg_act_comm_ok): credential tools
        # (detectors.credential_consumers) and the container runtime (detectors.runtime_comms).
        self.exempt: dict[str, int] = {}
        for name in credential_comms:
            self.exempt[name[:COMM_LEN]] = self.exempt.get(name[:COMM_LEN], 0) | COMM_CREDENTIAL
        for name in runtime_comms:
            self.exempt[name[:COMM_LEN]] = self.exempt.get(name[:COMM_LEN], 0) | COMM_RUNTIME
        self.acts: KernelActs | None = None
        self.bpf: Any = None
        self.records = 0
        self.malformed = 0
        self.by_rule: Counter[str] = Counter()
        self.handler_errors = 0
        self._rb: int | None = None
        self._cb: Any = None
        self._mask: dict[int, int] = {}  # cgroup id -> bits written
        self.recent: OrderedDict[int, tuple[int, int]] = OrderedDict()  # pid -> stop times, handled
        self.orphans = 0  # stopped tasks continued because their record was never handled
        self._rt = False  # the thread runs SCHED_FIFO while it waits (settings.realtime)
        self._tid = 0  # the ebpf-act thread's id (0 until it runs)
        self._mono_offset = time.time() - time.monotonic()

    @property
    def available(self) -> bool:
        """The kernel response is compiled in (ring buffers) and the buffer is open."""
        return self._rb is not None

    @property
    def thread_id(self) -> int:
        """The ``ebpf-act`` thread's kernel thread id (0 until it runs)."""
        return self._tid

    def open(self, bpf: Any) -> bool:
        """Open the must-act buffer on its own manager; False when the program has none."""
        self.bpf = bpf
        try:
            table = bpf[ACT_OUTPUT.encode()]
        except KeyError:
            return False  # perf buffer build: probes/act.h is compiled out
        from bcc.libbcc import _RINGBUF_CB_TYPE, lib

        self._cb = _RINGBUF_CB_TYPE(self._on_record)
        rb = lib.bpf_new_ringbuf(table.map_fd, self._cb, None)
        if not rb:
            log.error("ebpf_act_buffer_failed")
            return False
        self._rb = rb
        if self.settings.exec_prefixes:
            fill_prefix_trie(bpf[b"rg_exec_stop"], dict.fromkeys(self.settings.exec_prefixes, 1))
        comms = bpf[b"rg_act_comm_ok"]
        for name, bits in self.exempt.items():
            key = comms.Key()
            key.c = name.encode()[:COMM_LEN]  # as the kernel truncates comm (TASK_COMM_LEN - 1)
            comms[key] = ctypes.c_ubyte(bits)
        return True

    def close(self) -> None:
        """Stop enforcing (every mask entry deleted), then continue the tasks of the records
        still in the buffer: once the reader is gone nobody would."""
        if self._rb is None:
            return
        from bcc.libbcc import lib

        for cg in list(self._mask):
            self.forget(cg)
        self.acts = None  # records drained now only continue their task
        lib.bpf_consume_ringbuf(self._rb)
        lib.bpf_free_ringbuf(self._rb)
        self._rb = None

    def _on_record(self, _ctx: Any, data: Any, size: int) -> int:
        raw = ctypes.string_at(data, size)
        try:
            stop = decode_act(raw, self._mono_offset)
        except DecodeError as exc:
            self.malformed += 1
            log.warning("ebpf_act_record_malformed", error=str(exc))
            return 0
        self.records += 1
        self.by_rule[stop.rule] += 1
        acts = self.acts
        if acts is None:
            continue_task(stop.pid)  # nobody to freeze: never leave a task stopped
            return 0
        rt = self._rt
        if rt:
            self._set_realtime(False)
        # While this record is handled, a thread holding the GIL hands it over within
        # SWITCH_INTERVAL instead of 5 ms: each syscall on the freeze path (intent, freezer
        # write, read-back) gives the GIL up and must get it back, behind the other threads.
        switch = sys.getswitchinterval()
        if self.settings.realtime:
            sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            acts.on_stop(stop)
        except Exception as exc:  # the fast path failed: the task must not stay stopped
            self.handler_errors += 1
            continue_task(stop.pid)
            log.error("ebpf_act_handler_failed", pid=stop.pid, rule=stop.rule, error=repr(exc))
        finally:
            sys.setswitchinterval(switch)
            if rt:
                self._set_realtime(True)
            self._collect(stop.pid)
        return 0

    def _collect(self, pid: int) -> None:
        """Move ``pid``'s stop times out of ``rg_act_stop`` once its record is handled (final by
        then: the SIGCONT cancelled a stop not yet taken). What stays in the map was never
        handled (``sweep_orphans``)."""
        times = self._read_stop(pid, delete=True)
        if times is not None:
            self.recent[pid] = times
            while len(self.recent) > RECENT_KEPT:
                self.recent.popitem(last=False)

    def run(self, stop: threading.Event) -> None:
        """The ``ebpf-act`` thread: handle must-act records as they come, nothing else."""
        from bcc.libbcc import lib

        self._tid = threading.get_native_id()  # benchmarks trace this thread's wakeups by it
        self._prioritise()
        while not stop.is_set() and self._rb is not None:
            try:
                lib.bpf_poll_ringbuf(self._rb, POLL_MS)
            except Exception as exc:
                log.warning("ebpf_act_poll_failed", error=repr(exc))
                time.sleep(0.1)

    def refresh(self, stop: threading.Event, containers: Callable[[], Iterable[Container]]) -> None:
        """The ``ebpf-act-rules`` thread (an ordinary one): recompute every container's rule mask
        every RULES_REFRESH_SECONDS (learning periods end, allowances and overrides change) and
        continue orphaned stops (``sweep_orphans``)."""
        while not stop.wait(RULES_REFRESH_SECONDS):
            try:
                for c in containers():
                    self.update(c)
                self.sweep_orphans()
            except Exception as exc:
                log.warning("ebpf_act_rules_refresh_failed", error=repr(exc))

    def _prioritise(self) -> None:
        """Run this thread under SCHED_FIFO (``response.kernel_stop.realtime``): a must-act record
        then wakes it ahead of every ordinary task on a busy host (it sleeps in epoll otherwise)."""
        if not self.settings.realtime:
            return
        import os

        try:
            # While handling (SCHED_OTHER): the highest weight, so the freeze is not starved
            # by busy containers either.
            os.setpriority(os.PRIO_PROCESS, self._tid, -20)
            os.sched_setscheduler(self._tid, os.SCHED_FIFO, os.sched_param(1))
            self._rt = True
        except (OSError, AttributeError) as exc:
            log.warning("ebpf_act_realtime_refused", error=repr(exc))

    def _set_realtime(self, on: bool) -> None:
        """SCHED_FIFO while waiting for a record, SCHED_OTHER (nice -20) while handling one: the freezer
        needs the container's tasks to run to reach the refrigerator, and a real-time thread
        polling the freezer state would starve them on a small host."""
        import os

        try:
            if on:
                os.sched_setscheduler(self._tid, os.SCHED_FIFO, os.sched_param(1))
            else:
                os.sched_setscheduler(self._tid, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            self._rt = False

    # --- decision tables ---------------------------------------------------------------------
    def update(self, c: Container, removed: bool = False) -> None:
        """Write the rules ``c``'s cgroup enforces (delete the entry when it has none)."""
        bpf = self.bpf
        if bpf is None or self._rb is None or not c.cgroup_id:
            return
        bits = 0 if removed or self.acts is None or not self.settings.enabled else self.acts.rules_for(c)
        if self._mask.get(c.cgroup_id, 0) == bits:
            return
        if bits:
            bpf[b"rg_act_mask"][ctypes.c_ulonglong(c.cgroup_id)] = ctypes.c_uint(bits)
            self._mask[c.cgroup_id] = bits
        else:
            self.forget(c.cgroup_id)
        log.info("kernel_stop_rules_set", container_id=c.id[:12], rules=bits)

    def forget(self, cgroup_id: int) -> None:
        """Stop enforcing anything in ``cgroup_id`` (the container left or moved)."""
        self._mask.pop(cgroup_id, None)
        if self.bpf is None or self._rb is None:
            return
        try:
            del self.bpf[b"rg_act_mask"][ctypes.c_ulonglong(cgroup_id)]
        except KeyError:
            pass

    def rules(self) -> dict[int, int]:
        """The rule bits written, per cgroup id."""
        return dict(self._mask)

    def stop_times(self, pid: int) -> tuple[int, int] | None:
        """(syscall ns, stopped ns) of the last stop of ``pid`` (CLOCK_MONOTONIC; stopped 0: the
        task never took its SIGSTOP: the freezer caught it first)."""
        return self.recent.get(pid) or self._read_stop(pid, delete=False)

    def _read_stop(self, pid: int, delete: bool) -> tuple[int, int] | None:
        bpf = self.bpf
        if bpf is None or self._rb is None:
            return None
        table = bpf[b"rg_act_stop"]
        key = ctypes.c_uint(pid)
        try:
            v = table[key]
            if delete:
                del table[key]
        except KeyError:
            return None
        return int(v.syscall_ns), int(v.stop_ns)

    def sweep_orphans(self, now_ns: int | None = None) -> list[int]:
        """Continue the tasks stopped more than ORPHAN_SECONDS ago whose must-act record was
        never handled (a lost record, a wedged handler): a stopped task must not wait forever
        for a freeze that is not coming. Returns their pids."""
        bpf = self.bpf
        if bpf is None or self._rb is None:
            return []
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        table = bpf[b"rg_act_stop"]
        orphans = [k.value for k, v in list(table.items()) if now_ns - v.syscall_ns > ORPHAN_SECONDS * 1e9]
        for pid in orphans:
            try:
                del table[ctypes.c_uint(pid)]
            except KeyError:
                pass
            continue_task(pid)
            self.orphans += 1
            log.error("kernel_stop_orphan_continued", pid=pid, seconds=ORPHAN_SECONDS)
        return orphans

    def status(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "enabled": self.settings.enabled,
            "rules": list(self.settings.rules),
            "cgroups_enforcing": len(self._mask),
            "records": self.records,
            "by_rule": dict(self.by_rule),
            "malformed": self.malformed,
            "handler_errors": self.handler_errors,
            "orphans_continued": self.orphans,
        }


def continue_task(pid: int) -> bool:
    """SIGCONT ``pid`` (a task the kernel stopped); False when it is gone."""
    import os
    import signal

    try:
        os.kill(pid, signal.SIGCONT)
        return True
    except ProcessLookupError:
        return False
