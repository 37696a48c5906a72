# SPDX-License-Identifier: Apache-2.0
"""Decoding of raw probe records (recorded from a real container by capture_records.py)."""

from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path

import pytest

from agent.decoders.ebpf import (
    AT_FDCWD,
    CHANGE,
    EXEC,
    EXIT,
    HDR,
    NET,
    OPEN,
    PRIV,
    WHY_EXPLICIT,
    WHY_RELATIVE,
    DecodeError,
    decode_header,
    decode_record,
    syscall_window_rows,
)
from agent.events import FileChange, FileOpen, NetConnect, PrivilegeEvent, ProcessExec, ProcessExit

RECORDS = Path(__file__).resolve().parent / "records" / "records.jsonl"


def _records() -> list[tuple[str, bytes]]:
    out = []
    for line in RECORDS.read_text().splitlines():
        obj = json.loads(line)
        out.append((obj["probe"], bytes.fromhex(obj["hex"])))
    return out


@pytest.fixture(scope="module")
def events() -> list[object]:
    return [decode_record(raw, mono_offset=1000.0) for _probe, raw in _records()]


def test_every_recorded_record_decodes_to_its_probe_type(events: list[object]) -> None:
    kinds = {
        "exec": (ProcessExec, ProcessExit),
        "net": (NetConnect,),
        "files": (FileOpen, FileChange),
        "priv": (PrivilegeEvent,),
    }
    for (probe, _raw), ev in zip(_records(), events, strict=True):
        assert isinstance(ev, kinds[probe])


def test_all_records_carry_the_container_cgroup_and_a_pid(events: list[object]) -> None:
    cgroups = {ev.cgroup_id for ev in events}  # type: ignore[attr-defined]
    assert len(cgroups) == 1 and next(iter(cgroups)) > 1
    assert all(ev.pid > 0 for ev in events)  # type: ignore[attr-defined]


def test_exec_record(events: list[object]) -> None:
    ls = [e for e in events if isinstance(e, ProcessExec) and e.argv[:2] == ("ls", "/etc")]
    assert len(ls) == 1
    ev = ls[0]
    assert ev.filename == "/bin/ls" and ev.comm == "ls" and ev.uid == 0
    assert ev.ppid > 0 and ev.parent_comm
    assert ev.ts > 1000.0  # monotonic ns + offset
    shell = [e for e in events if isinstance(e, ProcessExec) and e.argv[:1] == ("sh",)]
    assert any("nc -l -p 8080" in " ".join(e.argv) for e in shell)


def test_open_records(events: list[object]) -> None:
    opens = {e.path: e for e in events if isinstance(e, FileOpen)}
    assert opens["/etc/shadow"].write is False and opens["/etc/shadow"].ret >= 0
    assert opens["/etc/shadow"].comm == "cat"
    assert opens["/etc/rg-written"].write is True
    # process discovery: another process's cmdline
    assert opens["/proc/1/cmdline"].comm == "cat" and opens["/proc/1/cmdline"].write is False


def test_change_records(events: list[object]) -> None:
    changes = {e.op: e for e in events if isinstance(e, FileChange)}
    assert (changes["rename"].path, changes["rename"].new_path) == ("/var/log/rg.log", "/var/log/rg.old")
    assert changes["unlink"].path == "/var/log/rg.old" and changes["unlink"].ret == 0
    assert changes["unlink"].comm == "rm" and not changes["unlink"].explicit_times
    t = changes["utimes"]
    assert t.path == "/tmp/rg-t" and t.explicit_times and t.comm == "touch" and t.new_path == ""
    # The fork map gave the rm's parent (the shell).
    assert changes["unlink"].ppid > 0 and changes["unlink"].ppid != changes["unlink"].pid


def test_exit_records(events: list[object]) -> None:
    exits = [e for e in events if isinstance(e, ProcessExit)]
    shells = [e for e in events if isinstance(e, ProcessExec) and e.argv == ("sh", "-c", "sleep 0.1; exit 3")]
    assert len(shells) == 1
    mine = [e for e in exits if e.pid == shells[0].pid]
    assert len(mine) == 1 and mine[0].exit_code == 3 and mine[0].comm == "sh"
    assert all(e.exit_code >= 0 for e in exits)  # every recorded process called exit


