# SPDX-License-Identifier: Apache-2.0
"""The eBPF loader without a kernel: program text, settings, /proc completion, degraded start."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.cli import main
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import NetConnect, ProcessExec
from agent.hostfs import HostPaths
from agent.settings.sources import EbpfSettings
from agent.sources.ebpf import (
    PROBES_DIR,
    available_probes,
    build,
    cflags,
    complete_accept,
    complete_exec,
    detect_support,
    program_text,
)
from agent.sources.procnet import decode_addr


def test_every_probe_ships_with_header_comment_hooks_and_maps() -> None:
    names = available_probes()
    assert names == ["exec", "files", "net", "priv", "syscalls"]
    for n in names:
        text = (PROBES_DIR / f"{n}.bpf.c").read_text()
        assert text.startswith("// SPDX-License-Identifier: GPL-2.0")
        assert re.search(r"Hooks?:", text) and "Maps:" in text, n
    readme = (PROBES_DIR / "README.md").read_text()
    for n in names:
        assert f"| {n} " in readme or f"| `{n}`" in readme, f"{n} missing from probes/README.md"


def test_program_text_inlines_headers_once_and_starts_with_the_cflags() -> None:
    text = program_text(["exec", "net"], cflags(EbpfSettings(), ringbuf=True))
    assert text.splitlines()[1:12] == [
        "#define RG_ARGV_MAX 16",
        "#define RG_MAX_CGROUPS 4096",
        # the namespace-escape syscalls of the in-kernel response (probes/priv.bpf.c)
        "#define RG_NR_MOUNT 165",
        "#define RG_NR_SETNS 308",
        "#define RG_NR_UNSHARE 272",
        "#define RG_RB_GAP_NS 5000000ULL",  # one reader wakeup per 5 ms gap at most (poll_interval_ms)
        "#define RG_RINGBUF 1",
        "#define RG_RINGBUF_PAGES 64",
        # the syscall transition cells (probes/syscalls.h, mirrored by agent/sources/ebpf/counts.py)
        "#define RG_TR_GROUP_BITS 7",
        "#define RG_TR_SLOTS 64",
        "",
    ]
    eager = program_text(["exec"], cflags(EbpfSettings(poll_interval_ms=0), ringbuf=True, task_storage=True))
    assert "#define RG_RB_GAP_NS" not in eager and "#define RG_TASK_STORAGE 1" in eager
    assert '#include "' not in text  # every local header inlined
    assert text.count("#define RG_COMMON_H") == 1  # common.h once for both probes
    assert text.count("#define RG_ACT_H") == 1  # act.h (the in-kernel response) once too
    assert "TRACEPOINT_PROBE(sched, sched_process_exec)" in text
    assert "TRACEPOINT_PROBE(sock, inet_sock_set_state)" in text
    perf = program_text(["exec"], cflags(EbpfSettings(ring_buffer_pages=128, argv_max=4), ringbuf=False))
    assert "#define RG_RINGBUF 1" not in perf
    assert "#define RG_RINGBUF_PAGES 128" in perf and "#define RG_ARGV_MAX 4" in perf


def test_program_text_refuses_a_missing_probe(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        program_text(["nope"], {}, tmp_path)


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="power of two"):
        EbpfSettings(ring_buffer_pages=48)
    with pytest.raises(ValidationError, match="unknown probe"):
        EbpfSettings(probes=("exec", "kprobe_magic"))
    with pytest.raises(ValidationError):
        EbpfSettings(max_events_per_second_per_container=1)
    assert EbpfSettings(probes=("exec",)).probes == ("exec",)


def test_build_is_none_when_disabled(make_ctx: Callable[..., AgentContext]) -> None:
    assert build(make_ctx(AgentConfig.model_validate({"ebpf": {"enabled": False}}))) is None
    assert build(make_ctx()) is not None


def test_start_without_tracefs_reports_why_and_keeps_running(
    make_ctx: Callable[..., AgentContext], host_tree: HostPaths
) -> None:
    ctx = make_ctx(paths=host_tree)
    src = build(ctx)
    assert src is not None
    src.start(ctx)  # must not raise
    st = src.status()
    assert st["active"] == []
    assert set(st["inactive"]) == {"syscalls", "exec", "net", "files", "priv"}
    assert any("tracefs is not mounted" in p for p in st["problems"])
    assert ctx.control_methods["ebpf.status"]({})["active"] == []
    src.stop()
    src.flush_window()  # no-op without probes
    assert src.lost_counts() == {}


def test_detect_support_names_each_missing_piece(host_tree: HostPaths) -> None:
    s = detect_support(host_tree)
    assert not s.ok and not s.btf
    if os.geteuid() != 0:
        assert any("root" in p for p in s.problems)


def test_probes_share_one_dispatcher_on_raw_syscall_tracepoints() -> None:
    flags = cflags(EbpfSettings(), ringbuf=True, task_storage=True)
    text = program_text(["syscalls", "exec", "net", "files", "priv"], flags)
    # One sys_enter and one sys_exit program for all probes, appended after them.
    assert text.count("RAW_TRACEPOINT_PROBE(sys_enter)") == 1 and text.count("RAW_TRACEPOINT_PROBE(sys_exit)") == 1
    assert text.index("RAW_TRACEPOINT_PROBE(sys_enter)") > text.index("rg_priv_exit(void *ctx")
    # No regular syscall tracepoint: each would add the kernel's perf hook to every syscall.
    assert "TRACEPOINT_PROBE(syscalls," not in text
    assert text.count("#define RG_TASK_H") == 1
    # Only the loaded probes' handlers are compiled in; the exit hook only for those that use it.
    alone = program_text(["syscalls"], flags)
    assert "#define RG_HOOK_SYSCALLS" in alone and "#define RG_SYSDISPATCH_H" in alone
    assert not re.search(r"#define RG_HOOK_(FILES|PRIV|NET|EXEC)", alone)


def test_syscall_kinds_match_the_probe_defines_and_the_syscall_table() -> None:
    from agent.sources.ebpf import SYSCALL_KINDS
    from agent.syscall_table import syscall_number

    defines = dict(re.findall(r"#define (RG_KIND_\w+) (\d+)", (PROBES_DIR / "task.h").read_text()))
    names = {
        "files": {
            "open": "OPEN",
            "openat": "OPENAT",
            "openat2": "OPENAT2",
            "unlink": "UNLINK",
            "unlinkat": "UNLINKAT",
            "rename": "RENAME",
            "renameat": "RENAMEAT",
            "renameat2": "RENAMEAT",
            "utimensat": "UTIMENSAT",
            "utimes": "UTIMES",
            "futimesat": "FUTIMESAT",
            "utime": "UTIME",
            "connect": "CONNECT",
        },
        "exec": {"execve": "EXECVE", "execveat": "EXECVEAT", "exit": "EXIT", "exit_group": "EXIT_GROUP"},
        "net": {"listen": "LISTEN", "accept": "ACCEPT", "accept4": "ACCEPT"},
    }
    for probe, by_name in names.items():
        expected = {syscall_number(sc): int(defines[f"RG_KIND_{kind}"]) for sc, kind in by_name.items()}
        assert SYSCALL_KINDS[probe] == expected, probe
    assert set(SYSCALL_KINDS["priv"].values()) == {int(defines["RG_KIND_PRIV"])}
    assert set(SYSCALL_KINDS) == set(available_probes()) - {"syscalls"}
    # No number goes to two probes.
    nrs = [nr for kinds in SYSCALL_KINDS.values() for nr in kinds]
    assert len(nrs) == len(set(nrs))


def test_hex_addresses_of_proc_net_tcp() -> None:
    assert decode_addr("0100007F:1F90") == ("127.0.0.1", 8080)
    assert decode_addr("0000000000000000FFFF00000100007F:D3F6", unmap=True) == ("127.0.0.1", 0xD3F6)
    assert decode_addr("0000000000000000FFFF00000100007F:D3F6") == ("::ffff:127.0.0.1", 0xD3F6)
    assert decode_addr("00000000000000000000000001000000:0016") == ("::1", 22)
    with pytest.raises(ValueError):
        decode_addr("0100:0016")


def _proc_tree(host: HostPaths, pid: int, ppid: int) -> Path:
    d = host.pid_dir(pid)
    (d / "fd").mkdir(parents=True)
    (d / "net").mkdir()
    (d / "status").write_text(f"Name:\tsh\nPPid:\t{ppid}\n")
    pd = host.pid_dir(ppid)
    pd.mkdir(parents=True)
    (pd / "comm").write_text("nginx\n")
    return d


def test_complete_exec_fills_stdio_ppid_parent_and_memfd(host_tree: HostPaths) -> None:
    d = _proc_tree(host_tree, 100, 50)
    (d / "fd" / "0").symlink_to("socket:[777]")
    (d / "fd" / "1").symlink_to("socket:[777]")
    (d / "fd" / "2").symlink_to("/dev/pts/0")
    (d / "exe").symlink_to("/memfd:x (deleted)")
    ev = ProcessExec(ts=1.0, pid=100, cgroup_id=9, ppid=0, uid=0, comm="sh", filename="/bin/sh")
    done = complete_exec(ev, host_tree)
    assert done.stdio == ("socket:[777]", "socket:[777]", "/dev/pts/0")
    assert (done.ppid, done.parent_comm, done.exe_origin) == (50, "nginx", "memfd")
    # The process is gone: the event is kept as it came.
    gone = ProcessExec(ts=1.0, pid=4242, ppid=0, uid=0, comm="ls", filename="/bin/ls")
    assert complete_exec(gone, host_tree) == gone


def test_complete_accept_reads_the_peer_from_the_process_netns(host_tree: HostPaths) -> None:
    d = _proc_tree(host_tree, 200, 1)
    (d / "fd" / "0").symlink_to("socket:[555]")  # nc moved the accepted socket to stdin
    (d / "net" / "tcp").write_text("  sl  local_address rem_address   st ...\n")
    (d / "net" / "tcp6").write_text(
        "  sl  local_address                         remote_address                        st tx_queue "
        "rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D3F6 01 "
        "00000000:00000000 00:00000000 00000000     0        0 555 1 0000000000000000 20 4 30 10 -1\n"
    )
    ev = NetConnect(
        ts=1.0,
        pid=200,
        op="accept",
        comm="nc",
        family=10,
        protocol="tcp",
        saddr="::",
        sport=8080,
        daddr="::",
        dport=0,
        fd=4,
    )
    done = complete_accept(ev, host_tree)
    assert (done.saddr, done.sport, done.daddr, done.dport) == ("127.0.0.1", 8080, "127.0.0.1", 0xD3F6)
    assert complete_accept(dataclasses.replace(ev, pid=999), host_tree).dport == 0


def test_probes_cli_lists_and_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probes", "--list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^syscalls\s+raw tracepoint raw_syscalls:sys_enter", out, re.M)
    assert main(["probes", "--print", "files", "--output", "perfbuf"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("/* riskguard probes: files */\n#define ")
    assert "BPF_LPM_TRIE(rg_sensitive" in out and "#define RG_RINGBUF 1" not in out
    assert main(["probes", "--print", "nope"]) == 2
    assert "unknown probe" in capsys.readouterr().err
