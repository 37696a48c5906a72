# SPDX-License-Identifier: Apache-2.0
"""The must-act record of the in-kernel response (probes/act.h ``struct rg_act_event``)."""

from __future__ import annotations

import re

import pytest

from agent.decoders.ebpf import ACT, ACT_RULES, EV_ACT, HDR, RULE_BITS, DecodeError, decode_act
from agent.sources.ebpf import PROBES_DIR
from agent.syscall_table import syscall_number


def record(rule: int, nr: int, path: bytes, signal_ret: int = 0, arg: int = 0) -> bytes:
    head = HDR.pack(EV_ACT, 4242, 77, 5_000_000_000, 4243, 0, b"cat".ljust(16, b"\0"))
    return head + ACT.pack(rule, nr, arg, signal_ret, 0, path.ljust(256, b"\0"))


def test_decode_act_names_the_rule_syscall_and_path() -> None:
    stop = decode_act(record(1, syscall_number("openat"), b"/etc/shadow"), mono_offset=100.0)
    assert (stop.rule, stop.syscall, stop.path, stop.pid, stop.tid, stop.cgroup_id) == (
        "open",
        "openat",
        "/etc/shadow",
        4242,
        4243,
        77,
    )
    assert stop.stopped and stop.ts == pytest.approx(105.0) and stop.ts_ns == 5_000_000_000
    ex = decode_act(record(8, -1, b"/tmp/x", signal_ret=-1))
    assert ex.syscall == "execve" and not ex.stopped


def test_decode_act_refuses_short_foreign_and_unknown_records() -> None:
    with pytest.raises(DecodeError):
        decode_act(record(1, 2, b"/x")[:-10])
    with pytest.raises(DecodeError):
        decode_act(b"\x03" + record(1, 2, b"/x")[1:])  # an open record
    with pytest.raises(DecodeError, match="unknown op"):
        decode_act(record(16, 2, b"/x"))


def test_rule_bits_and_record_size_match_act_h() -> None:
    text = (PROBES_DIR / "act.h").read_text()
    defines = {k: int(v) for k, v in re.findall(r"#define RG_RULE_(\w+) (\d+)", text)}
    assert defines == {"OPEN": 1, "NS": 2, "SOCK": 4, "EXEC": 8}
    assert set(ACT_RULES) == set(defines.values()) and RULE_BITS["runtime_socket"] == defines["SOCK"]
    assert ACT.size == 4 + 4 + 8 + 4 + 4 + 256  # rule, nr, arg, signal_ret, pad, path
