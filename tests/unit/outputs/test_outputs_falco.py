# SPDX-License-Identifier: Apache-2.0
"""Falco-format output (webhook to a Sidekick-like consumer, stdout, file), ECS subjects and
per-output minimum severity."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import ContainerRef
from agent.findings import Finding, Severity, Source
from agent.outputs.alert import finding_record
from agent.outputs.component import Outputs, build
from agent.outputs.ecs import finding_to_ecs
from agent.outputs.falco import finding_to_falco
from agent.runtime.model import Container
from agent.settings.outputs import EcsSettings, FalcoSettings, MetricsSettings, OutputsSettings, WebhookSettings
from agent.wiring import attach
from tests.fakes.http_receiver import receiver
from tests.fakes.sidekick import problems, sidekick
from tests.support import wait_for

CID = "c" * 64
POD = ContainerRef(id=CID, name="k8s_web_shop", image="registry.local/shop/web:1.4")


def shadow_read(severity: Severity = Severity.HIGH) -> Finding:
    return Finding(
        container=POD,
        source=Source.RULE,
        detector_id="RG-0002",
        severity=severity,
        summary="cat opened /etc/shadow for reading",
        evidence={"pid": 4242, "comm": "cat", "argv": ["cat", "/etc/shadow"], "path": "/etc/shadow", "uid": 0},
        mitre="T1003.008",
    )


def connect_out() -> Finding:
    return Finding(
        container=POD,
        source=Source.RULE,
        detector_id="RG-0005",
        severity=Severity.CRITICAL,
        summary="sh connected its stdio to 10.9.8.7:4444",
        evidence={"pid": 77, "ppid": 12, "parent": "python3", "comm": "sh", "daddr": "10.9.8.7", "dport": 4444},
        mitre="T1059.004",
    )


@contextmanager
def running(make_ctx: Callable[..., AgentContext], **kw: Any) -> Iterator[Outputs]:
    settings = OutputsSettings(alerts_file=None, metrics=MetricsSettings(enabled=False), **kw)
    ctx = make_ctx(AgentConfig(outputs=settings))
    labels = {"io.kubernetes.pod.name": "web-7d9f", "io.kubernetes.pod.namespace": "shop"}
    ctx.registry.upsert(
        Container(id=CID, name=POD.name, image=POD.image, image_id="", runtime="docker", init_pid=1, labels=labels)
    )
    out = build(ctx)
    attach(ctx, out)
    try:
        yield out
    finally:
        out.stop()


def test_falco_webhook_is_accepted_by_a_sidekick_consumer(make_ctx: Callable[..., AgentContext]) -> None:
    with sidekick() as sk:
        hook = WebhookSettings(url=sk.url, format="falco", backoff_seconds=0.05)
        with running(make_ctx, webhook=hook) as out:
            out.emit_finding(shadow_read())
            out.emit_finding(connect_out())
            assert sk.wait_for(2, timeout=5)
    assert sk.refused == []
    first, second = sk.accepted
    assert first["rule"] == "sensitive_file_access" and first["priority"] == "Error"
    assert second["rule"] == "reverse_shell"
    assert second["priority"] == "Critical"
    f = first["output_fields"]
    assert f["container.id"] == CID[:12] and f["proc.cmdline"] == "cat /etc/shadow"
    assert f["fd.name"] == "/etc/shadow" and f["proc.pid"] == 4242 and f["user.uid"] == 0
    # Talon's Kubernetes actions find the pod through these two fields.
    assert (f["k8s.pod.name"], f["k8s.ns.name"]) == ("web-7d9f", "shop")
    assert first["source"] == "syscall" and "T1003.008" in first["tags"]
    assert first["output"].endswith(")") and ": Error cat opened /etc/shadow" in first["output"]
    assert second["output_fields"]["fd.sip"] == "10.9.8.7" and second["output_fields"]["fd.sport"] == 4444


def test_the_consumer_refuses_what_sidekick_refuses() -> None:
    good = finding_to_falco(finding_record(shadow_read(), host="node-a"))
    assert problems(good) == []
    for broken, why in (
        ({**good, "priority": "high"}, "unknown priority"),
        ({**good, "time": "1764662400.5"}, "RFC 3339"),
        ({**good, "output": ""}, "output is empty"),
        ({**good, "output_fields": {"evidence": {"nested": 1}}}, "nested"),
    ):
        assert any(why in p for p in problems(broken)), broken


def test_falco_stdout_and_file_outputs(
    make_ctx: Callable[..., AgentContext], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "falco.jsonl"
    with running(make_ctx, log_findings=False, falco=FalcoSettings(file=path, stdout=True)) as out:
        out.emit_finding(shadow_read())
        out.emit_finding(shadow_read(Severity.INFO))  # below the default min_severity (low)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["rule"] for x in lines] == ["sensitive_file_access"]
    printed = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"uuid"')]
    assert printed == lines
    assert out.status()["below_min_severity"] == {"falco": 1}


def test_min_severity_per_output(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    ecs = tmp_path / "ecs.jsonl"
    with receiver() as rcv:
        hook = WebhookSettings(url=rcv.url, min_severity="high", batch_size=1)
        with running(make_ctx, webhook=hook, ecs=EcsSettings(file=ecs, min_severity="critical")) as out:
            for sev in (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL):
                out.emit_finding(shadow_read(sev))
            assert out.webhook is not None
            assert wait_for(lambda: out.webhook is not None and out.webhook.idle() and out.webhook.sent == 2, 5)
        got = [r.json()["severity"] for r in rcv.requests]
    assert sorted(got) == ["critical", "high"]
    assert [json.loads(x)["riskguard"]["severity"] for x in ecs.read_text().splitlines()] == ["critical"]
    assert out.status()["below_min_severity"] == {"webhook": 2, "ecs": 3}


def test_webhook_batches_records_as_a_json_array(make_ctx: Callable[..., AgentContext]) -> None:
    with receiver() as rcv:
        hook = WebhookSettings(url=rcv.url, batch_size=10, flush_seconds=0.3)
        with running(make_ctx, webhook=hook) as out:
            for _ in range(4):
                out.emit_finding(shadow_read())
            assert rcv.wait_for(1, timeout=5)
            assert wait_for(lambda: out.webhook is not None and out.webhook.sent == 4, 5)
    bodies = [r.json() for r in rcv.requests]
    assert len(bodies) == 1 and isinstance(bodies[0], list) and len(bodies[0]) == 4
    assert {b["detector_id"] for b in bodies[0]} == {"RG-0002"}


def test_ecs_names_process_file_destination_and_the_rule() -> None:
    doc = finding_to_ecs(finding_record(shadow_read(), host="node-a"))
    assert doc["rule"] == {**doc["rule"], "id": "RG-0002", "name": "sensitive_file_access"}
    assert doc["process"] == {
        "pid": 4242,
        "name": "cat",
        "args": ["cat", "/etc/shadow"],
        "command_line": "cat /etc/shadow",
    }
    assert doc["file"] == {"path": "/etc/shadow", "name": "shadow", "directory": "/etc"}
    assert doc["container"]["id"] == CID and doc["container"]["image"]["name"] == "registry.local/shop/web"
    assert doc["user"] == {"id": "0"}
    net = finding_to_ecs(finding_record(connect_out()))
    assert net["destination"] == {"ip": "10.9.8.7", "port": 4444}
    assert net["process"]["parent"] == {"pid": 12, "name": "python3"}
    assert "file" not in net and "destination" not in doc
