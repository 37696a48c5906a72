#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Audit decoding throughput: our decoder vs libauparse (python3-audit) on the same records.

Input: the captured audit.log lines of tests/fixtures/audit (real execve events with hex-encoded
argv, long split arguments, paths), repeated to ``--events`` events. Both decoders assemble events
and visit every field; ours also decodes hex fields (auparse: ``interpret_field``). Runs are
interleaved (``--runs``, ≥ 5) and the ratio is computed from the medians of the same run.

Usage: ``.venv/bin/python scripts/bench/audit_decode.py [--runs 5] [--events 20000]``
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.decoders.audit import EventAssembler, parse_log_line

FIX = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "audit" / "audit.log"


def corpus(events: int) -> list[str]:
    """The fixture's events repeated with fresh serials, as auditd would write them."""
    lines = FIX.read_text().splitlines()
    serial_re = re.compile(r":(\d+)\):")
    by_serial: dict[str, list[str]] = {}
    for ln in lines:
        m = serial_re.search(ln)
        if m:
            by_serial.setdefault(m.group(1), []).append(ln)
    groups = list(by_serial.values())
    out: list[str] = []
    serial = 1000
    while serial - 1000 < events:
        for g in groups:
            serial += 1
            out.extend(serial_re.sub(f":{serial}):", ln, count=1) for ln in g)
    return out


def ours(lines: list[str]) -> int:
    asm = EventAssembler(ordered=True)
    n = 0
    for ln in lines:
        for ev in asm.add(parse_log_line(ln), 0.0):
            n += 1 if ev.serial else 0
    return n + len(asm.flush())


def libauparse(text: str) -> int:
    import auparse

    p = auparse.AuParser(auparse.AUSOURCE_BUFFER, text)
    n = 0
    while p.parse_next_event():
        n += 1
        p.first_record()
        while True:
            p.first_field()
            while True:
                p.interpret_field()
                if not p.next_field():
                    break
            if not p.next_record():
                break
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args()
    lines = corpus(args.events)
    text = "\n".join(lines) + "\n"
    try:
        import auparse  # noqa: F401
    except ImportError:
        print("libauparse binding (python3-audit) not importable: only our decoder is measured", file=sys.stderr)
        have_auparse = False
    else:
        have_auparse = True
    t_ours: list[float] = []
    t_lib: list[float] = []
    counts = set()
    for r in range(args.runs):
        order = ["ours", "lib"] if r % 2 == 0 else ["lib", "ours"]
        for which in order:
            if which == "lib" and not have_auparse:
                continue
            t0 = time.perf_counter()
            n = ours(lines) if which == "ours" else libauparse(text)
            (t_ours if which == "ours" else t_lib).append(time.perf_counter() - t0)
            counts.add(n)
    if len(counts) != 1:
        print(f"decoders disagree on the event count: {counts}", file=sys.stderr)
        return 1
    events = counts.pop()
    mo = statistics.median(t_ours)
    print(f"audit decode: {events} events, {len(lines)} records, {args.runs} interleaved runs each")
    print(f"ours        {events / mo:>10.0f} events/s  {len(lines) / mo:>10.0f} records/s")
    if t_lib:
        ml = statistics.median(t_lib)
        print(f"libauparse  {events / ml:>10.0f} events/s  {len(lines) / ml:>10.0f} records/s")
        print(f"ratio ours/libauparse throughput: {ml / mo:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
