# SPDX-License-Identifier: Apache-2.0
"""The syscall count slots of the monitored cgroups (agent/sources/ebpf/counts.py SlotTable): a
slot is never shared by two cgroups while either may still have counts in it."""

from __future__ import annotations

from agent.sources.ebpf.counts import RETIRED_READS, SlotTable


def _flush(t: SlotTable) -> dict[int, int]:
    """What SyscallCounts.flush does with the table: snapshot at the flip, then count the read."""
    seen = t.snapshot()
    t.read(dict(t.retired))
    return seen


def test_each_cgroup_gets_its_own_slot_until_none_is_free() -> None:
    t = SlotTable(3)
    assert [t.assign(cg) for cg in (10, 11, 12)] == [1, 2, 3]
    assert t.assign(11) == 2, "a cgroup keeps its slot"
    assert t.assign(13) == 0, "no slot free: the overflow hash counts it"
    assert t.snapshot() == {1: 10, 2: 11, 3: 12}


def test_a_retired_slot_is_read_for_its_cgroup_before_another_gets_it() -> None:
    t = SlotTable(1)
    assert t.assign(10) == 1
    t.retire(10)
    assert t.assign(20) == 0, "the slot is retired, not free"
    for _ in range(RETIRED_READS):
        assert _flush(t) == {1: 10}, "each flush still reads the slot as 10's"
    assert t.assign(20) == 1
    assert _flush(t) == {1: 20}


def test_a_slot_retired_after_the_flush_began_still_gets_its_reads() -> None:
    t = SlotTable(1)
    t.assign(10)
    seen = t.snapshot()
    retired_then = dict(t.retired)  # the flush began before the cgroup left
    t.retire(10)
    t.read(retired_then)
    assert seen == {1: 10} and 1 in t.retired
    for _ in range(RETIRED_READS):
        assert t.assign(20) == 0
        _flush(t)
    assert t.assign(20) == 1


def test_a_cgroup_that_comes_back_gets_its_retired_slot_back() -> None:
    t = SlotTable(2)
    t.assign(10)
    t.assign(11)
    t.retire(10)
    _flush(t)
    assert t.assign(10) == 1, "back before its slot was freed: the same slot"
    for _ in range(RETIRED_READS + 1):
        _flush(t)
    assert t.snapshot() == {1: 10, 2: 11}
    assert t.free == []


def test_the_cell_layout_constants_match_the_probe_header() -> None:
    """counts.py reads the cells with program.py's constants; the header's defaults agree (the
    loader passes RG_TR_SLOTS and RG_TR_GROUP_BITS, the probe fixes RG_TR_WAYS)."""
    import re

    from agent.sources.ebpf.counts import GROUPS, USED_WORDS
    from agent.sources.ebpf.program import PROBES_DIR, TR_GROUP_BITS, TR_SLOTS, TR_WAYS

    text = (PROBES_DIR / "syscalls.h").read_text()
    defines = dict(re.findall(r"^#define (RG_TR_\w+) (\d+)\s*$", text, re.M))
    assert defines["RG_TR_SLOTS"] == str(TR_SLOTS)
    assert defines["RG_TR_GROUP_BITS"] == str(TR_GROUP_BITS)
    assert defines["RG_TR_WAYS"] == str(TR_WAYS)
    assert GROUPS >= 64 and USED_WORDS * 64 == GROUPS
