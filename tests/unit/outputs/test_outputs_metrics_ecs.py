# SPDX-License-Identifier: Apache-2.0
"""Prometheus endpoint scraped over loopback; ECS field names of findings and actions."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client import Histogram
from prometheus_client.parser import text_string_to_metric_families

from agent import __version__
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import ContainerRef, Event, ProcessExit
from agent.findings import Action, ActionResult, Finding, Severity, Source, Verdict
from agent.hostfs import HostPaths
from agent.outputs.alert import finding_record
from agent.outputs.component import build
from agent.outputs.ecs import finding_to_ecs
from agent.pipeline import Bus
from agent.runtime.model import Container, ContainerRegistry
from agent.settings.outputs import EcsSettings, MetricsSettings, OutputsSettings
from agent.store import Store
from agent.wiring import attach

WEB = ContainerRef(id="c" * 64, name="web", image="docker.io/library/nginx:1.25.3@sha256:00ff")


class PerfSource:
    """Stands in for another component whose status reports lost events (as sources do)."""

    def status(self) -> dict[str, Any]:
        return {"lost": {"exec": 7, "connect": 2}, "state": "running"}


def small_ctx(tmp_path: Path, settings: OutputsSettings) -> AgentContext:
    return AgentContext(
        config=AgentConfig(outputs=settings),
        paths=HostPaths().with_state(tmp_path / "state", run=tmp_path / "run"),
        store=Store(tmp_path / "state" / "agent.db"),
        registry=ContainerRegistry(),
        events=Bus[Event]("events", maxsize=1),
        findings=Bus[Finding]("findings"),
    )


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_prometheus_endpoint_on_loopback(tmp_path: Path) -> None:
    settings = OutputsSettings(alerts_file=None, metrics=MetricsSettings(port=0))
    ctx = small_ctx(tmp_path, settings)
    perf = PerfSource()
    for _ in range(3):  # a queue of one, not drained: two drops
        ctx.publish(ProcessExit(ts=0.0, comm="x"))
    # Another subsystem's collector on the shared registry (the scanner's scan durations).
    scans = Histogram("riskguard_vuln_scan_seconds", "Duration of one container scan", registry=ctx.metrics)
    scans.observe(1.7)
    # "capture" exports no loss metric of its own: the outputs do; eBPF has its own (not repeated).
    out = build(ctx, peers=lambda: {"capture": perf.status(), "ebpf": perf.status()})
    ctx.registry.upsert(Container(id=WEB.id, name="web", image=WEB.image, image_id="", runtime="docker", init_pid=1))
    attach(ctx, out)
    try:
        assert out.metrics_server is not None
        url = out.metrics_server.url
        assert url.startswith("http://127.0.0.1:")
        f = Finding(container=WEB, source=Source.RULE, detector_id="RG-0003", severity=Severity.HIGH, summary="s")
        ctx.findings.process(f)
        ctx.findings.process(f)
        out.emit_action(ActionResult(action=Action.FREEZE, container_id=WEB.id, ok=True, detail=""))
        out.emit_action({"kind": "quarantine", "ok": False, "detail": "netns gone"})
        m = scrape(url)
        assert m[("riskguard_findings_total", (("severity", "high"), ("source", "rule")))] == 2
        assert m[("riskguard_actions_total", (("kind", "freeze"), ("result", "ok")))] == 1
        assert m[("riskguard_actions_total", (("kind", "quarantine"), ("result", "failed")))] == 1
        assert m[("riskguard_bus_dropped_total", (("bus", "events"), ("kind", "ProcessExit")))] == 2
        assert m[("riskguard_lost_events_total", (("source", "capture:exec"),))] == 7
        assert not any(k[0] == "riskguard_lost_events_total" and "ebpf" in str(k[1]) for k in m)
        assert m[("riskguard_containers_watched", (("runtime", "docker"),))] == 1
        assert next(k for k in m if k[0] == "riskguard_build_info")[1][1] == ("version", __version__)
        assert m[("riskguard_queue_depth", (("queue", "events"),))] == 1
        assert ("riskguard_queue_depth", (("queue", "findings"),)) in m
        assert m[("riskguard_vuln_scan_seconds_bucket", (("le", "2.5"),))] == 1
        # Bound to loopback only: another local address of this host is refused.
        port = out.metrics_server.port
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex(("127.0.0.2", port)) != 0
    finally:
        out.stop()
    # A config reload builds the component again on the same registry: no duplicate metrics.
    again = build(ctx)
    again.start(ctx)
    again.stop()
    ctx.store.close()


def test_ecs_field_names(tmp_path: Path) -> None:
    f = Finding(
        container=WEB,
        source=Source.RULE,
        detector_id="RG-0001",
        severity=Severity.CRITICAL,
        summary="reverse shell",
        evidence={"rule_name": "shell with socket stdio"},
        mitre="T1059.004",
    )
    v = Verdict(finding=f, action=Action.FREEZE, enforce=True, reason="enforce")
    r = ActionResult(action=Action.FREEZE, container_id=WEB.id, ok=True, detail="frozen")
    doc = finding_to_ecs(finding_record(f, v, r, host="node-a"))
    assert doc["@timestamp"].endswith("Z")
    assert doc["ecs"]["version"].startswith("8.")
    ev = doc["event"]
    assert (ev["kind"], ev["severity"], ev["action"], ev["outcome"]) == ("alert", 99, "freeze", "success")
    assert "intrusion_detection" in ev["category"] and ev["id"] == f.id
    assert doc["rule"]["id"] == "RG-0001" and doc["rule"]["name"] == "shell_spawned_by_service"
    assert doc["container"]["id"] == WEB.id and doc["container"]["name"] == "web"
    assert doc["container"]["image"] == {"name": "docker.io/library/nginx", "tag": ["1.25.3"]}
    assert doc["threat"]["framework"] == "MITRE ATT&CK"
    assert doc["threat"]["technique"]["id"] == ["T1059"]
    assert doc["threat"]["technique"]["subtechnique"]["id"] == ["T1059.004"]
    assert doc["host"]["name"] == "node-a"
    assert doc["message"] == "reverse shell"
    # Non-ECS data lives under the custom riskguard.* object only.
    ecs_top = {"@timestamp", "ecs", "message", "event", "rule", "host", "agent", "observer", "container", "threat"}
    assert set(doc) - ecs_top == {"riskguard"}


def test_ecs_file_output(tmp_path: Path) -> None:
    path = tmp_path / "ecs.jsonl"
    settings = OutputsSettings(alerts_file=None, metrics=MetricsSettings(enabled=False), ecs=EcsSettings(file=path))
    ctx = small_ctx(tmp_path, settings)
    out = build(ctx)
    out.start(ctx)
    try:
        vuln = Finding(container=None, source=Source.VULN, detector_id="CVE-2024-1", severity=Severity.LOW, summary="v")
        out.emit_finding(vuln)
    finally:
        out.stop()
        ctx.store.close()
    [doc] = [json.loads(line) for line in path.read_text().splitlines()]
    assert doc["event"]["category"] == ["vulnerability", "package"] and doc["event"]["severity"] == 21
    assert "container" not in doc and "threat" not in doc


def test_known_filter_out_of_room_is_exported(tmp_path: Path) -> None:
    # The eBPF source's known-event filter reports images it could not install and hits the full
    # kernel map could not count; without an eBPF known filter there is no such metric at all.
    settings = OutputsSettings(alerts_file=None, metrics=MetricsSettings(port=0))
    ctx = small_ctx(tmp_path, settings)
    known = {"images_refused": 2, "entries_refused": 900, "hits_refused": 5, "images_installed": 3}
    peers: dict[str, Any] = {"ebpf": {"known": known}}
    out = build(ctx, peers=lambda: peers)
    attach(ctx, out)
    try:
        assert out.metrics_server is not None
        m = scrape(out.metrics_server.url)
        assert m[("riskguard_ebpf_known_images_refused", ())] == 2
        assert m[("riskguard_ebpf_known_hits_refused_total", ())] == 5
        peers["ebpf"] = {"known": {}}
        m = scrape(out.metrics_server.url)
        assert not any(k[0].startswith("riskguard_ebpf_known") for k in m)
    finally:
        out.stop()
    ctx.store.close()
