# SPDX-License-Identifier: Apache-2.0
"""The container log file formats: RFC 3339 timestamps, the Docker ``local`` driver's frames, and
the names of rotated files.

local: moby ``daemon/logger/local``: frames of ``[uint32 BE size][protobuf LogEntry][uint32 BE
size]``; LogEntry = {1: source string, 2: time_nano int64, 3: line bytes, 4: partial bool,
5: PartialLogEntryMetadata {1: last bool, 2: id string, 3: ordinal int32}}. Rotated local files
are gzip-compressed by dockerd and are not read back.
"""

from __future__ import annotations

import re
import struct
from datetime import datetime
from pathlib import Path

FRAME = struct.Struct(">I")
MAX_FRAME = 16 << 20  # a local-driver frame larger than this is corruption, not data
_FRACTION = re.compile(r"\.(\d+)")


def parse_rfc3339(value: str) -> float:
    """Unix seconds of an RFC 3339 timestamp with up to nanosecond precision; 0.0 if invalid."""
    v = value.strip()
    if not v:
        return 0.0
    v = _FRACTION.sub(lambda m: "." + m.group(1)[:6], v, count=1)
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(v).timestamp()
    except ValueError:
        return 0.0


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def decode_local_entry(msg: bytes) -> tuple[str, int, bytes, bool, bool]:
    """``(source, time_nano, line, partial, last)`` of one local-driver protobuf LogEntry."""
    source, tnano, line, partial, last = "", 0, b"", False, False
    pos = 0
    while pos < len(msg):
        tag, pos = _varint(msg, pos)
        fno, wt = tag >> 3, tag & 7
        if wt == 0:
            val, pos = _varint(msg, pos)
            if fno == 2:
                tnano = val - (1 << 64) if val >= 1 << 63 else val
            elif fno == 4:
                partial = bool(val)
        elif wt == 2:
            n, pos = _varint(msg, pos)
            if pos + n > len(msg):
                raise ValueError("truncated length-delimited field")
            data = msg[pos : pos + n]
            pos += n
            if fno == 1:
                source = data.decode("utf-8", "replace")
            elif fno == 3:
                line = data
            elif fno == 5:
                p2 = 0
                while p2 < len(data):
                    t2, p2 = _varint(data, p2)
                    if t2 & 7 == 0:
                        v2, p2 = _varint(data, p2)
                        if t2 >> 3 == 1:
                            last = bool(v2)
                    elif t2 & 7 == 2:
                        n2, p2 = _varint(data, p2)
                        p2 += n2
                    else:
                        raise ValueError("unexpected wire type in metadata")
        elif wt == 1:
            pos += 8
        elif wt == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected wire type {wt}")
    return source, tnano, line, partial, last


def encode_local_entry(source: str, time_nano: int, line: bytes, partial: bool = False, last: bool = False) -> bytes:
    """A local-driver frame (for tests and fixtures): size, protobuf LogEntry, size."""

    def varint(v: int) -> bytes:
        out = bytearray()
        v &= (1 << 64) - 1
        while True:
            b = v & 0x7F
            v >>= 7
            if v:
                out.append(b | 0x80)
            else:
                out.append(b)
                return bytes(out)

    msg = bytearray()
    src = source.encode()
    msg += b"\x0a" + varint(len(src)) + src
    msg += b"\x10" + varint(time_nano)
    msg += b"\x1a" + varint(len(line)) + line
    if partial:
        msg += b"\x20\x01"
        meta = (b"\x08\x01" if last else b"") + b"\x12\x01x"
        msg += b"\x2a" + varint(len(meta)) + meta
    return FRAME.pack(len(msg)) + bytes(msg) + FRAME.pack(len(msg))


def rotated_siblings(path: Path) -> list[Path]:
    """Uncompressed rotated files of ``path``, oldest first (``x.log.3, x.log.2, x.log.1`` for
    Docker; ``0.log.20260101-000000`` timestamps for the kubelet)."""
    try:
        names = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".") and not p.name.endswith(".gz")]
    except OSError:
        return []
    numeric = [p for p in names if p.name[len(path.name) + 1 :].isdigit()]
    if numeric:
        return sorted(numeric, key=lambda p: -int(p.name[len(path.name) + 1 :]))
    return sorted(names, key=lambda p: p.name)
