# SPDX-License-Identifier: Apache-2.0
"""The known filter's maps over time (agent/sources/ebpf/known_kernel.py, probes/known.h), on a
real BPF program made of probes/known.h and one hook: this test process's getppid() plays a
probe that finds entry ``id`` known for cgroup ``cg`` (both from ``t_arg``), and stores what
``rg_known_count`` answered in ``t_ret`` (1: the cgroup has no slot, the probe sends the event).
The maps are small (``RG_KNOWN_HITS`` 4) so that a full hits map can be reached. The known
filter with real containers: test_known_filter.py, test_known_lifecycle.py."""

from __future__ import annotations

import ctypes
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from agent.events import NetConnect
from agent.sources.ebpf.known import KnownSet
from agent.sources.ebpf.known_kernel import SETTLE_SECONDS, KnownKernel
from agent.sources.ebpf.program import PROBES_DIR
from agent.store import Store
from tests.support import need_root

HITS = 4
PROGRAM = """
#define RG_MAX_CGROUPS 64
#define RG_KNOWN_MAX 64
#define RG_KNOWN_HITS %(hits)d
%(known)s
struct t_arg { u64 cg; u32 id; u32 pad; };
BPF_ARRAY(t_arg, struct t_arg, 1);
BPF_ARRAY(t_ret, int, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    if ((bpf_get_current_pid_tgid() >> 32) != %(tgid)d)
        return 0;
    int zero = 0;
    struct t_arg *a = t_arg.lookup(&zero);
    if (!a)
        return 0;
    int r = rg_known_slot_of(a->cg) ? rg_known_count(a->cg, a->id) : 1;
    t_ret.update(&zero, &r);
    return 0;
}
"""
KNOWN_MAPS = (b"rg_known_exec", b"rg_known_conn", b"rg_known_slot", b"rg_known_hits", b"rg_known_full")
EXEC_A = ("exec", (b"/bin/true", b"sh", 1))
EXEC_B = ("exec", (b"/bin/false", b"sh", 2))
CONN = ("conn", (socket.AF_INET, bytes([10, 0, 0, 1]) + bytes(12), 443))
INFO = {1: ("exec", "/bin/true", 0), 2: ("exec", "/bin/false", 0), 3: ("conn", "10.0.0.1", 443)}


@pytest.fixture(scope="module")
def program() -> Iterator[Any]:
    need_root()
    from bcc import BPF

    known = (Path(PROBES_DIR) / "known.h").read_text()
    bpf = BPF(text=PROGRAM % {"hits": HITS, "known": known, "tgid": os.getpid()})
    try:
        yield bpf
    finally:
        bpf.cleanup()


@pytest.fixture
def bpf(program: Any) -> Any:
    for name in KNOWN_MAPS:
        program[name].clear()
    return program


def hit(bpf: Any, cg: int, i: int, times: int = 1) -> int:
    """``times`` probe runs finding entry ``i`` known for ``cg``; what the last one was answered."""
    a = bpf[b"t_arg"][ctypes.c_int(0)]
    a.cg, a.id = cg, i
    bpf[b"t_arg"][ctypes.c_int(0)] = a
    for _ in range(times):
        os.getppid()
    return int(bpf[b"t_ret"][ctypes.c_int(0)].value)


def hit_keys(bpf: Any) -> set[tuple[int, int]]:
    return {(k.cgroup_id, k.id) for k in bpf[b"rg_known_hits"]}


def slots_in_kernel(bpf: Any, table: bytes) -> set[int]:
    return {k.slot for k in bpf[table]}


def counted(acts: list[Any], cg: int) -> tuple[int, int]:
    return sum(a.execs for a in acts if a.cgroup_id == cg), sum(a.connects for a in acts if a.cgroup_id == cg)


