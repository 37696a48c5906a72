# SPDX-License-Identifier: Apache-2.0
"""The kernel side of the known-exec/connect filter (probes/known.h): which images' entries are
in the maps under which slot, which cgroup has which slot, and the hit counts.

Lifecycle, so a long-running agent on a busy host keeps room for new images:

- an image's entries are written (under a slot) once it has learned and has a container; all or
  nothing: when ``max_entries`` has no room for the whole set, even after pruning the images in
  their grace period, none is written, its containers keep sending every event, the refusal is
  counted (``status``) and logged once;
- an image whose last container has been gone for ``grace_seconds`` is pruned: its entries and
  slot leave the kernel (they stay in memory and in the store, and come back with its next
  container); the slot is reused by the next image installed;
- an image whose baseline learns again (relearned or reset) is uninstalled; its entries are
  retired (``retire``) and the new set is installed once it has learned;
- hits of a gone cgroup or a retired entry are read a last time and deleted, ``SETTLE_SECONDS``
  after the cgroup lost its slot or the entry left the kernel (no probe can still count them);
- when ``rg_known_hits`` had no room, the kernel took the cgroup's slot (known.h); the slot is
  given back once the map has room again (``HITS_HEADROOM`` free keys).
"""

from __future__ import annotations

import ctypes
import heapq
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from agent.events import KnownActivity

log = structlog.get_logger("agent.sources.ebpf")

MAX_ENTRIES = 16384  # RG_KNOWN_MAX in probes/known.h
HITS_MAX = 65536  # RG_KNOWN_HITS in probes/known.h
HITS_HEADROOM = 4096  # free hit keys before a cgroup the kernel refused gets its slot back
# Containers of an image come back soon after the last one went: a restart loop, a rolling
# update, a CI job run again. Five minutes keeps their entries for that; an image gone longer
# holds room another image may need (and is pruned at once when one does).
GRACE_SECONDS = 300.0
# A probe that looked up a slot or an entry just before user space removed it may still count
# a hit: its hits are deleted only after this long (a probe runs for microseconds).
SETTLE_SECONDS = 1.0

Info = Mapping[int, tuple[str, str, int]]  # id -> ("exec", path, 0) / ("conn", addr, port)
Entries = dict[tuple[str, Any], int]  # ("exec", ExecEntry) / ("conn", ConnEntry) -> id


