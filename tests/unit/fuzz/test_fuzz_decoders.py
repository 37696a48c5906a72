# SPDX-License-Identifier: Apache-2.0
"""Property-based fuzzing of the audit and packet decoders: any input decodes or is refused with
the decoder's own error (``MalformedRecord`` / ``MalformedPacket``), never anything else."""

from __future__ import annotations

import io
import json
import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from agent.decoders.audit import (
    EventAssembler,
    MalformedRecord,
    parse_log_line,
    parse_netlink_payload,
    split_netlink,
)
from agent.decoders.packets import FlowAccumulator, MalformedPacket, PacketInfo, decode_frame
from agent.sources.audit_cli import decode_stream, event_json

HOSTILE_CHARS = st.one_of(st.characters(), st.sampled_from(["\udfff", "\ud800", "\x00", "\x1b", "\x1d", "\u2028", '"']))
NUMBER = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.from_regex(r"[0-9]{1,40}", fullmatch=True),
    st.integers(0, 5000).map(lambda n: "9" * n),
)
VALUE = st.one_of(
    NUMBER,
    st.text(alphabet="0123456789ABCDEF", max_size=64),
    st.text(HOSTILE_CHARS, max_size=30).map(lambda s: f'"{s}"'),
    st.text(HOSTILE_CHARS, max_size=30),
    st.sampled_from(["(null)", "(none)", "c000003e", "yes", "no", "0x7fffffff", "-1"]),
)
KEY = st.one_of(
    st.sampled_from(
        [
            "syscall",
            "arch",
            "pid",
            "ppid",
            "uid",
            "auid",
            "exit",
            "success",
            "comm",
            "exe",
            "key",
            "argc",
            "a0",
            "a1",
            "a2",
            "a0[0]",
            "a0[1]",
            "a0_len",
            "name",
            "item",
            "cwd",
            "proctitle",
            "saddr",
        ]
    ),
    st.from_regex(r"[A-Za-z0-9_\-\[\]]{1,10}", fullmatch=True),
)
RTYPE = st.sampled_from(
    ["SYSCALL", "EXECVE", "PATH", "CWD", "PROCTITLE", "EOE", "SOCKADDR", "USER_CMD", "UNKNOWN[1400]", "X"]
)


@st.composite
def audit_lines(draw: st.DrawFn) -> str:
    header = f"audit({draw(NUMBER)}.{draw(NUMBER)}:{draw(st.one_of(NUMBER, st.integers(0, 5).map(str)))})"
    fields = draw(st.lists(st.tuples(KEY, VALUE), max_size=12))
    body = " ".join(f"{k}={v}" for k, v in fields)
    enriched = draw(st.one_of(st.just(""), st.text(HOSTILE_CHARS, max_size=20).map(lambda s: "\x1dUID=" + s)))
    return f"type={draw(RTYPE)} msg={header}: {body}{enriched}"


@given(st.lists(st.one_of(audit_lines(), st.text(HOSTILE_CHARS, max_size=80)), max_size=25), st.booleans())
def test_audit_lines_decode_or_are_malformed(lines: list[str], ordered: bool) -> None:
    asm = EventAssembler(ordered=ordered, max_pending=4)
    events = []
    for i, line in enumerate(lines):
        try:
            rec = parse_log_line(line)
        except MalformedRecord:
            continue
        events += asm.add(rec, float(i))
        events += asm.expire(float(i))
    events += asm.flush()
    for ev in events:
        json.dumps(event_json(ev))  # every event is printable as JSON (surrogates escaped)


@given(st.lists(st.one_of(audit_lines(), st.binary(max_size=80).map(lambda b: b.decode("latin-1"))), max_size=20))
def test_audit_decode_stream_counts_every_line(lines: list[str]) -> None:
    raw = "\n".join(lines).encode("utf-8", "surrogatepass") + b"\n"
    out = io.StringIO()
    records, events, malformed = decode_stream(io.BytesIO(raw), out)
    assert records + malformed >= events
    for row in out.getvalue().splitlines():
        json.loads(row)


@given(st.binary(max_size=300))
def test_netlink_datagrams_split_or_are_malformed(datagram: bytes) -> None:
    try:
        messages = split_netlink(datagram)
    except MalformedRecord:
        return
    for mtype, payload in messages:
        try:
            parse_netlink_payload(mtype, payload)
        except MalformedRecord:
            pass


@given(
    st.integers(0, 0xFFFF),
    st.one_of(st.binary(max_size=200), audit_lines().map(lambda s: s.encode("utf-8", "surrogatepass"))),
)
def test_netlink_payloads_parse_or_are_malformed(mtype: int, payload: bytes) -> None:
    try:
        parse_netlink_payload(mtype, payload)
    except MalformedRecord:
        pass


def _check_frame(data: bytes, outgoing: bool, wire: int | None) -> None:
    acc = FlowAccumulator(max_set=8)
    try:
        info = decode_frame(data, outgoing, wire)
    except MalformedPacket:
        acc.malformed += 1
        return
    assert isinstance(info, PacketInfo)
    acc.add(info, 0.0)
    acc.close(5.0)


@given(st.binary(max_size=200), st.booleans(), st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_random_frames_decode_or_are_malformed(data: bytes, outgoing: bool, wire: int | None) -> None:
    _check_frame(data, outgoing, wire)


@st.composite
def ip_frames(draw: st.DrawFn) -> bytes:
    """Ethernet + IPv4/IPv6 (+ extension headers) + TCP/UDP with hostile lengths and payloads."""
    v6 = draw(st.booleans())
    proto = draw(st.sampled_from([6, 17, 1, 58, 0, 43, 60, 51, 200]))
    payload = draw(st.binary(max_size=120))
    if proto == 17:
        dport = draw(st.sampled_from([53, 53, 123, draw(st.integers(0, 65535))]))
        ulen = draw(st.one_of(st.integers(0, 65535), st.just(8 + len(payload))))
        l4 = struct.pack("!HHHH", draw(st.integers(0, 65535)), dport, ulen, 0) + payload
    elif proto == 6:
        l4 = struct.pack("!HHIIBBHHH", 1234, 80, 0, 0, draw(st.integers(0, 255)), draw(st.integers(0, 255)), 0, 0, 0)
        l4 += payload
    else:
        l4 = payload
    l4 = l4[: draw(st.integers(0, len(l4)))] if draw(st.booleans()) else l4
    vlan = b"\x81\x00\x00\x01" if draw(st.booleans()) else b""
    if v6:
        ip = struct.pack("!IHBB", 6 << 28, len(l4), proto, 64) + socket.inet_pton(socket.AF_INET6, "fd00::1") * 2
        eth = b"\x00" * 12 + vlan + b"\x86\xdd"
    else:
        ihl = draw(st.integers(0, 15))
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            (4 << 4) | ihl,
            0,
            draw(st.integers(0, 65535)),
            0,
            draw(st.integers(0, 0x3FFF)),
            64,
            proto,
            0,
            b"\n\0\0\1",
            b"\n\0\0\2",
        )
        ip += draw(st.binary(max_size=40))[: max(0, ihl * 4 - 20)]
        eth = b"\x00" * 12 + vlan + b"\x08\x00"
    return eth + ip + l4


@given(ip_frames(), st.booleans())
def test_structured_frames_decode_or_are_malformed(frame: bytes, outgoing: bool) -> None:
    _check_frame(frame, outgoing, None)
