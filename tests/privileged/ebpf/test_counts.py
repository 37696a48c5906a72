# SPDX-License-Identifier: Apache-2.0
"""The syscall transition counts are exact (probes/syscalls.bpf.c, agent/sources/ebpf/counts.py).

A monitored cgroup's transitions go to its count slot's per-CPU cells, and to the overflow hash
only when there is no room; the agent flips the generation each window. ``rgsysloop`` (static,
copied into ``a``) makes syscalls no other program makes (numbers without a syscall: ENOSYS),
so every count is known exactly:

- a loop through the cells: the exact transition and syscall counts, in ``a``'s window only;
- the same loop while windows are flushed every 50 ms: the windows add up to the exact totals
  (no increment lost across a generation flip);
- more distinct transitions than a slot holds: the rest go to the overflow hash, still exact;
- `docker exec`: runc init's set-up in the container's cgroup (capability drops, Go threads) is
  the runtime's and not counted, the command is counted from its execve on; a container's own
  program named like runc's stage is counted (probes/task.h, rg_runtime_exe).
"""

from __future__ import annotations

import ctypes
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.events import SyscallWindow
from agent.hostfs import HostPaths
from agent.runtime.executables import runtime_executables
from agent.sources.ebpf.counts import GROUPS
from agent.sources.ebpf.loader import fill_runtime_exes
from agent.sources.ebpf.program import TR_WAYS
from tests.privileged.ebpf.harness import Agent
from tests.support import need, need_tool

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def loop(agent: Agent, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``rgsysloop`` in container ``a`` (its path there)."""
    gcc = need_tool("gcc")
    out = tmp_path_factory.mktemp("rgsysloop") / "rgsysloop"
    res = subprocess.run(
        [gcc, "-static", "-O1", "-o", str(out), str(HERE / "rgsysloop.c")], capture_output=True, text=True, timeout=120
    )
    need(res.returncode == 0, f"This test needs gcc with a static libc (libc6-dev): {res.stderr[-300:]}")
    subprocess.run(["docker", "cp", str(out), f"{agent.a.id}:/rgsysloop"], check=True, timeout=60)
    yield "/rgsysloop"


def _windows(agent: Agent) -> dict[int, SyscallWindow]:
    return {w.cgroup_id: w for w in agent.source.flush_window()}


def _run(agent: Agent, path: str, first: int, k: int, rounds: int) -> None:
    p = subprocess.run(["docker", "exec", agent.a.id, path, str(first), str(k), str(rounds)], timeout=120)
    assert p.returncode == 0


def _overflow_keys(agent: Agent, lo: int, hi: int) -> int:
    """Entries of the overflow hash for a's transitions into [lo, hi)."""
    trans = agent.source.bpf[b"rg_sc_trans"]
    return sum(1 for k in trans if k.cgroup_id == agent.ra.cgroup_id and lo <= k.cur < hi)


def _slot(agent: Agent) -> int:
    return int(agent.source.bpf[b"rg_cgroups"][ctypes.c_ulonglong(agent.ra.cgroup_id)].value)


def test_a_known_loop_is_counted_exactly_in_its_slot(agent: Agent, loop: str) -> None:
    assert _slot(agent) > 0, "a monitored container has a count slot"
    _windows(agent)  # start from empty windows
    n = 50_000
    _run(agent, loop, 1500, 2, n)
    assert _overflow_keys(agent, 1500, 1502) == 0, "two transitions fit in the slot's cells"
    windows = _windows(agent)
    wa = windows[agent.ra.cgroup_id]
    assert wa.transitions[(1500, 1501)] == n
    assert wa.transitions[(1501, 1500)] == n - 1
    assert wa.counts[1500] == n and wa.counts[1501] == n
    # Benign twin: b slept through it, and no other cgroup saw these numbers.
    for cg, w in windows.items():
        if cg != agent.ra.cgroup_id:
            assert not {1500, 1501} & set(w.counts), cg
    # Read means reset: the next window has none of them.
    wa2 = _windows(agent).get(agent.ra.cgroup_id)
    assert wa2 is None or not {1500, 1501} & set(wa2.counts)


def test_counts_add_up_exactly_across_generation_flips(agent: Agent, loop: str) -> None:
    _windows(agent)
    n = 2_000_000
    p = subprocess.Popen(["docker", "exec", agent.a.id, loop, "1600", "2", str(n)])
    got: list[SyscallWindow] = []
    try:
        deadline = time.monotonic() + 120
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            got.extend(w for w in agent.source.flush_window() if w.cgroup_id == agent.ra.cgroup_id)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.wait(timeout=10) == 0
    got.extend(w for w in agent.source.flush_window() if w.cgroup_id == agent.ra.cgroup_id)
    counts: Counter[int] = Counter()
    trans: Counter[tuple[int, int]] = Counter()
    busy = 0
    for w in got:
        counts.update({k: v for k, v in w.counts.items() if k in (1600, 1601)})
        trans.update({k: v for k, v in w.transitions.items() if k in ((1600, 1601), (1601, 1600))})
        busy += 1 if w.counts.get(1600) else 0
    assert busy >= 3, f"the loop should span several windows (it spanned {busy})"
    assert counts[1600] == n and counts[1601] == n
    assert trans[(1600, 1601)] == n and trans[(1601, 1600)] == n - 1


def test_more_transitions_than_cells_are_counted_exactly_in_the_overflow_hash(agent: Agent, loop: str) -> None:
    _windows(agent)
    first, k, rounds = 2000, 2000, 5
    assert k > GROUPS * TR_WAYS, "more distinct transitions than a slot has cells on a CPU"
    _run(agent, loop, first, k, rounds)
    assert _overflow_keys(agent, first, first + k) > 0, "the transitions that found no cell are in the hash"
    wa = _windows(agent)[agent.ra.cgroup_id]
    for i in range(k - 1):
        assert wa.transitions.get((first + i, first + i + 1)) == rounds, i
        assert wa.counts.get(first + i + 1) == rounds, i
    assert wa.transitions.get((first + k - 1, first)) == rounds - 1
    assert wa.counts.get(first) == rounds
    assert _overflow_keys(agent, first, first + k) == 0, "the window deleted the hash's entries"


PRCTL, EXECVE = 157, 59  # x86_64


def _docker_execs(agent: Agent, n: int) -> SyscallWindow:
    _windows(agent)
    for _ in range(n):
        subprocess.run(["docker", "exec", agent.a.id, "true"], check=True, timeout=60)
    return _windows(agent)[agent.ra.cgroup_id]


def test_runc_init_of_docker_exec_is_the_runtimes_not_the_containers(agent: Agent, loop: str) -> None:
    assert agent.source.runtime_exes >= 1, "the host's runc is in rg_runtime_exe"
    n = 5
    wa = _docker_execs(agent, n)
    # Counted: busybox `true` itself (~16 syscalls, one prctl); runc init makes ~200 (~100 prctl).
    assert wa.counts.get(PRCTL, 0) <= n, "runc init's capability drops are not the container's"
    assert sum(wa.counts.values()) <= 40 * n, sorted(wa.counts.items())
    assert any(prev == EXECVE for prev, _cur in wa.transitions), "`true` is counted from its execve on"
    # A program of the container's own, called as runc's set-up stage: counted, exactly.
    subprocess.run(["docker", "exec", agent.a.id, "cp", loop, "/tmp/runc:[2:INIT]"], check=True, timeout=60)
    _windows(agent)
    _run(agent, "/tmp/runc:[2:INIT]", 1700, 2, 1000)
    w = _windows(agent)[agent.ra.cgroup_id]
    assert w.counts[1700] == 1000 and w.transitions[(1700, 1701)] == 1000
    # Twin: the kernel without the runtime's executables counts runc init's set-up.
    fill_runtime_exes(agent.source.bpf, frozenset())
    try:
        tw = _docker_execs(agent, n)
        assert tw.counts.get(PRCTL, 0) >= 20 * n, sorted(tw.counts.items())
        assert sum(tw.counts.values()) >= 4 * sum(wa.counts.values())
    finally:
        fill_runtime_exes(agent.source.bpf, runtime_executables(HostPaths(), agent.ctx.config.runtime.executables))
