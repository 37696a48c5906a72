# SPDX-License-Identifier: Apache-2.0
"""Open records of the files probe that are not plain opens: an AF_UNIX connect to a runtime
socket (match RG_MATCH_CONNECT, decoded as a NetConnect), an open with O_TRUNC (match
RG_MATCH_TRUNC), and the parent pid every open record carries; the trie bits behind them."""

from __future__ import annotations

import os
import socket

from agent.decoders.ebpf import HDR, OPEN, OPEN_MATCH, decode_record
from agent.events import FileOpen, NetConnect
from agent.sources.ebpf.loader import sensitive_entries
from agent.sources.ebpf.program import MATCH_ANY, MATCH_CONNECT, MATCH_STOP_CONNECT, MATCH_TRUNC, MATCH_WRITE


def _open_record(path: bytes, *, match: int, flags: int = 0, ret: int = 0, ppid: int = 0) -> bytes:
    hdr = HDR.pack(3, 4321, 77, 5_000_000_000, 4321, 0, b"curl".ljust(16, b"\0"))
    return hdr + OPEN.pack(ret, flags, match, ppid, path + b"\0")


def test_a_connect_record_is_an_af_unix_net_connect() -> None:
    ev = decode_record(_open_record(b"/var/run/docker.sock", match=MATCH_CONNECT), mono_offset=100.0)
    assert isinstance(ev, NetConnect)
    assert (ev.op, ev.family, ev.protocol, ev.daddr, ev.dport, ev.state) == (
        "connect",
        socket.AF_UNIX,
        "unix",
        "/var/run/docker.sock",
        0,
        "",
    )
    assert (ev.pid, ev.cgroup_id, ev.comm, ev.ts) == (4321, 77, "curl", 105.0)
    failed = decode_record(_open_record(b"/run/docker.sock", match=MATCH_CONNECT, ret=-111))
    assert isinstance(failed, NetConnect) and failed.state == "FAILED"
    assert OPEN_MATCH[MATCH_CONNECT] == "connect" and OPEN_MATCH[MATCH_TRUNC] == "truncate"


def test_open_records_carry_the_parent_pid_and_truncations_decode_as_opens() -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    ev = decode_record(_open_record(b"/var/log/messages", match=MATCH_TRUNC, flags=flags, ppid=99))
    assert isinstance(ev, FileOpen)
    assert (ev.path, ev.write, ev.flags & os.O_TRUNC, ev.ppid) == ("/var/log/messages", True, os.O_TRUNC, 99)


def test_trie_bits_for_connects_and_truncations() -> None:
    entries = sensitive_entries(
        ["/var/run/docker.sock"],
        ["/etc/"],
        stop_connect=["/var/run/docker.sock"],
        connect=["/var/run/docker.sock", "/run/podman/podman.sock"],
        truncate=["/var/log/"],
    )
    assert entries["/var/run/docker.sock"] == MATCH_ANY | MATCH_CONNECT
    # The kernel response's stop paths are exact keys (with the NUL), carrying the bits of every
    # shorter entry that covers them (an LPM trie returns the longest match only).
    assert entries["/var/run/docker.sock\0"] == MATCH_ANY | MATCH_STOP_CONNECT | MATCH_CONNECT
    assert entries["/run/podman/podman.sock"] == MATCH_CONNECT
    assert entries["/var/log/"] == MATCH_TRUNC and entries["/etc/"] == MATCH_WRITE
