# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent audit decode`` and the audit decoder on hostile records: every bad record is
counted and skipped with a clear count, never a traceback; a huge line is never held in memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.decoders.audit import MAX_RECORD_CHARS, EventAssembler, MalformedRecord, parse_log_line, syscall_name

GOOD = 'type=SYSCALL msg=audit(1700000000.123:7): arch=c000003e syscall=59 success=yes exit=0 pid=10 comm="sh"\n'
# The real entry point; at exit it reports its own peak RSS (KiB) on stderr: VmHWM of its own
# address space (ru_maxrss would carry the forking pytest's RSS across execve).
CLI = [
    sys.executable,
    "-c",
    "import atexit, sys; from agent.cli import main; "
    "atexit.register(lambda: print('maxrss_kib', [l.split()[1] for l in open('/proc/self/status') "
    "if l.startswith('VmHWM:')][0], file=sys.stderr)); "
    "sys.exit(main())",
    "audit",
    "decode",
]


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, str(path)], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[3])


@pytest.mark.parametrize(
    "hostile",
    [
        "type=SYSCALL msg=audit(1700000000.123:" + "9" * 4300 + "): arch=c000003e syscall=59 success=yes\n",
        "type=SYSCALL msg=audit(" + "9" * 5000 + ".1:5): syscall=59\n",
        "type=EXECVE msg=audit(1700000000.123:8): argc=" + "9" * 5000 + ' a0="x"\n',
    ],
)
def test_huge_numbers_in_the_header_or_argc_are_counted_malformed(tmp_path: Path, hostile: str) -> None:
    f = tmp_path / "audit.log"
    f.write_text(hostile + GOOD)
    r = _run(f)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "malformed=1" in r.stderr and "events=1" in r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["syscall"] == "execve"


def test_huge_syscall_and_arch_numbers_decode_as_text(tmp_path: Path) -> None:
    f = tmp_path / "audit.log"
    f.write_text(
        "type=SYSCALL msg=audit(1700000000.123:5): arch=c000003e syscall=99999999999999999999999 success=yes\n"
        "type=SYSCALL msg=audit(1700000000.123:6): arch=ffffffffffffffffffff syscall=59 pid=" + "9" * 30 + "\n"
    )
    r = _run(f)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["syscall"] for e in events] == ["99999999999999999999999", "59"]
    assert events[1]["pid"] == 0  # beyond int64: the default, not a 30-digit pid
    assert syscall_name(1 << 40) == str(1 << 40) and syscall_name(59, arch=1 << 70) == "59"


def test_a_huge_hex_field_is_skipped_without_being_read_whole(tmp_path: Path) -> None:
    f = tmp_path / "audit.log"
    with f.open("w") as out:
        out.write("type=PROCTITLE msg=audit(1700000000.123:9): proctitle=")
        chunk = "41" * (1 << 20)
        for _ in range(48):  # a 96 MB hex field on one line
            out.write(chunk)
        out.write("\n" + GOOD)
    r = _run(f)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "malformed=1" in r.stderr and "events=1" in r.stderr
    peak_kib = int(r.stderr.split("maxrss_kib")[1].split()[0])
    assert peak_kib < 96 * 1024  # the whole line would be 96 MB as bytes, twice that decoded


def test_overlong_records_are_malformed_in_the_decoder_too() -> None:
    with pytest.raises(MalformedRecord, match="longer than"):
        parse_log_line("type=PROCTITLE msg=audit(1.1:1): proctitle=" + "41" * MAX_RECORD_CHARS)


def test_assembler_counts_a_record_it_cannot_assemble() -> None:
    asm = EventAssembler(ordered=True)
    rec = parse_log_line('type=EXECVE msg=audit(1700000000.123:3): argc=zz a0="x"')
    asm.add(rec, 0.0)
    assert asm.flush() == [] and asm.stats.malformed == 1