def test_a_gone_cgroups_hits_are_read_a_last_time_then_deleted_and_its_image_pruned_after_the_grace(bpf: Any) -> None:
    k = KnownKernel(max_entries=16, grace_seconds=60)
    entries = {"a": {EXEC_A: 1, CONN: 3}}
    k.sync(bpf, 1000.0, {101: "a"}, set(), entries.__getitem__)
    slot = k.slots["a"]
    assert slots_in_kernel(bpf, b"rg_known_exec") == {slot} == slots_in_kernel(bpf, b"rg_known_conn")
    assert hit(bpf, 101, 1, 5) == 0 and hit(bpf, 101, 3, 2) == 0
    assert counted(k.read(bpf, 1000.0, INFO), 101) == (5, 2)
    assert hit(bpf, 101, 1, 3) == 0  # just before the container goes
    k.sync(bpf, 1001.0, {}, set(), entries.__getitem__)  # its cgroup is gone: slot taken, hits kept
    assert hit(bpf, 101, 1) == 1, "a gone cgroup still had a slot"
    assert counted(k.read(bpf, 1001.0, INFO), 101) == (3, 0)
    assert hit_keys(bpf) == {(101, 1), (101, 3)}, "deleted before settling"
    time.sleep(SETTLE_SECONDS + 0.1)
    assert counted(k.read(bpf, 1002.0, INFO), 101) == (0, 0)
    assert hit_keys(bpf) == set() and k.status()["hits_deleted"] == 2
    # The image keeps its entries through the grace period, then they leave the kernel.
    k.sync(bpf, 1059.0, {}, set(), entries.__getitem__)
    assert slots_in_kernel(bpf, b"rg_known_exec") == {slot} and k.status()["images_in_grace"] == 1
    k.sync(bpf, 1061.0, {}, set(), entries.__getitem__)
    assert not list(bpf[b"rg_known_exec"].items()) and not list(bpf[b"rg_known_conn"].items())
    assert k.status()["images_installed"] == 0 and k.status()["slots_used"] == 0
    # A new container of the image: installed again, counted again.
    k.sync(bpf, 1100.0, {102: "a"}, set(), entries.__getitem__)
    assert hit(bpf, 102, 1, 4) == 0
    assert counted(k.read(bpf, 1100.0, INFO), 102) == (4, 0)


def test_a_set_without_room_is_refused_loudly_and_the_slot_of_a_pruned_image_is_reused(bpf: Any) -> None:
    k = KnownKernel(max_entries=3, grace_seconds=600)
    entries = {"a": {EXEC_A: 1, CONN: 3}, "b": {EXEC_B: 2, CONN: 4}}
    with structlog.testing.capture_logs() as logs:
        k.sync(bpf, 0.0, {101: "a", 102: "b"}, set(), entries.__getitem__)
        k.sync(bpf, 2.0, {101: "a", 102: "b"}, set(), entries.__getitem__)
    refusals = [e for e in logs if e["event"] == "ebpf_known_not_installed"]
    assert [e["image"] for e in refusals] == ["b"], logs  # logged once, not every round
    st = k.status()
    assert (st["images_refused"], st["entries_refused"], st["install_refusals"]) == (1, 2, 1), st
    assert hit(bpf, 102, 2) == 1, "a refused image's cgroup has a slot: its events would be lost"
    slot_a = k.slots["a"]
    # a's container goes; b needs the room: a is pruned at once (grace or not), b takes its slot.
    k.sync(bpf, 3.0, {102: "b"}, set(), entries.__getitem__)
    assert k.slots == {"b": slot_a} and slots_in_kernel(bpf, b"rg_known_exec") == {slot_a}
    assert hit(bpf, 102, 2) == 0 and k.status()["images_refused"] == 0
    # a comes back while b holds the room: refused (loudly), b stays.
    with structlog.testing.capture_logs() as logs:
        k.sync(bpf, 4.0, {101: "a", 102: "b"}, set(), entries.__getitem__)
    assert [e["image"] for e in logs if e["event"] == "ebpf_known_not_installed"] == ["a"]
    assert hit(bpf, 101, 1) == 1


