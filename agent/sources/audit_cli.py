# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent audit decode [FILE]``: assemble audit.log records into events, as JSON lines.

Reads ``FILE`` (``-`` or nothing: stdin) with the same decoder the audit source uses, prints one
JSON object per assembled event on stdout, and the counts (records, events, malformed) on stderr.
Needs no privilege: useful to check what the agent would make of a host's audit.log.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from agent.decoders.audit import EventAssembler, MalformedRecord, parse_log_line
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


def decode_stream(stream: TextIO, out: TextIO) -> tuple[int, int, int]:
    """Decode every line of ``stream``; write events to ``out``; return (records, events, malformed)."""
    asm = EventAssembler(ordered=True)
    malformed = 0
    events = 0
    for line in stream:
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
        stream = sys.stdin if args.file in (None, "-") else open(args.file, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        records, events, malformed = decode_stream(stream, sys.stdout)
    finally:
        if stream is not sys.stdin:
            stream.close()
    print(f"records={records} events={events} malformed={malformed}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("audit", help="audit source tools")
    sub = p.add_subparsers(dest="audit_command", required=True)
    d = sub.add_parser("decode", help="assemble audit.log records into events (JSON lines on stdout)")
    d.add_argument("file", nargs="?", help="audit.log to read (default: stdin)")
    d.set_defaults(func=cmd_decode)
