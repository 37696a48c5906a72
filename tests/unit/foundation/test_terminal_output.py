# SPDX-License-Identifier: Apache-2.0
"""Human-readable output cannot be steered by what a container wrote: a finding whose summary
names a file with escape sequences, CR, newlines and a bidi override prints as one escaped line
through ``riskguardctl findings``; ``--json`` keeps the exact value."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from agent import ctl
from agent.config import AgentConfig
from agent.control import ControlServer
from agent.findings import Finding, Severity, Source
from agent.response.component import ResponseComponent, build
from agent.wiring import attach
from tests.unit.response.test_response_engine import fake_host

EVIL = "x\x1b[2J\x1b]0;owned\x07\n2026-01-01 00:00:00  info  rule  RG-0000  web  none\r\u202egnp.sh"
RAW = ("\x1b", "\r", "\x07", "\u202e")


def test_findings_summary_prints_as_one_escaped_line(
    tmp_path: Path, make_ctx: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # wide enough for the whole row: nothing wraps
    paths, c = fake_host(tmp_path / "host")
    c = dataclasses.replace(c, name="web\x1b[8m\nhidden")
    ctx = make_ctx(config=AgentConfig.model_validate({"response": {"mode": "observe"}}), paths=paths)
    ctx.registry.upsert(c)
    comp = build(ctx)
    assert isinstance(comp, ResponseComponent)
    attach(ctx, comp)
    server = ControlServer(tmp_path / "s.sock", ctx.control_methods)
    server.start()
    summary = f"file written: /tmp/{EVIL}"
    try:
        with structlog.testing.capture_logs():
            ctx.findings.process(
                Finding(
                    container=c.ref(),
                    source=Source.RULE,
                    detector_id="RG-0001",
                    severity=Severity.HIGH,
                    summary=summary,
                )
            )
            sock = ["--socket", str(tmp_path / "s.sock")]
            assert ctl.main([*sock, "findings"]) == 0
            out = capsys.readouterr().out
            assert ctl.main([*sock, "findings", "--json"]) == 0
            rows = json.loads(capsys.readouterr().out)
    finally:
        server.stop()
        comp.stop()
    lines = out.splitlines()
    assert len(lines) == 2, lines  # the table's header and the finding's one row, nothing forged
    assert "web\\x1b[8m\\nhidden" in lines[1]
    assert lines[1].endswith(
        "file written: /tmp/x\\x1b[2J\\x1b]0;owned\\x07\\n2026-01-01 00:00:00  info  rule  RG-0000  web"
        "  none\\r\\u202egnp.sh"
    )
    assert not any(ch in out for ch in RAW)
    assert rows[0]["summary"] == summary and rows[0]["container_name"] == c.name  # JSON stays exact


def test_tables_escape_cells_and_the_guard_covers_every_print(capsys: pytest.CaptureFixture[str]) -> None:
    ctl.print_table([{"name": "a\nb", "image": "img\x1b[31m"}], ["name", "image"])
    out = capsys.readouterr().out
    assert out.splitlines() == ["NAME  IMAGE", "a\\nb  img\\x1b[31m"]
    from agent.textsafe import guard_terminal

    class Args:
        json = False

    with guard_terminal(Args()):  # type: ignore[arg-type]
        print("status: \x1b[2Jcleared\u202e")
    assert capsys.readouterr().out == "status: \\x1b[2Jcleared\\u202e\n"
    Args.json = True
    with guard_terminal(Args()):  # type: ignore[arg-type]
        print('{"a": "\x7f"}')
    assert capsys.readouterr().out == '{"a": "\x7f"}\n'


def test_console_log_rendering_escapes_values_and_json_stays_exact() -> None:
    import io

    import structlog

    from agent.logsetup import configure_logging

    name = "web\x1b[2J\nFAKE agent_stopped\r\u202e"
    out = io.StringIO()
    configure_logging("info", "console", stream=out)
    try:
        structlog.get_logger("t").info("container_wired", container_name=name)
        try:
            raise ValueError(f"cannot wire {name}")
        except ValueError:
            structlog.get_logger("t").exception("wiring_failed")
        text = out.getvalue()
        assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
        assert text.splitlines()[0].endswith("container_name='web\\x1b[2J\\nFAKE agent_stopped\\r\\u202e'")
        # A traceback keeps its newlines (readable), never an escape sequence, CR or bidi control.
        assert "ValueError: cannot wire web\\x1b[2J\nFAKE agent_stopped\\r\\u202e" in text
        out = io.StringIO()
        configure_logging("info", "json", stream=out)
        structlog.get_logger("t").info("container_wired", container_name=name)
        assert json.loads(out.getvalue())["container_name"] == name
    finally:
        configure_logging("warning", "json", stream=io.StringIO())


def test_machine_formats_are_never_rewritten() -> None:
    from argparse import Namespace

    from agent.textsafe import machine_output

    assert machine_output(Namespace(json=True))
    for fmt in ("json", "jsonl", "sarif", "cyclonedx"):
        assert machine_output(Namespace(format=fmt)), fmt
    assert not machine_output(Namespace(format="table")) and not machine_output(Namespace(format="markdown"))
    assert not machine_output(Namespace(json=False))
    # netpolicy: --format shapes an export only
    assert not machine_output(Namespace(json=False, export=None, format="yaml"))
    assert machine_output(Namespace(json=False, export="networkpolicy", format="yaml"))
    assert machine_output(Namespace(json=False, action="export"))  # baseline export IMAGE > FILE
