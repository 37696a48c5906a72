# SPDX-License-Identifier: Apache-2.0
"""Decoding of raw probe records (recorded from a real container by capture_records.py)."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest

from agent.decoders.ebpf import (
    EXEC,
    HDR,
    NET,
    OPEN,
    PRIV,
    DecodeError,
    decode_header,
    decode_record,
    syscall_window_rows,
)
from agent.events import FileOpen, NetConnect, PrivilegeEvent, ProcessExec

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
    kinds = {"exec": ProcessExec, "net": NetConnect, "files": FileOpen, "priv": PrivilegeEvent}
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


def _hdr(type_: int) -> bytes:
    return HDR.pack(type_, 42, 7777, 5_000_000_000, 43, 1000, b"evil\0")


def test_truncated_and_unknown_records_raise_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_record(b"")
    with pytest.raises(DecodeError):
        decode_record(b"\x01\x00")
    with pytest.raises(DecodeError, match="unknown record type 99"):
        decode_record(_hdr(99))
    for t, body in ((1, EXEC), (2, NET), (3, OPEN), (4, PRIV)):
        full = _hdr(t) + bytes(body.size)
        with pytest.raises(DecodeError):
            decode_record(full[:-1])
    # An unknown net op is refused, not guessed.
    bad_net = _hdr(2) + NET.pack(2, 6, 1, 2, bytes(16), bytes(16), 9, 0, 0, 0, -1)
    with pytest.raises(DecodeError, match="unknown op"):
        decode_record(bad_net)


def test_synthetic_exec_with_truncated_argv_and_bad_utf8() -> None:
    args = b"a\xffb\0second\0"
    raw = _hdr(1) + EXEC.pack(1, 2, len(args), 1, b"parent\0", b"/bin/x\0") + args
    ev = decode_record(raw, mono_offset=0.0)
    assert isinstance(ev, ProcessExec)
    assert ev.argv == ("a\ufffdb", "second", "...")
    assert ev.ts == 5.0 and ev.pid == 42 and ev.cgroup_id == 7777 and ev.uid == 1000
    assert ev.parent_comm == "parent" and ev.comm == "evil"


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
    assert struct.calcsize("<IIII16s256s") == EXEC.size