class KnownKernel:
    """Slots, installed entries and hit counts in the kernel maps, for ``KnownSet``."""

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        grace_seconds: float = GRACE_SECONDS,
        hits_max: int = HITS_MAX,
        hits_headroom: int = HITS_HEADROOM,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.grace_seconds = grace_seconds
        self.hits_max = hits_max
        self.hits_headroom = min(hits_headroom, hits_max // 4)
        self.clock = clock
        self.slots: dict[str, int] = {}  # installed key -> slot
        self._free: list[int] = []  # freed slots, smallest first
        self._next_slot = 1
        self.written: dict[str, Entries] = {}  # key -> entries in the kernel maps
        self._gone_since: dict[str, float] = {}  # installed key without a container -> since (sync's now)
        self.refused: dict[str, int] = {}  # key -> entries not installed for lack of room (logged once)
        self.slot_of_cg: dict[int, int] = {}
        self._settling_cgs: dict[int, float] = {}  # cgroup whose slot was removed -> at (clock)
        self._settling_ids: dict[int, float] = {}  # retired entry id -> at (clock)
        self._totals: dict[tuple[int, int], int] = {}
        self._hit_keys = 0  # keys in rg_known_hits at the last read
        self._full_seen = 0  # rg_known_full at the last sync
        self.counters = {
            "installs": 0,
            "prunes": 0,
            "install_refusals": 0,
            "hits_deleted": 0,
            "hits_refused": 0,
            "slots_taken_back": 0,
        }

    @property
    def entries_installed(self) -> int:
        return sum(len(w) for w in self.written.values())

    # --- entries ---------------------------------------------------------------------------
    def sync(
        self,
        bpf: Any,
        now: float,
        cgroups: Mapping[int, str],
        learning: set[str],
        entries_of: Callable[[str], Entries],
    ) -> None:
        """Make the maps follow ``cgroups`` (cgroup -> key) and the keys' learning state."""
        self._kernel_refusals(bpf)
        live = set(cgroups.values())
        for key in list(self.written):
            if key in learning:
                self.uninstall(bpf, key, "relearning")
            elif key in live:
                self._gone_since.pop(key, None)
            else:
                since = self._gone_since.setdefault(key, now)
                if now - since >= self.grace_seconds:
                    self.uninstall(bpf, key, "no container")
        for key in sorted(live - learning):
            self._install(bpf, key, entries_of(key), now)
        for key in [k for k in self.refused if k not in live or k in learning]:
            del self.refused[key]
        self._assign(bpf, cgroups, learning)

    def _install(self, bpf: Any, key: str, entries: Entries, now: float) -> None:
        done = self.written.get(key, {})
        missing = {e: i for e, i in entries.items() if e not in done}
        if not missing:
            return
        if self.entries_installed + len(missing) > self.max_entries:
            self._make_room(bpf, len(missing), now)
        if self.entries_installed + len(missing) > self.max_entries:
            if key not in self.refused:
                self.counters["install_refusals"] += 1
                log.warning(
                    "ebpf_known_not_installed",
                    image=key,
                    entries=len(missing),
                    installed=self.entries_installed,
                    max_entries=self.max_entries,
                    reason="no room in the kernel's known maps: its containers send every exec and connect",
                )
            self.refused[key] = len(missing)
            return
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = heapq.heappop(self._free) if self._free else self._take_slot()
        execs, conns = bpf[b"rg_known_exec"], bpf[b"rg_known_conn"]
        written = self.written.setdefault(key, {})
        for entry, i in missing.items():
            if entry[0] == "exec":
                execs[_exec_key(execs, slot, entry[1])] = ctypes.c_uint(i)
            else:
                conns[_conn_key(conns, slot, entry[1])] = ctypes.c_uint(i)
            written[entry] = i
        self.refused.pop(key, None)
        self.counters["installs"] += 1
        n_exec = sum(1 for e in written if e[0] == "exec")
        log.info("ebpf_known_installed", image=key, slot=slot, execs=n_exec, connects=len(written) - n_exec)

    def _take_slot(self) -> int:
        slot = self._next_slot
        self._next_slot += 1
        return slot

    def _make_room(self, bpf: Any, need: int, now: float) -> None:
        """Prune images in their grace period, longest gone first, until ``need`` entries fit."""
        for key, _since in sorted(self._gone_since.items(), key=lambda kv: kv[1]):
            if self.entries_installed + need <= self.max_entries:
                return
            self.uninstall(bpf, key, "room for another image")

    def uninstall(self, bpf: Any, key: str, why: str, retire: Iterable[int] = ()) -> None:
        """Take ``key``'s cgroups' slot away, delete its entries, free the slot. ``retire``:
        entry ids that will never be written again (their hits are deleted once read)."""
        slot = self.slots.pop(key, None)
        written = self.written.pop(key, {})
        self._gone_since.pop(key, None)
        at = self.clock()
        for i in retire:
            self._settling_ids[i] = at
        if slot is None:
            return
        slots = bpf[b"rg_known_slot"]
        for cg, s in list(self.slot_of_cg.items()):
            if s == slot:  # before the slot can be reused
                _delete(slots, ctypes.c_ulonglong(cg))
                self.slot_of_cg[cg] = 0
        execs, conns = bpf[b"rg_known_exec"], bpf[b"rg_known_conn"]
        for entry in written:
            if entry[0] == "exec":
                _delete(execs, _exec_key(execs, slot, entry[1]))
            else:
                _delete(conns, _conn_key(conns, slot, entry[1]))
        heapq.heappush(self._free, slot)
        self.counters["prunes"] += 1
        log.info("ebpf_known_uninstalled", image=key, slot=slot, entries=len(written), reason=why)

    # --- cgroups -----------------------------------------------------------------------------
    def _kernel_refusals(self, bpf: Any) -> None:
        """The kernel took slots away (rg_known_hits full): note which, count, log."""
        full = sum(bpf[b"rg_known_full"][ctypes.c_int(0)])
        if full == self._full_seen:
            return
        if not self.counters["hits_refused"]:
            log.warning(
                "ebpf_known_hits_full",
                hits_max=self.hits_max,
                hit_keys=self._hit_keys,
                reason="a cgroup's known hits could not be counted: its events are sent until there is room",
            )
        self.counters["hits_refused"] += full - self._full_seen
        self._full_seen = full
        self._hit_keys = sum(1 for _ in bpf[b"rg_known_hits"])  # for the room check below
        present = {k.value for k in bpf[b"rg_known_slot"]}
        for cg, s in self.slot_of_cg.items():
            if s and cg not in present:
                self.slot_of_cg[cg] = 0
                self.counters["slots_taken_back"] += 1

    def _assign(self, bpf: Any, cgroups: Mapping[int, str], learning: set[str]) -> None:
        slots = bpf[b"rg_known_slot"]
        room = self._hit_keys + self.hits_headroom <= self.hits_max
        for cg, key in cgroups.items():
            self._settling_cgs.pop(cg, None)
            want = 0 if key in learning else self.slots.get(key, 0)
            have = self.slot_of_cg.get(cg, 0)
            if have == want or (want and not have and not room):
                continue
            if want:
                slots[ctypes.c_ulonglong(cg)] = ctypes.c_uint(want)
            else:
                _delete(slots, ctypes.c_ulonglong(cg))
            self.slot_of_cg[cg] = want
        at = self.clock()
        for cg in [c for c in self.slot_of_cg if c not in cgroups]:
            _delete(slots, ctypes.c_ulonglong(cg))
            del self.slot_of_cg[cg]
            self._settling_cgs[cg] = at

    # --- hits ----------------------------------------------------------------------------------
    def read(self, bpf: Any, now: float, info: Info) -> list[KnownActivity]:
        """The hits since the last read, one ``KnownActivity`` per cgroup that had any; the keys
        of gone cgroups and retired entries are deleted after this final read once settled.
        The caller holds the read lock (one reader at a time: each hit counted once)."""
        per_cg: dict[int, tuple[list[int], set[str], set[str], set[int]]] = {}
        hits = bpf[b"rg_known_hits"]
        settled = self.clock() - SETTLE_SECONDS
        kept = 0
        for k, v in list(hits.items()):
            cg, i = k.cgroup_id, k.id
            total = sum(v)  # per-CPU values
            delta = total - self._totals.get((cg, i), 0)
            if self._settling_cgs.get(cg, math.inf) <= settled or self._settling_ids.get(i, math.inf) <= settled:
                _delete(hits, k)  # read above, and no probe counts it any more
                self._totals.pop((cg, i), None)
                self.counters["hits_deleted"] += 1
            else:
                self._totals[(cg, i)] = total
                kept += 1
            what = info.get(i)
            if delta <= 0 or what is None:
                continue
            acc = per_cg.setdefault(cg, ([0, 0], set(), set(), set()))
            if what[0] == "exec":
                acc[0][0] += delta
                acc[1].add(what[1])
            else:
                acc[0][1] += delta
                acc[2].add(what[1])
                acc[3].add(what[2])
        self._hit_keys = kept
        for d in (self._settling_cgs, self._settling_ids):
            for x in [x for x, at in d.items() if at <= settled]:
                del d[x]
        return [
            KnownActivity(
                ts=now,
                cgroup_id=cg,
                execs=execs,
                connects=conns,
                binaries=frozenset(binaries),
                peers=frozenset(peers),
                dst_ports=frozenset(ports),
            )
            for cg, ((execs, conns), binaries, peers, ports) in per_cg.items()
        ]

    def settled_ids(self) -> set[int]:
        """Retired entry ids still waiting for their final read (their ``info`` must stay)."""
        return set(self._settling_ids)

    def status(self) -> dict[str, Any]:
        return {
            "images_installed": len(self.written),
            "images_in_grace": len(self._gone_since),
            "slots_used": len(self.slots),
            "entries_installed": self.entries_installed,
            "max_entries": self.max_entries,
            "images_refused": len(self.refused),
            "entries_refused": sum(self.refused.values()),
            "hit_keys": self._hit_keys,
            "cgroups_with_slot": sum(1 for s in self.slot_of_cg.values() if s),
            **self.counters,
        }


def _exec_key(table: Any, slot: int, e: tuple[bytes, bytes, int]) -> Any:
    k = table.Key()
    k.slot, k.argv_hash = slot, e[2]
    k.pcomm, k.path = e[1], e[0]
    return k


def _conn_key(table: Any, slot: int, e: tuple[int, bytes, int]) -> Any:
    k = table.Key()
    k.slot, k.family, k.port = slot, e[0], e[2]
    ctypes.memmove(ctypes.addressof(k.addr), e[1], 16)
    return k


def _delete(table: Any, key: Any) -> None:
    try:
        del table[key]
    except KeyError:
        pass
