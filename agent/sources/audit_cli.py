# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent audit decode [FILE]``: assemble audit.log records into events, as JSON lines.

Reads ``FILE`` (``-`` or nothing: stdin) with the same decoder the audit source uses, prints one
JSON object per assembled event on stdout, and the counts (records, events, malformed) on stderr.
Needs no privilege: useful to check what the agent would make of a host's audit.log. Lines are
read at most ``MAX_RECORD_CHARS`` bytes at a time: a longer line is counted malformed and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from agent.decoders.audit import MAX_RECORD_CHARS, EventAssembler, MalformedRecord, parse_log_line
from agent.events import AuditEvent


def event_json(ev: AuditEvent) -> dict[str, Any]:
    return {
        "ts": ev.ts,
        "serial": ev.serial,
        "records": list(ev.record_types),
        "syscall": ev.syscall,
        "success": ev.success,
        "exit": ev.exit,
        "pid": ev.pid,
        "ppid": ev.ppid,
        "uid": ev.uid,
        "auid": ev.auid,
        "comm": ev.comm,
        "exe": ev.exe,
        "key": ev.key,
        "argv": list(ev.argv),
        "cwd": ev.cwd,
        "paths": list(ev.paths),
    }


def bounded_lines(stream: BinaryIO, limit: int = MAX_RECORD_CHARS) -> Iterator[str | None]:
    """The lines of ``stream`` decoded as UTF-8 (invalid bytes escaped), ``None`` for a line longer
    than ``limit`` bytes, which is skipped without ever being held in memory whole."""
    while True:
        raw = stream.readline(limit + 1)
        if not raw:
            return
        if len(raw) > limit and not raw.endswith(b"\n"):
            while (rest := stream.readline(limit)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield raw.decode("utf-8", "backslashreplace")


def decode_stream(stream: BinaryIO, out: TextIO) -> tuple[int, int, int]:
    """Decode every line of ``stream``; write events to ``out``; return (records, events, malformed)."""
    asm = EventAssembler(ordered=True)
    malformed = 0
    events = 0
    for line in bounded_lines(stream):
        if line is None:
            malformed += 1
            continue
        if not line.strip():
            continue
        try:
            rec = parse_log_line(line)
        except MalformedRecord:
            malformed += 1
            continue
        for ev in asm.add(rec, 0.0):
            out.write(json.dumps(event_json(ev)) + "\n")
            events += 1
    for ev in asm.flush():
        out.write(json.dumps(event_json(ev)) + "\n")
        events += 1
    return asm.stats.records, events, malformed + asm.stats.malformed


def cmd_decode(args: argparse.Namespace) -> int:
    try:
        stream = sys.stdin.buffer if args.file in (None, "-") else Path(args.file).open("rb")  # noqa: SIM115
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        records, events, malformed = decode_stream(stream, sys.stdout)
    except OSError as exc:  # EISDIR, EIO: a clear line, no traceback
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    print(f"records={records} events={events} malformed={malformed}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("audit", help="audit source tools")
    sub = p.add_subparsers(dest="audit_command", required=True)
    d = sub.add_parser("decode", help="assemble audit.log records into events (JSON lines on stdout)")
    d.add_argument("file", nargs="?", help="audit.log to read (default: stdin)")
    d.set_defaults(func=cmd_decode)
