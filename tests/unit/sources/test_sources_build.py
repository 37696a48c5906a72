# SPDX-License-Identifier: Apache-2.0
"""The builders the daemon calls: enabled/disabled by config, control methods, metrics."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import generate_latest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import Event, ProcessExec
from agent.sources import auditd, capture, procfs, window
from agent.wiring import attach


def test_builders_follow_config(make_ctx: Callable[..., AgentContext]) -> None:
    ctx = make_ctx()
    assert isinstance(auditd.build(ctx), auditd.AuditSource)
    assert isinstance(procfs.build(ctx), procfs.ProcfsSource)
    assert capture.build(ctx) is None  # off by default
    agg = window.build(ctx)
    assert isinstance(agg, window.WindowAggregator)
    assert {"audit.status", "procfs.status", "window.status"} <= set(ctx.control_methods)
    text = generate_latest(ctx.metrics).decode()
    for name in (
        "riskguard_audit_malformed_total",
        "riskguard_procfs_snapshots_total",
        "riskguard_window_windows_total",
    ):
        assert name in text


def test_disabled_sections_build_nothing(make_ctx: Callable[..., AgentContext]) -> None:
    cfg = AgentConfig.model_validate(
        {"audit": {"enabled": False}, "procfs": {"enabled": False}, "behavior": {"enabled": False}}
    )
    ctx = make_ctx(cfg)
    assert auditd.build(ctx) is None and procfs.build(ctx) is None and window.build(ctx) is None


def test_capture_builds_when_enabled(make_ctx: Callable[..., AgentContext]) -> None:
    ctx = make_ctx(AgentConfig.model_validate({"capture": {"enabled": True}}))
    src = capture.build(ctx)
    assert src is not None and src.settings.pcap_dir == ctx.paths.state / "pcap"
    assert "riskguard_capture_kernel_drops" in generate_latest(ctx.metrics).decode()


def test_window_subscribes_to_the_bus(make_ctx: Callable[..., AgentContext]) -> None:
    from agent.events import ContainerRef

    ctx = make_ctx()
    agg = window.build(ctx)
    assert agg is not None
    attach(ctx, agg, start=False)
    ref = ContainerRef(id="d" * 64, name="x", image="img")
    ev: Event = ProcessExec(ts=1.0, container=ref, ppid=1, uid=0, comm="sh", filename="/bin/sh")
    ctx.events.process(ev)
    ws = agg.flush(2.0)
    assert ws[0].execs == 1
