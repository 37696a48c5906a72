# SPDX-License-Identifier: Apache-2.0
"""The logs component end to end over a captured CRI tree (no root): structuring, findings,
restart without loss or repeat, and our own log lines never forged by container content."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import LogEntry, ProcessExec
from agent.findings import Finding
from agent.hostfs import HostPaths
from agent.logs.component import build
from agent.wiring import attach


def cri(text: str | bytes, stream: str = "stdout") -> bytes:
    raw = text if isinstance(text, bytes) else text.encode()
    return f"2026-11-27T01:02:03.000000001Z {stream} F ".encode() + raw + b"\n"


def setup(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> tuple[AgentContext, Path, list[Any], list[Finding]]:
    paths = HostPaths.under(tmp_path / "host")
    d = paths.pod_logs / "prod_auth-7_1234" / "sshd"
    d.mkdir(parents=True)
    ctx = make_ctx(config=AgentConfig.model_validate({"logs": {"poll_seconds": 3600}}), paths=paths)
    entries: list[Any] = []
    findings: list[Finding] = []
    ctx.events.subscribe(entries.append, kind=LogEntry)
    ctx.findings.subscribe(findings.append)
    ctx.events.start()
    ctx.findings.start()
    return ctx, d / "0.log", entries, findings


def test_disabled_builds_nothing(make_ctx: Callable[..., AgentContext]) -> None:
    assert build(make_ctx(config=AgentConfig.model_validate({"logs": {"enabled": False}}))) is None


def test_structures_reports_and_restarts(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    ctx, log, entries, findings = setup(make_ctx, tmp_path)
    with log.open("ab") as fh:
        for i in range(6):
            fh.write(cri(f"Failed password for root from 10.1.1.1 port {4000 + i} ssh2"))
    comp = build(ctx)
    assert comp is not None
    # Subscribed before it starts: its tail thread polls once at start (then every hour), and
    # lines it read before on_log was on the bus would never reach the sequence rules
    # (``attach`` starts first; a race that CPU contention, e.g. pytest-xdist, made visible).
    attach(ctx, comp, start=False)
    comp.start(ctx)
    comp.poll_once()
    with log.open("ab") as fh:
        fh.write(cri("Accepted password for root from 10.1.1.1 port 4100 ssh2"))
    comp.stop()  # the tail thread is idle after its first poll (poll_seconds=3600)
    # A new instance over the same store picks up exactly where the first stopped.
    ctx2 = ctx
    ctx2.control_methods.clear()
    comp2 = build(ctx2)
    assert comp2 is not None
    comp2.start(ctx2)
    comp2.poll_once()
    assert comp2.poll_once() == 0
    comp2.stop()
    ctx.events.drain()
    ctx.findings.drain()
    ports = [e.fields["clientport"] for e in entries]
    assert ports == [str(4000 + i) for i in range(6)] + ["4100"]
    assert all(e.fields["client_ip"] == "10.1.1.1" for e in entries)
    assert [f.detector_id for f in findings] == ["RG-LOG-0001"]
    f = findings[0]
    assert f.mitre == "T1110" and str(f.source) == "logs" and f.container is not None
    assert f.container.id.startswith("cri:prod_auth-7_1234")
    st = ctx.control_methods["logs.status"]({})
    assert st["published"] == 1 and st["analysis"]["sigma"]["loaded"] >= 9
    rules = ctx.control_methods["logs.rules"]({})
    assert rules["sigma"]["unsupported"] == {} and len(rules["sequences"]["loaded"]) >= 4


def test_sigma_over_bus_events(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    ctx, _log, _entries, findings = setup(make_ctx, tmp_path)
    comp = build(ctx)
    assert comp is not None
    attach(ctx, comp)
    ctx.publish(ProcessExec(ts=1, ppid=1, uid=0, comm="cat", filename="/bin/cat", argv=("cat", "/etc/shadow")))
    ctx.events.drain()
    ctx.findings.drain()
    comp.stop()
    assert [(str(f.source), f.mitre) for f in findings] == [("rule", "T1003.008")]
    assert findings[0].detector_id.startswith("SIGMA-")


def test_container_content_never_forges_agent_log_keys(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    ctx, log, entries, _findings = setup(make_ctx, tmp_path)
    evil = {"event": "container_frozen", "level": "critical", "container_id": "host", "x" * 300: "y" * 2000}
    with log.open("ab") as fh:
        fh.write(cri(json.dumps(evil)))
        fh.write(cri(b"\x1b[2J\x1b[31mFailed password\x1b[0m for root from 10.2.2.2 port 1 ssh2 \xff"))
        for i in range(6):
            fh.write(cri(f"Failed password for root from 10.2.2.2 port {i} ssh2"))
        fh.write(cri("Accepted password for " + "r" * 5000 + " from 10.2.2.2 port 9 ssh2"))
    comp = build(ctx)
    assert comp is not None
    with structlog.testing.capture_logs() as logs:
        attach(ctx, comp)
        comp.poll_once()
        ctx.events.drain()
        comp.stop()
    assert len(entries) == 9
    assert "\x1b" not in entries[1].line and "\ufffd" in entries[1].line
    for rec in logs:
        assert "x" * 300 not in rec and rec.get("event") != "container_frozen"
        for v in rec.values():
            assert not isinstance(v, str) or len(v) <= 400
    json_entry = entries[0]
    assert json_entry.fields["event"] == "container_frozen"  # data inside fields, never our keys
    assert all(len(k) <= 64 for k in json_entry.fields)


def test_sessions_learn_then_flag_an_anomalous_session() -> None:
    from agent.events import ContainerRef
    from agent.logs.analyzer import ANOMALY_DETECTOR, LogAnalyzer
    from agent.settings.logs import LogsSettings

    a = LogAnalyzer(LogsSettings(learn_sessions=30, session_gap_seconds=10, sequence_rules=False))
    ref = ContainerRef(id="f" * 64, name="shop", image="shop:1")
    t = 1000.0
    findings: list[Finding] = []

    def session(ip: str, paths: list[tuple[str, int]]) -> None:
        nonlocal t
        for path, status in paths:
            line = f'{ip} - - [27/Nov/2026:01:00:00 +0000] "GET {path} HTTP/1.1" {status} 5 "-" "c"'
            findings.extend(a.on_log(a.entry(ref, t, "stdout", line)))
            t += 0.5
        t += 60
        findings.extend(a.tick(t, {ref.id: ref}))

    normal = [("/login", 200), ("/items", 200), ("/cart", 200), ("/logout", 200)]
    for i in range(40):
        session(f"10.0.0.{i}", normal)
    assert findings == [] and a.groups["shop:1"].model is not None
    session("10.6.6.6", [("/login", 401)] * 5 + [("/admin", 500)])
    assert [f.detector_id for f in findings] == [ANOMALY_DETECTOR]
    ev = findings[0].evidence
    assert ev["session"] == "10.6.6.6" and ev["score"] >= 0.3 and ev["patterns"]
    assert findings[0].container == ref


def test_riskguardctl_logs_over_the_control_socket(
    make_ctx: Callable[..., AgentContext], tmp_path: Path, capsys: Any
) -> None:
    import argparse

    from agent.control import ControlServer
    from agent.logs import ctl

    ctx, log, _entries, _findings = setup(make_ctx, tmp_path)
    log.write_bytes(cri("hello") + b"not a cri line\n")
    comp = build(ctx)
    assert comp is not None
    attach(ctx, comp)
    comp.poll_once()
    server = ControlServer(tmp_path / "ctl.sock", ctx.control_methods)
    server.start()
    try:
        p = argparse.ArgumentParser()
        p.add_argument("--socket", type=Path, default=tmp_path / "ctl.sock")
        ctl.register(p.add_subparsers())
        capsys.readouterr()  # drop our own start-up log lines (structlog's test default is stdout)
        outs = []
        for argv in (["logs", "status", "--json"], ["logs", "rules", "--json"], ["logs", "status"], ["logs", "rules"]):
            args = p.parse_args(argv)
            assert args.func(args) == 0
            outs.append(capsys.readouterr().out)
        status_json = json.loads(outs[0])
        assert json.loads(outs[1])["sigma"]["unsupported"] == {}
        out = "".join(outs[2:])
        assert status_json["tail"]["totals"]["malformed"] == 1 and status_json["published"] == 1
        assert "RG-LOG-0001" in out and "Shell Spawned By A Web Server Process" in out
        assert "NOT LOADED" not in out
    finally:
        server.stop()
        comp.stop()
