# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent audit decode`` on the captured audit.log."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from agent.sources import audit_cli

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "audit" / "audit.log"


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    audit_cli.register(ap.add_subparsers(dest="command"))
    return ap.parse_args(argv)


def test_decode_prints_one_json_line_per_event(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "audit.log"
    f.write_text(FIX.read_text() + "not an audit line\n")
    args = parse(["audit", "decode", str(f)])
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 17
    echo = next(e for e in events if e["argv"][:1] == ["/bin/echo"])
    assert echo["argv"][1] == "hello world" and echo["syscall"] == "execve"
    assert "malformed=1" in err and "events=17" in err


def test_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = parse(["audit", "decode", str(tmp_path / "nope")])
    assert args.func(args) == 2
    assert "cannot read" in capsys.readouterr().err