def test_net_records(events: list[object]) -> None:
    net = {e.op: e for e in events if isinstance(e, NetConnect)}
    assert net["listen"].sport == 8080 and net["listen"].state == "LISTEN"
    c = net["connect"]
    assert (c.family, c.saddr, c.daddr, c.dport) == (socket.AF_INET, "127.0.0.1", "127.0.0.1", 8080)
    assert c.sport > 0 and c.state == "ESTABLISHED" and c.old_state == "SYN_SENT"
    assert net["accept"].sport == 8080 and net["accept"].fd >= 0


def test_priv_record_keeps_only_the_syscall_arity(events: list[object]) -> None:
    un = [e for e in events if isinstance(e, PrivilegeEvent) and e.syscall == "unshare"]
    assert un and un[0].args == (0x00020000,) and un[0].ret == -1


NO_STDIO = (0, 0, 0, 0, 0, 0, 0)  # stdio_kind[4], stdio_ino[3]: not read


def _hdr(type_: int) -> bytes:
    return HDR.pack(type_, 42, 7777, 5_000_000_000, 43, 1000, b"evil\0")


def test_truncated_and_unknown_records_raise_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_record(b"")
    with pytest.raises(DecodeError):
        decode_record(b"\x01\x00")
    with pytest.raises(DecodeError, match="unknown record type 99"):
        decode_record(_hdr(99))
    for t, body in ((1, EXEC), (2, NET), (3, OPEN), (4, PRIV), (5, CHANGE), (6, EXIT)):
        full = _hdr(t) + bytes(body.size)
        with pytest.raises(DecodeError):
            decode_record(full[:-1])
    # An unknown net op is refused, not guessed.
    bad_net = _hdr(2) + NET.pack(2, 6, 1, 2, bytes(16), bytes(16), 9, 0, 0, 0, -1)
    with pytest.raises(DecodeError, match="unknown op"):
        decode_record(bad_net)
    bad_change = _hdr(5) + CHANGE.pack(0, 7, 0, AT_FDCWD, AT_FDCWD, 0, b"/x\0", b"\0")
    with pytest.raises(DecodeError, match="unknown op"):
        decode_record(bad_change)


def test_change_paths_relative_to_a_directory_fd_name_the_fd() -> None:
    # unlinkat(3, "old.log", 0): the path names the fd, so the source can resolve it.
    raw = _hdr(5) + CHANGE.pack(-2, 1, WHY_RELATIVE, 3, AT_FDCWD, 9, b"old.log\0", b"\0")
    ev = decode_record(raw)
    assert isinstance(ev, FileChange)
    assert (ev.op, ev.path, ev.new_path, ev.ret) == ("unlink", "/proc/42/fd/3/old.log", "", -2)
    assert ev.ppid == 9
    # Relative to the cwd: left relative (the source resolves it against the cwd).
    rel = decode_record(_hdr(5) + CHANGE.pack(0, 2, WHY_RELATIVE, AT_FDCWD, 4, 0, b"a\0", b"b\0"))
    assert isinstance(rel, FileChange) and (rel.path, rel.new_path) == ("a", "/proc/42/fd/4/b")
    # futimens(fd, times): no path, the fd is the file.
    fut = decode_record(_hdr(5) + CHANGE.pack(0, 3, WHY_EXPLICIT, 5, AT_FDCWD, 0, b"\0", b"\0"))
    assert isinstance(fut, FileChange) and fut.path == "/proc/42/fd/5" and fut.explicit_times


def test_exit_record_without_an_exit_call() -> None:
    ev = decode_record(_hdr(6) + EXIT.pack(-1, 0))
    assert isinstance(ev, ProcessExit) and ev.exit_code == -1 and ev.pid == 42 and ev.comm == "evil"


