# SPDX-License-Identifier: Apache-2.0
"""Alerts JSON-lines file: one object per finding with the contract fields, rotation, 0600."""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog.testing

from agent.config import AgentConfig, ConfigError, parse_config
from agent.context import AgentContext
from agent.events import ContainerRef
from agent.findings import Action, ActionResult, Finding, Severity, Source, Verdict
from agent.outputs.component import Outputs, build
from agent.outputs.files import RotatingJsonl
from agent.settings.outputs import MetricsSettings, OutputsSettings, WebhookSettings
from agent.wiring import attach

WEB = ContainerRef(id="a" * 64, name="web", image="nginx:1.25.3")


def finding(n: int = 0, severity: Severity = Severity.HIGH) -> Finding:
    return Finding(
        container=WEB,
        source=Source.RULE,
        detector_id="RG-0001",
        severity=severity,
        summary=f"shell with socket stdio #{n}",
        evidence={"argv": ["/bin/sh", "-i"], "pid": 4242 + n},
        mitre="T1059.004",
    )


@pytest.fixture
def outputs(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> Iterator[Outputs]:
    settings = OutputsSettings(
        alerts_file=tmp_path / "out" / "alerts.jsonl", metrics=MetricsSettings(enabled=False), host_name="node-a"
    )
    ctx = make_ctx(AgentConfig(outputs=settings))
    out = build(ctx)
    attach(ctx, out)  # no response component: the outputs take findings from the bus
    yield out
    out.stop()


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_finding_from_the_bus_becomes_one_alert_line(outputs: Outputs, tmp_path: Path) -> None:
    f = finding()
    outputs.ctx.findings.process(f)
    path = tmp_path / "out" / "alerts.jsonl"
    [rec] = lines(path)
    assert rec["id"] == f.id and rec["type"] == "finding"
    assert (rec["container_id"], rec["container_name"], rec["image"]) == (WEB.id, "web", "nginx:1.25.3")
    assert (rec["source"], rec["detector_id"], rec["severity"]) == ("rule", "RG-0001", "high")
    assert rec["summary"] == "shell with socket stdio #0"
    assert rec["evidence"] == {"argv": ["/bin/sh", "-i"], "pid": 4242}
    assert rec["verdict"] == "" and rec["action"] is None
    assert rec["host"] == "node-a" and str(rec["time"]).endswith("Z")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_engine_path_carries_verdict_and_action(outputs: Outputs, tmp_path: Path) -> None:
    f = finding()
    v = Verdict(finding=f, action=Action.FREEZE, enforce=True, reason="rule detector in enforce mode")
    r = ActionResult(action=Action.FREEZE, container_id=WEB.id, ok=True, detail="frozen in 3 ms")
    outputs.emit_finding(f, v, r)
    outputs.emit_action(r)
    [rec] = lines(tmp_path / "out" / "alerts.jsonl")
    assert rec["verdict"] == "freeze" and rec["enforce"] is True
    assert rec["verdict_reason"] == "rule detector in enforce mode"
    assert rec["action"] == {
        "kind": "freeze",
        "container_id": WEB.id,
        "ok": True,
        "result": "ok",
        "detail": "frozen in 3 ms",
        "dry_run": False,
    }
    assert outputs.status()["actions_emitted"] == 1


def test_rotation_keeps_n_files(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    w = RotatingJsonl(path, max_bytes=4096, keep=2)
    for i in range(200):
        assert w.write({"n": i, "pad": "x" * 100})
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2"]
    for p in tmp_path.iterdir():
        assert p.stat().st_size <= 4096
    newest, older, oldest = (lines(tmp_path / n) for n in ("alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2"))
    assert newest[-1]["n"] == 199
    # Contiguous across the kept files: nothing lost inside the retained window.
    ns = [r["n"] for r in oldest + older + newest]
    assert ns == list(range(ns[0], 200))
    assert w.rotations > 2 and w.errors == 0


def test_symlink_at_alerts_path_is_refused_and_counted(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "alerts.jsonl"
    link.symlink_to(target)
    w = RotatingJsonl(link, max_bytes=4096, keep=1)
    assert w.write({"x": 1}) is False
    assert w.errors == 1 and target.read_text() == ""


def test_unwritable_directory_never_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    w = RotatingJsonl(blocker / "alerts.jsonl", max_bytes=4096, keep=1)  # parent is a file
    assert w.write({"x": 1}) is False and w.errors == 1


def test_a_broken_network_output_never_takes_the_alerts_file_down(
    make_ctx: Callable[..., AgentContext], tmp_path: Path
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        settings = OutputsSettings(
            alerts_file=tmp_path / "alerts.jsonl",
            metrics=MetricsSettings(port=taken.getsockname()[1]),  # EADDRINUSE
            webhook=WebhookSettings(url="http://127.0.0.1:9/", token_file=tmp_path / "missing-token"),
        )
        ctx = make_ctx(AgentConfig(outputs=settings))
        out = build(ctx)
        attach(ctx, out)
        try:
            ctx.findings.process(finding())
            st = out.status()
            assert set(st["errors"]) == {"metrics", "webhook"}
            assert "missing-token" in st["errors"]["webhook"]
            assert len(lines(tmp_path / "alerts.jsonl")) == 1
        finally:
            out.stop()
    finally:
        taken.close()


@pytest.mark.parametrize(
    "data,problem",
    [
        (
            {"outputs": {"metrics": {"address": "0.0.0.0"}}},
            "outputs.metrics: Value error, address 0.0.0.0 is not loopback",
        ),
        ({"outputs": {"metrics": {"address": "localhost"}}}, "outputs.metrics.address"),
        ({"outputs": {"webhook": {"url": "file:///etc/passwd"}}}, "outputs.webhook.url"),
        ({"outputs": {"ecs": {"elasticsearch_url": "gopher://x"}}}, "outputs.ecs.elasticsearch_url"),
        ({"outputs": {"alerts_keep": 0}}, "outputs.alerts_keep"),
    ],
)
def test_bad_outputs_config_is_refused_with_its_path(data: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems


def test_remote_metrics_address_when_allowed() -> None:
    cfg = parse_config({"outputs": {"metrics": {"address": "0.0.0.0", "allow_remote": True}}})
    assert cfg.outputs.metrics.address == "0.0.0.0"


def test_finding_and_action_log_lines_carry_structured_fields(outputs: Outputs) -> None:
    f = finding(severity=Severity.CRITICAL)
    with structlog.testing.capture_logs() as logs:
        outputs.emit_finding(f, "freeze")
        outputs.emit_action({"kind": "freeze", "ok": False, "detail": "cgroup gone", "container_id": WEB.id})
    [found] = [e for e in logs if e["event"] == "finding_reported"]
    assert found["log_level"] == "error"  # critical findings log at error
    assert (found["finding_id"], found["container_id"], found["detector_id"]) == (f.id, WEB.id, "RG-0001")
    assert found["severity"] == "critical" and found["verdict"] == "freeze" and found["mitre"] == "T1059.004"
    assert found["evidence"]["argv"] == ["/bin/sh", "-i"]
    [act] = [e for e in logs if e["event"] == "action_reported"]
    assert act["log_level"] == "warning" and act["action_kind"] == "freeze" and act["result"] == "failed"
