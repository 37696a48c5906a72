# SPDX-License-Identifier: Apache-2.0
"""The ``syscalls`` probe's transition counts (probes/syscalls.bpf.c, probes/syscalls.h).

Each monitored cgroup gets a count slot (``SlotTable``: 1..n, its ``rg_cgroups`` value; 0: none),
which its tasks cache in their storage: their transitions go to that slot's per-CPU cells
(``rg_sc_cells``: groups of 8 cells of tag = prev << 16 | nr and a count; ``rg_sc_used``: which
groups hold a cell, per CPU), and only what does not fit (no slot, a full group) to the overflow
hash ``rg_sc_trans``. Once per window ``SyscallCounts.flush`` flips the generation the probes
write, then reads and zeroes the old one: for each slot one ``rg_sc_used`` lookup, then one
lookup and one zeroing write per group it names (an idle slot costs one lookup), and the
overflow hash's entries (deleted). One ``SyscallWindow`` per cgroup."""

from __future__ import annotations

import ctypes
import threading
import time
from typing import Any

from agent.events import SyscallWindow
from agent.sources.ebpf.loader import filter_changed
from agent.sources.ebpf.program import CONF_GEN, TR_GROUP_BITS, TR_SLOTS, TR_WAYS
from agent.sources.ebpf.reader import Publish

GROUPS = 1 << TR_GROUP_BITS
USED_WORDS = GROUPS // 64
# A retired slot is read by this many flushes before another cgroup gets it: a task that passed
# the filter just before its cgroup left may still count into it, in either generation.
RETIRED_READS = 2


class SlotTable:
    """Count slots 1..n of the monitored cgroups (0: none, the overflow hash counts them). A
    cgroup that leaves keeps its slot, retired, until ``RETIRED_READS`` flushes that began after
    it left have read it (its counts go to its window); then the slot is free again. Not locked:
    its owner holds ``SyscallCounts.lock``."""

    def __init__(self, n: int = TR_SLOTS) -> None:
        self.active: dict[int, int] = {}  # cgroup id -> slot
        self.retired: dict[int, tuple[int, int]] = {}  # slot -> (cgroup id, reads left)
        self.free = list(range(n, 0, -1))  # popped from the end: slot 1 first

    def assign(self, cg: int) -> int:
        """The cgroup's slot: its own, its retired one back, a free one, or 0 (none free)."""
        if cg in self.active:
            return self.active[cg]
        for slot, (owner, _) in self.retired.items():
            if owner == cg:
                del self.retired[slot]
                self.active[cg] = slot
                return slot
        if not self.free:
            return 0
        slot = self.active[cg] = self.free.pop()
        return slot

    def retire(self, cg: int) -> None:
        slot = self.active.pop(cg, None)
        if slot is not None:
            self.retired[slot] = (cg, RETIRED_READS)

    def snapshot(self) -> dict[int, int]:
        """slot -> cgroup id, every slot that may hold counts (active and retired)."""
        out = {slot: cg for slot, (cg, _) in self.retired.items()}
        out.update((slot, cg) for cg, slot in self.active.items())
        return out

    def read(self, retired_before: dict[int, tuple[int, int]]) -> None:
        """A flush read every slot; those retired before it began count one read."""
        for slot, was in retired_before.items():
            now = self.retired.get(slot)
            if now is None or now[0] != was[0]:
                continue  # its cgroup came back: active again
            if now[1] <= 1:
                del self.retired[slot]
                self.free.append(slot)
            else:
                self.retired[slot] = (now[0], now[1] - 1)


