# SPDX-License-Identifier: Apache-2.0
"""The exec record's stdio (probes/exec.h stdio_kind/stdio_ino): decoded into the names
/proc/<pid>/fd gives, from recorded and synthetic records; the source completes from /proc only
the fds the kernel could not name."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from agent.decoders.ebpf import EXE_STDIO, EXEC, HDR, decode_record
from agent.decoders.ebpf_stdio import FD_CHR, FD_CLOSED, FD_OTHER, FD_PIPE, FD_SOCKET, STDIO_FROM_PROC
from agent.events import ProcessExec
from agent.hostfs import HostPaths
from agent.sources.ebpf.complete import complete_exec

RECORDS = Path(__file__).resolve().parent / "records" / "records.jsonl"


def _execs() -> list[ProcessExec]:
    evs = [decode_record(bytes.fromhex(json.loads(line)["hex"])) for line in RECORDS.read_text().splitlines()]
    return [e for e in evs if isinstance(e, ProcessExec)]


def _exec(flags: int, kinds: tuple[int, int, int], inos: tuple[int, int, int]) -> ProcessExec:
    hdr = HDR.pack(1, 42, 7777, 5_000_000_000, 42, 0, b"sh\0")
    body = EXEC.pack(7, 0, 0, 0, b"nc\0", b"/bin/sh\0", flags, 1, 0, 0, 0, b"", *kinds, 0, *inos, b"sh\0", 0, 0, b"")
    ev = decode_record(hdr + body)
    assert isinstance(ev, ProcessExec)
    return ev


def test_recorded_execs_carry_their_stdio_from_the_kernel() -> None:
    execs = {e.argv[:4]: e for e in _execs()}
    ls = execs[("ls", "/etc")]
    # docker exec without -i: stdin /dev/null, stdout and stderr pipes to the runtime
    assert ls.stdio[0] == "/dev/null" and ls.stdio[1].startswith("pipe:[") and ls.stdio[2].startswith("pipe:[")
    # `sleep 2 | nc -l -p 8080 >/dev/null`: the pipe links sleep's stdout to nc's stdin
    sleep, nc = execs[("sleep", "2")], execs[("nc", "-l", "-p", "8080")]
    assert sleep.stdio[1] == nc.stdio[0] and nc.stdio[0].startswith("pipe:[") and nc.stdio[1] == "/dev/null"
    # `cat /etc/hostname > /tmp/rg-out`: a file, named by its path: left to /proc
    cat = execs[("cat", "/etc/hostname")]
    assert cat.stdio[1] == STDIO_FROM_PROC and cat.stdio[0] == "/dev/null"


def test_synthetic_stdio_kinds_are_named_as_proc_names_them() -> None:
    pts3, tty, odd = (136 << 20) | 3, (5 << 20) | 0, (10 << 20) | 200
    ev = _exec(EXE_STDIO, (FD_SOCKET, FD_SOCKET, FD_CHR), (9001, 9001, pts3))
    assert ev.stdio == ("socket:[9001]", "socket:[9001]", "/dev/pts/3")
    ev = _exec(EXE_STDIO, (FD_PIPE, FD_CHR, FD_CHR), (77, tty, odd))
    assert ev.stdio == ("pipe:[77]", "/dev/tty", STDIO_FROM_PROC)  # an unknown device: its path
    ev = _exec(EXE_STDIO, (FD_CLOSED, FD_OTHER, FD_CHR), (0, 5, (1 << 20) | 3))
    assert ev.stdio == ("", STDIO_FROM_PROC, "/dev/null")
    # every fd closed: as /proc reads it, nothing known; stdio not read (no BTF): nothing claimed
    assert _exec(EXE_STDIO, (FD_CLOSED, FD_CLOSED, FD_CLOSED), (0, 0, 0)).stdio == ()
    assert _exec(0, (FD_SOCKET, FD_SOCKET, FD_SOCKET), (1, 1, 1)).stdio == ()


def _proc(host: HostPaths, pid: int, links: dict[str, str]) -> None:
    fd = host.pid_dir(pid) / "fd"
    fd.mkdir(parents=True)
    for n, target in links.items():
        (fd / n).symlink_to(target)


def test_complete_exec_reads_no_proc_when_the_kernel_named_everything(host_tree: HostPaths) -> None:
    # /proc would say otherwise: the kernel's names (read at the exec itself) are kept, unread
    _proc(host_tree, 42, {"0": "/dev/pts/0", "1": "/dev/pts/0", "2": "/dev/pts/0"})
    ev = _exec(EXE_STDIO, (FD_SOCKET, FD_SOCKET, FD_PIPE), (5, 5, 6))
    assert complete_exec(ev, host_tree) is ev


def test_complete_exec_reads_only_the_fds_the_kernel_left_to_proc(host_tree: HostPaths) -> None:
    _proc(host_tree, 42, {"0": "/dev/pts/9", "1": "/tmp/out", "2": "/dev/pts/9"})
    ev = _exec(EXE_STDIO, (FD_PIPE, FD_OTHER, FD_CLOSED), (6, 0, 0))
    done = complete_exec(ev, host_tree)
    assert done.stdio == ("pipe:[6]", "/tmp/out", "")
    assert (done.ppid, done.parent_comm, done.exe_name) == (ev.ppid, ev.parent_comm, ev.exe_name)
    # the process is gone before /proc is read: the kernel's names stay, the file is unknown
    gone = _exec(EXE_STDIO, (FD_OTHER, FD_SOCKET, FD_SOCKET), (0, 8, 8))
    done = complete_exec(dataclasses.replace(gone, pid=4242), host_tree)
    assert done.stdio == ("", "socket:[8]", "socket:[8]")