def test_synthetic_exec_with_truncated_argv_and_bad_utf8() -> None:
    args = b"a\xffb\0second\0"
    raw = (
        _hdr(1)
        + EXEC.pack(1, 2, len(args), 1, b"parent\0", b"/bin/x\0", 0, 0, 0, 0, 0, b"", *NO_STDIO, b"", 0, 0, b"")
        + args
    )
    ev = decode_record(raw, mono_offset=0.0)
    assert isinstance(ev, ProcessExec)
    assert ev.argv == ("a\ufffdb", "second", "...")
    assert ev.ts == 5.0 and ev.pid == 42 and ev.cgroup_id == 7777 and ev.uid == 1000
    assert ev.parent_comm == "parent" and ev.comm == "evil"
    # exe_flags 0: the probe read no executable (no BTF): nothing claimed.
    assert (ev.exe_name, ev.parent_exe, ev.parent_exe_ino, ev.exe_origin) == ("", "", 0, "")


def test_exec_record_with_the_executables_the_kernel_read() -> None:
    # The kernel's rewrite for a script, 128 bytes of it: the last string cut.
    new = (b"/bin/sh\0status.cgi\0" + b"QUERY" * 40)[:128]
    exe = (3, 1, 4242, (8 << 20) | 3, 0, b"busybox\0")  # flags, links, parent ino, dev, pad, parent exe
    body = EXEC.pack(1, 0, 0, 0, b"httpd\0", b"status.cgi\0", *exe, *NO_STDIO, b"busybox\0", 128, 0, new)
    ev = decode_record(_hdr(1) + body)
    assert isinstance(ev, ProcessExec)
    assert (ev.exe_name, ev.parent_exe, ev.parent_exe_ino) == ("busybox", "busybox", 4242)
    assert ev.parent_exe_dev == os.makedev(8, 3) and ev.exe_origin == ""
    assert ev.exec_argv == ("/bin/sh", "status.cgi")
    # Links 0: the executable was deleted; a memfd's name.
    deleted = decode_record(
        _hdr(1) + EXEC.pack(1, 0, 0, 0, b"", b"/x\0", 2, 0, 0, 0, 0, b"", *NO_STDIO, b"x\0", 0, 0, b"")
    )
    memfd = decode_record(
        _hdr(1) + EXEC.pack(1, 0, 0, 0, b"", b"/dev/fd/3\0", 2, 1, 0, 0, 0, b"", *NO_STDIO, b"memfd:x\0", 0, 0, b"")
    )
    assert isinstance(deleted, ProcessExec) and deleted.exe_origin == "deleted"
    assert isinstance(memfd, ProcessExec) and memfd.exe_origin == "memfd"


def test_ipv6_net_record() -> None:
    v6 = socket.inet_pton(socket.AF_INET6, "fd00::1")
    raw = _hdr(2) + NET.pack(socket.AF_INET6, 6, 5555, 443, v6, v6, 1, 2, 1, 0, -1)
    ev = decode_record(raw)
    assert isinstance(ev, NetConnect)
    assert (ev.saddr, ev.daddr, ev.dport, ev.op) == ("fd00::1", "fd00::1", 443, "connect")


def test_header_and_window_rows() -> None:
    h = decode_header(_hdr(3))
    assert (h.type, h.pid, h.tid, h.comm) == (3, 42, 43, "evil")
    rows = syscall_window_rows({(5, 0): 3, (6, 1): 1}, {(5, 0, 1): 2, (5, 1, 0): 2})
    assert rows[5] == ({0: 3}, {(0, 1): 2, (1, 0): 2})
    assert rows[6] == ({1: 1}, {})


def test_record_layouts_match_the_c_structs() -> None:
    # sizeof(struct rg_hdr) == 48; struct rg_net_event == 48 + 48 ... (probes/*.h)
    assert HDR.size == 48
    assert HDR.size + NET.size == 96
    assert HDR.size + OPEN.size == 48 + 16 + 256
    assert HDR.size + PRIV.size == 48 + 16 + 48
    assert HDR.size + CHANGE.size == 48 + 24 + 2 * 256
    assert HDR.size + EXIT.size == 48 + 8
    # struct rg_exec_event: ppid..truncated, parent_comm, filename, exe_flags, exe_nlink,
    # parent_ino (8-aligned at 344), parent_dev, pad, parent_exe[32], stdio_kind[4],
    # stdio_ino[3] (8-aligned at 408), exe_name[32], new_args_size, pad2, new_args[128];
    # args at 600.
    assert struct.calcsize("@IIII16s256sIIQII32s4I3Q32sII128s") == EXEC.size
    assert HDR.size + EXEC.size == 600  # offsetof(struct rg_exec_event, args)