def test_a_full_hits_map_takes_the_slot_away_the_event_is_refused_and_the_slot_comes_back(bpf: Any) -> None:
    k = KnownKernel(max_entries=16, grace_seconds=600, hits_max=HITS, hits_headroom=1)
    entries = {"a": {EXEC_A: 1, EXEC_B: 2, CONN: 3}}
    cgroups = {101: "a", 102: "a"}
    k.sync(bpf, 0.0, cgroups, set(), entries.__getitem__)
    for key in ((101, 1), (101, 2), (101, 3), (102, 1)):
        assert hit(bpf, *key) == 0
    assert hit(bpf, 102, 2) == -1, "a hit the map had no room for was not refused"  # the caller sends it
    assert hit(bpf, 102, 1) == 1, "the cgroup kept its slot"  # sent from now on
    assert hit(bpf, 101, 1) == 0  # another cgroup's known keys count on
    with structlog.testing.capture_logs() as logs:
        k.sync(bpf, 1.0, cgroups, set(), entries.__getitem__)
    assert [e["event"] for e in logs if e["event"] == "ebpf_known_hits_full"], logs
    st = k.status()
    assert (st["hits_refused"], st["slots_taken_back"], st["hit_keys"]) == (1, 1, 4), st
    assert hit(bpf, 102, 1) == 1, "slot given back with no room"
    # 101 goes: its hits are read a last time and deleted, and 102 gets its slot back.
    k.sync(bpf, 2.0, {102: "a"}, set(), entries.__getitem__)
    time.sleep(SETTLE_SECONDS + 0.1)
    assert counted(k.read(bpf, 3.0, INFO), 101) == (3, 1)  # its last hit included
    k.sync(bpf, 4.0, {102: "a"}, set(), entries.__getitem__)
    assert hit(bpf, 102, 2) == 0 and hit_keys(bpf) == {(102, 1), (102, 2)}


def _connect(cg: int, port: int) -> NetConnect:
    return NetConnect(
        ts=1.0,
        cgroup_id=cg,
        op="connect",
        comm="curl",
        family=socket.AF_INET,
        protocol="tcp",
        saddr="10.0.0.2",
        sport=40000,
        daddr="10.0.0.1",
        dport=port,
        state="ESTABLISHED",
    )


def test_a_relearned_image_forgets_its_entries_in_the_kernel_and_the_store_and_installs_the_new_set(
    bpf: Any, tmp_path: Path
) -> None:
    store = Store(tmp_path / "a.db")
    learning = {"a"}
    ks = KnownSet(store, lambda key, _now: key in learning)
    ks.track(101, "a")
    ks.sync(bpf, 0.0, None)
    ks.learn_conn(_connect(101, 443), 0.0)
    learning.clear()
    ks.sync(bpf, 1.0, None)
    (old,) = ks.conns["a"].values()
    conn_ports = lambda: {k.port for k in bpf[b"rg_known_conn"]}  # noqa: E731
    assert conn_ports() == {443}
    assert hit(bpf, 101, old, 2) == 0
    learning.add("a")  # riskguardctl baseline relearn: the image learns again
    acts = ks.sync(bpf, 2.0, None)
    assert counted(acts, 101) == (0, 2), "hits made before the relearn were lost"
    assert conn_ports() == set() and ks.conns.get("a", {}) == {}
    assert store.query("SELECT kind FROM ebpf_known WHERE image = 'a'") == []
    assert hit(bpf, 101, old) == 1  # learning: every event is sent
    ks.learn_conn(_connect(101, 8443), 2.0)
    learning.clear()
    ks.sync(bpf, 3.0, None)
    assert conn_ports() == {8443}
    time.sleep(SETTLE_SECONDS + 0.1)
    ks.sync(bpf, 4.0, None)
    assert (101, old) not in hit_keys(bpf) and old not in ks.info  # the retired entry is gone
    # A restart remembers the image learned: learning again later is a relearn there as well.
    assert sorted(r[0] for r in store.query("SELECT kind FROM ebpf_known WHERE image = 'a'")) == ["conn", "learned"]
    store.close()