class SyscallCounts:
    """Count slots for the monitored cgroups and the per-window read of their transitions."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.gen = 0
        self.window_start = time.time()
        self.windows_published = 0
        self.syscalls_counted = 0
        self.count_map_full = 0
        self.overflow_counted = 0  # transitions counted in the overflow hash
        self.enabled = False  # the syscalls probe is loaded: slots are given out
        self.slots = SlotTable()

    # --- the filter's entries (called with ``lock`` held) -------------------------------
    def admit(self, bpf: Any, cg: int) -> None:
        """Put the cgroup in the kernel filter (``rg_cgroups``) with its count slot. A cgroup new
        to the filter expires the answers tasks cached (one of its tasks may have cached "no
        slot": include_host)."""
        table = bpf[b"rg_cgroups"]
        key = ctypes.c_ulonglong(cg)
        slot = self.slots.assign(cg) if self.enabled else 0
        fresh = table.get(key) is None
        table[key] = ctypes.c_uint(slot)
        if fresh:
            filter_changed(bpf)

    def release(self, bpf: Any, cg: int) -> None:
        """Take the cgroup out of the kernel filter; its slot retires."""
        try:
            del bpf[b"rg_cgroups"][ctypes.c_ulonglong(cg)]
        except KeyError:
            pass
        self.slots.retire(cg)
        filter_changed(bpf)

    # --- the window -----------------------------------------------------------------------
    def flush(self, bpf: Any, publish: Publish | None) -> list[SyscallWindow]:
        """Flip the count generation, read and reset the old one, publish per-cgroup windows."""
        with self.lock:
            old = self.gen
            self.gen ^= 1
            bpf[b"rg_conf"][ctypes.c_int(CONF_GEN)] = ctypes.c_ulonglong(self.gen)
            start, end = self.window_start, time.time()
            self.window_start = end
            slots = self.slots.snapshot()
            retired = dict(self.slots.retired)
        # Programs that read the old generation just before the flip finish within
        # microseconds (they run with preemption disabled); give them a moment.
        time.sleep(0.002)
        per_cg: dict[int, tuple[dict[int, int], dict[tuple[int, int], int]]] = {}

        def add(cg: int, prev: int, cur: int, n: int) -> None:
            counts, tr = per_cg.setdefault(cg, ({}, {}))
            tr[(prev, cur)] = tr.get((prev, cur), 0) + n
            # count(nr) is the sum of the transitions into nr (probes/syscalls.bpf.c).
            counts[cur] = counts.get(cur, 0) + n
            self.syscalls_counted += n

        if slots:
            cells = _Cells(bpf)
            for slot, cg in slots.items():
                for tag, n in cells.drain(slot, old):
                    add(cg, tag >> 16, tag & 0xFFFF, n)
        trans = bpf[b"rg_sc_trans"]
        for k, v in list(trans.items()):
            if k.gen != old:
                continue
            n = sum(v)
            del trans[k]
            self.overflow_counted += n
            add(k.cgroup_id, k.prev, k.cur, n)
        if slots:
            with self.lock:
                self.slots.read(retired)
        self.count_map_full = sum(bpf[b"rg_sc_full"][ctypes.c_int(0)])
        out = []
        for cg, (c, t) in per_cg.items():
            w = SyscallWindow(ts=end, cgroup_id=cg, start=start, end=end, counts=c, transitions=t)
            out.append(w)
            if publish is not None:
                publish(w)
        self.windows_published += len(out)
        return out

    def status(self) -> dict[str, int]:
        with self.lock:
            active, retired, free = len(self.slots.active), len(self.slots.retired), len(self.slots.free)
        return {"active": active, "retired": retired, "free": free, "overflow_counted": self.overflow_counted}


class _Cells:
    """Raw reads and zeroing writes of ``rg_sc_cells`` / ``rg_sc_used`` (per-CPU values: one
    8-byte-aligned value per possible CPU, as the kernel copies them)."""

    def __init__(self, bpf: Any) -> None:
        from bcc.libbcc import lib

        self.lib = lib
        cells, used = bpf[b"rg_sc_cells"], bpf[b"rg_sc_used"]
        self.cells_fd, self.used_fd = cells.map_fd, used.map_fd
        self.ncpu = int(cells.total_cpu)
        self.used = (ctypes.c_uint64 * (USED_WORDS * self.ncpu))()
        self.used_zero = (ctypes.c_uint64 * (USED_WORDS * self.ncpu))()
        self.group = (ctypes.c_uint32 * (2 * TR_WAYS * self.ncpu))()
        self.group_zero = (ctypes.c_uint32 * (2 * TR_WAYS * self.ncpu))()

    def drain(self, slot: int, gen: int) -> list[tuple[int, int]]:
        """(tag, count) of every cell of the slot's generation ``gen``, summed over the CPUs;
        the cells read are zeroed."""
        sg = (slot - 1) * 2 + gen
        key = ctypes.c_uint32(sg)
        if self.lib.bpf_lookup_elem(self.used_fd, ctypes.byref(key), self.used) != 0:
            return []
        mask = 0
        for cpu in range(self.ncpu):
            for w in range(USED_WORDS):
                mask |= self.used[cpu * USED_WORDS + w] << (64 * w)
        if not mask:
            return []
        out: dict[int, int] = {}
        g = 0
        while mask:
            if mask & 1:
                key.value = sg * GROUPS + g
                if self.lib.bpf_lookup_elem(self.cells_fd, ctypes.byref(key), self.group) == 0:
                    vals = self.group
                    for i in range(0, 2 * TR_WAYS * self.ncpu, 2):
                        n = vals[i + 1]
                        if n:
                            out[vals[i]] = out.get(vals[i], 0) + n
                    self.lib.bpf_update_elem(self.cells_fd, ctypes.byref(key), self.group_zero, 0)
            mask >>= 1
            g += 1
        key.value = sg
        self.lib.bpf_update_elem(self.used_fd, ctypes.byref(key), self.used_zero, 0)
        return list(out.items())
