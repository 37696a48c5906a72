# SPDX-License-Identifier: Apache-2.0
"""The eBPF source against real containers: every event and count lands on the container that
caused it, and on no other.

One agent (probes compiled once: bcc costs seconds of CPU) and two containers per module: ``a``
does things, ``b`` only sleeps; ``b`` must never receive an event caused by ``a``. ``a`` runs
with ``seccomp=unconfined`` because Docker's default profile rejects unshare/mount before the
syscall tracepoints run.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import Event, FileOpen, NetConnect, PrivilegeEvent, ProcessExec, SyscallWindow
from agent.sources.ebpf import CONF_RATE, PROBES_DIR, build
from agent.syscall_table import syscall_number
from tests.privileged.ebpf.harness import Agent
from tests.support import wait_for

SYS_READ, SYS_WRITE = syscall_number("read"), syscall_number("write")


def _assert_b_untouched(ag: Agent) -> None:
    """``b`` only sleeps: no event of any kind may carry its cgroup."""
    stray = [e for e in ag.of(Event) if e.cgroup_id == ag.rb.cgroup_id and not isinstance(e, SyscallWindow)]
    assert stray == [], stray


def test_status_reports_probes_and_filter(agent: Agent) -> None:
    st = agent.source.status()
    assert st["output"] == "ringbuf"
    assert st["monitored_cgroups"] == 2
    assert st["problems"] == []
    assert agent.source.bpf is not None
    cg = agent.source.bpf[b"rg_cgroups"]
    assert {k.value for k in cg} == {agent.ra.cgroup_id, agent.rb.cgroup_id}
    # what compiling left resident (LLVM/clang pages, freed heap) was given back to the kernel
    assert st["compiler_memory_released_bytes"] > 16 * 2**20


def test_exec_of_ls_is_attributed_to_its_container(agent: Agent) -> None:
    agent.exec_a("ls", "/etc")
    ev = agent.wait(ProcessExec, lambda e: e.argv[:2] == ("ls", "/etc"), "exec of ls /etc")[0]
    assert ev.cgroup_id == agent.ra.cgroup_id
    assert ev.filename == "/bin/ls"
    assert ev.comm == "ls"
    assert ev.uid == 0
    assert ev.ppid > 0
    assert ev.pid > 0
    _assert_b_untouched(agent)


def test_cat_shadow_is_a_sensitive_open_of_that_container(agent: Agent) -> None:
    out = agent.exec_a("cat", "/etc/shadow")
    assert "root:" in out
    opens = agent.wait(FileOpen, lambda e: e.path == "/etc/shadow" and e.comm == "cat", "open of /etc/shadow")
    assert all(e.cgroup_id == agent.ra.cgroup_id for e in opens)
    assert opens[0].ret >= 0 and not opens[0].write
    # A read of an ordinary file is filtered out in the kernel.
    agent.exec_a("cat", "/etc/passwd")
    agent.wait(ProcessExec, lambda e: e.argv[:2] == ("cat", "/etc/passwd"), "exec of cat /etc/passwd")
    assert not agent.of(FileOpen, lambda e: e.path == "/etc/passwd")
    # A write below /etc is reported (sensitive_write_prefixes).
    agent.exec_a("sh", "-c", "echo x > /etc/rg-written")
    w = agent.wait(FileOpen, lambda e: e.path == "/etc/rg-written", "write below /etc")[0]
    assert w.write and w.cgroup_id == agent.ra.cgroup_id
    _assert_b_untouched(agent)


def test_host_processes_are_ignored(agent: Agent) -> None:
    subprocess.run(["cat", "/etc/shadow"], capture_output=True, check=True)
    subprocess.run(["ls", "/etc/rg-host-marker-does-not-exist"], capture_output=True)
    time.sleep(0.5)
    agent.ctx.events.drain()
    cgs = {agent.ra.cgroup_id, agent.rb.cgroup_id}
    assert [e for e in agent.of(Event) if e.cgroup_id not in cgs] == []


def test_nc_listen_connect_accept_with_four_tuple(agent: Agent) -> None:
    # Listener and client inside a's own network namespace (network none: loopback only).
    agent.exec_a(
        "sh",
        "-c",
        "sleep 2 | nc -l -p 8080 >/dev/null & sleep 0.3; (echo hi; sleep 1) | nc 127.0.0.1 8080; wait",
    )
    listen = agent.wait(NetConnect, lambda e: e.op == "listen" and e.sport == 8080, "listen on 8080")[0]
    assert listen.state == "LISTEN" and listen.cgroup_id == agent.ra.cgroup_id and listen.comm == "nc"
    conn = agent.wait(NetConnect, lambda e: e.op == "connect" and e.dport == 8080, "connect to 8080")[0]
    assert conn.daddr == "127.0.0.1" and conn.saddr == "127.0.0.1" and conn.sport > 0
    assert conn.state == "ESTABLISHED" and conn.old_state == "SYN_SENT"
    assert conn.cgroup_id == agent.ra.cgroup_id
    acc = agent.wait(NetConnect, lambda e: e.op == "accept" and e.sport == 8080, "accept on 8080")[0]
    assert acc.cgroup_id == agent.ra.cgroup_id and acc.fd >= 0
    # busybox nc passes no sockaddr to accept(): the peer comes from /proc while it is alive.
    assert (acc.daddr, acc.dport) == ("127.0.0.1", conn.sport)
    _assert_b_untouched(agent)


def test_failed_connect_is_reported(agent: Agent) -> None:
    agent.exec_a("sh", "-c", "nc 127.0.0.1 9 </dev/null; true")
    ev = agent.wait(NetConnect, lambda e: e.op == "connect" and e.dport == 9, "connect to port 9")[0]
    assert ev.state == "CLOSE" and ev.cgroup_id == agent.ra.cgroup_id


def test_privilege_syscall_is_reported_with_result(agent: Agent) -> None:
    out = agent.exec_a("unshare", "-m", "true")
    assert "not permitted" in out.lower() or out == ""
    ev = agent.wait(PrivilegeEvent, lambda e: e.syscall == "unshare" and e.comm == "unshare", "unshare")[0]
    assert ev.cgroup_id == agent.ra.cgroup_id
    assert ev.args == (0x00020000,)  # CLONE_NEWNS
    assert ev.ret == -1  # -EPERM: the container has no CAP_SYS_ADMIN
    _assert_b_untouched(agent)


def test_umount2_is_caught_by_its_syscall_number(agent: Agent) -> None:
    # x86_64 syscall 166 (umount2) is SYSCALL_DEFINE2(umount, ...): its regular tracepoint is
    # sys_enter_umount; the raw dispatcher goes by number and needs no name.
    agent.exec_a("umount", "/proc")
    ev = agent.wait(PrivilegeEvent, lambda e: e.syscall == "umount2", "umount2")[0]
    assert ev.cgroup_id == agent.ra.cgroup_id and ev.ret < 0
    assert ev.args[1] == 0  # umount2(target, flags): busybox umount passes no flags


def test_syscall_loop_counts_and_transitions_in_the_kernel(agent: Agent) -> None:
    agent.source.flush_window()  # start from an empty window
    n = 20000
    agent.exec_a("dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={n}")
    windows = agent.source.flush_window()
    by_cg = {w.cgroup_id: w for w in windows}
    wa = by_cg[agent.ra.cgroup_id]
    assert wa.counts.get(SYS_READ, 0) >= n and wa.counts.get(SYS_WRITE, 0) >= n
    assert wa.transitions.get((SYS_READ, SYS_WRITE), 0) >= n - 1
    assert wa.transitions.get((SYS_WRITE, SYS_READ), 0) >= n - 1
    assert wa.start < wa.end
    # b slept through it: at most a handful of syscalls, never a's loop.
    wb = by_cg.get(agent.rb.cgroup_id)
    assert wb is None or sum(wb.counts.values()) < 100
    # Nothing outside the two containers is counted.
    assert set(by_cg) <= {agent.ra.cgroup_id, agent.rb.cgroup_id}
    # The windows went out on the bus too.
    agent.ctx.events.drain()
    assert agent.of(SyscallWindow, lambda w: w is wa)


def test_flooding_container_is_rate_limited_without_starving_others(agent: Agent) -> None:
    bpf = agent.source.bpf
    assert bpf is not None
    conf = bpf[b"rg_conf"]
    conf[ctypes.c_int(CONF_RATE)] = ctypes.c_ulonglong(20)
    try:
        before = len(agent.of(ProcessExec, lambda e: e.cgroup_id == agent.ra.cgroup_id))
        agent.exec_a("sh", "-c", "i=0; while [ $i -lt 300 ]; do /bin/true; i=$((i+1)); done")
        time.sleep(0.3)
        agent.ctx.events.drain()
        got = len(agent.of(ProcessExec, lambda e: e.cgroup_id == agent.ra.cgroup_id)) - before
        assert got < 150, got
        limited = agent.source.rate_limited_counts(by_cgroup=True)
        assert limited.get(f"{agent.ra.cgroup_id}/exec", 0) >= 300 - got - 5, limited
        # Another container's events still go through in the same second.
        subprocess.run(["docker", "exec", agent.b.id, "ls", "/var"], capture_output=True, timeout=30)
        agent.wait(
            ProcessExec,
            lambda e: e.argv[:2] == ("ls", "/var") and e.cgroup_id == agent.rb.cgroup_id,
            "b's exec despite a's flood",
        )
    finally:
        conf[ctypes.c_int(CONF_RATE)] = ctypes.c_ulonglong(agent.source.settings.max_events_per_second_per_container)
    st = agent.source.status()
    assert st["lost"]["exec"] == 0
    assert f"{agent.ra.cgroup_id}/exec" in st["rate_limited"]


def test_removed_container_leaves_the_kernel_filter(agent: Agent) -> None:
    bpf = agent.source.bpf
    assert bpf is not None
    agent.ctx.registry.remove(agent.rb.id)
    try:
        assert agent.rb.cgroup_id not in {k.value for k in bpf[b"rg_cgroups"]}
        subprocess.run(["docker", "exec", agent.b.id, "ls", "/usr"], capture_output=True, timeout=30)
        time.sleep(0.5)
        agent.ctx.events.drain()
        assert not agent.of(ProcessExec, lambda e: e.argv[:2] == ("ls", "/usr"))
    finally:
        agent.ctx.registry.upsert(agent.rb)


def test_updated_container_moves_its_filter_entry(agent: Agent) -> None:
    import dataclasses

    bpf = agent.source.bpf
    assert bpf is not None
    moved = dataclasses.replace(agent.rb, cgroup_id=agent.rb.cgroup_id + 10_000_000)
    agent.ctx.registry.upsert(moved)
    try:
        ids = {k.value for k in bpf[b"rg_cgroups"]}
        assert moved.cgroup_id in ids and agent.rb.cgroup_id not in ids
    finally:
        agent.ctx.registry.upsert(agent.rb)
    ids = {k.value for k in bpf[b"rg_cgroups"]}
    assert agent.rb.cgroup_id in ids and moved.cgroup_id not in ids


def test_metrics_export_lost_and_rate_limited_per_probe(agent: Agent) -> None:
    from prometheus_client import generate_latest

    text = generate_latest(agent.ctx.metrics).decode()
    for probe in ("exec", "net", "files", "priv"):
        assert f'riskguard_events_lost_total{{probe="{probe}",source="ebpf"}} 0.0' in text
    assert 'riskguard_events_rate_limited_total{probe="exec",source="ebpf"}' in text
    assert 'riskguard_probe_active{probe="syscalls"} 1.0' in text


def test_fallbacks_perf_buffer_and_lru_previous_syscall(agent: Agent, make_ctx: Callable[..., AgentContext]) -> None:
    """Older kernels: perf buffer instead of the ring buffer, LRU hash instead of task storage."""
    ctx = make_ctx(AgentConfig.model_validate({"ebpf": {"probes": ["syscalls", "exec"]}}))
    got: list[Event] = []
    ctx.events.subscribe(got.append)
    ctx.events.start()
    ctx.registry.upsert(agent.ra)
    src = build(ctx)
    assert src is not None
    src.output = "perfbuf"
    src.prev_store = "lru"
    src.start(ctx)
    try:
        st = src.status()
        assert st["output"] == "perfbuf" and not st["task_storage"] and src.active == ["syscalls", "exec"]
        src.flush_window()
        agent.exec_a("ls", "/tmp")
        wait_for(
            lambda: [e for e in got if isinstance(e, ProcessExec) and e.argv[:2] == ("ls", "/tmp")],
            what="exec through the perf buffer",
        )
        agent.exec_a("dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=3000")
        w = {x.cgroup_id: x for x in src.flush_window()}[agent.ra.cgroup_id]
        assert w.transitions.get((SYS_READ, SYS_WRITE), 0) >= 2999
        # runc init of both docker execs (~100 prctl each) is the runtime's here too; busybox
        # itself makes one prctl per program.
        assert w.counts.get(157, 0) <= 2, sorted(w.counts.items())
        assert st["lost"] == {p: 0 for p in ("syscalls", "exec", "net", "files", "priv")}
    finally:
        src.stop()


def test_a_probe_that_fails_to_compile_is_reported_and_the_others_load(
    agent: Agent, make_ctx: Callable[..., AgentContext], tmp_path: Path
) -> None:
    broken = tmp_path / "probes"
    shutil.copytree(PROBES_DIR, broken)
    text = (broken / "files.bpf.c").read_text()
    (broken / "files.bpf.c").write_text(text.replace("rg_open_pending.delete(&tid);", "nope;", 1))
    assert "nope;" in (broken / "files.bpf.c").read_text()
    ctx = make_ctx(AgentConfig.model_validate({"ebpf": {"probes": ["exec", "files"]}}))
    got: list[Event] = []
    ctx.events.subscribe(got.append)
    ctx.events.start()
    ctx.registry.upsert(agent.ra)
    src = build(ctx)
    assert src is not None
    src.probes_dir = broken
    src.start(ctx)  # must not raise
    try:
        st = src.status()
        assert st["active"] == ["exec"]
        assert "nope" in st["inactive"]["files"] and "compile" in st["inactive"]["files"]
        agent.exec_a("ls", "/srv")
        wait_for(
            lambda: [e for e in got if isinstance(e, ProcessExec) and e.argv[:2] == ("ls", "/srv")],
            what="exec with the files probe broken",
        )
    finally:
        src.stop()
