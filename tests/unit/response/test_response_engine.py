# SPDX-License-Identifier: Apache-2.0
"""The response engine on a captured-style host tree (``HostPaths.under``): records, guards,
reconcile, dry run, and the riskguardctl commands over a real control socket."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.control import ControlServer
from agent.events import ProcessExec
from agent.findings import Action, Finding, Severity, Source
from agent.hostfs import HostPaths
from agent.response.component import ResponseComponent, build
from agent.response.engine import ResponseEngine, ResponseError
from agent.response.evidence import parse_proc_net
from agent.runtime.model import Container
from agent.wiring import attach

CID = "f" * 64
PID = 4242
TCP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1\n"
    "   1: 020011AC:9C40 010011AC:0050 01 00000000:00000000 00:00000000 00000000     0        0 1235 1\n"
    "   2: garbage\n"
)


def fake_host(root: Path, cid: str = CID, pid: int = PID) -> tuple[HostPaths, Container]:
    paths = HostPaths.under(root)
    cg = paths.cgroup / "freezer" / "docker" / cid
    cg.mkdir(parents=True)
    (cg / "freezer.state").write_text("THAWED\n")
    (cg / "cgroup.procs").write_text(f"{pid}\n{pid + 1}\n")
    for p, ppid, comm in ((pid, 1, "sh"), (pid + 1, pid, "nc (evil)")):
        d = paths.pid_dir(p)
        (d / "net").mkdir(parents=True)
        (d / "stat").write_text(f"{p} ({comm}) S {ppid} {p} {p} 0 -1 4194560 0 0\n")
        (d / "cmdline").write_bytes(comm.encode() + b"\0-l\0")
        (d / "cgroup").write_text(f"6:freezer:/docker/{cid}\n0::/docker/{cid}\n")
        (d / "net" / "tcp").write_text(TCP)
    c = Container(
        id=cid,
        name="web",
        image="nginx:1",
        image_id="",
        runtime="docker",
        init_pid=pid,
        cgroup_v1={"freezer": f"/docker/{cid}"},
        cgroup_v2="",
        labels={},
    )
    return paths, c


@pytest.fixture
def env(tmp_path: Path, make_ctx: Callable[..., AgentContext]) -> Callable[..., tuple[AgentContext, Container]]:
    def _env(**response: Any) -> tuple[AgentContext, Container]:
        paths, c = fake_host(tmp_path / "host")
        cfg = AgentConfig.model_validate({"response": {"mode": "enforce", **response}})
        ctx = make_ctx(config=cfg, paths=paths)
        ctx.registry.upsert(c)
        return ctx, c

    return _env


def state_file(ctx: AgentContext, c: Container) -> Path:
    return ctx.paths.cgroup / "freezer" / c.cgroup_v1["freezer"].lstrip("/") / "freezer.state"


def rule_finding(c: Container, **kw: Any) -> Finding:
    return Finding(
        container=kw.pop("ref", c.ref()),
        source=kw.pop("source", Source.RULE),
        detector_id="RG-0001",
        severity=kw.pop("severity", Severity.CRITICAL),
        summary="denied exec",
        **kw,
    )


def test_enforced_finding_is_recorded_then_frozen_and_confirmed(env: Any) -> None:
    ctx, c = env()
    engine = ResponseEngine(ctx)
    engine.on_event(ProcessExec(ts=1.0, pid=PID, container=c.ref(), ppid=1, uid=0, comm="nc", filename="/bin/nc"))
    v = engine.on_finding(rule_finding(c))
    assert v.action == Action.FREEZE and v.enforce
    assert state_file(ctx, c).read_text().strip() == "FROZEN"
    [rec] = engine.records.active(c.id)
    assert rec.phase == "confirmed" and rec.actor == "policy:RG-0001"
    assert [h.phase for h in engine.records.history(rec.id)] == ["intended", "applied", "confirmed"]
    [ev] = engine.records.evidence(rec.id)
    assert {p["comm"] for p in ev["processes"]} == {"sh", "nc (evil)"}
    assert {
        "protocol": "tcp",
        "local": "127.0.0.1:8080",
        "remote": "0.0.0.0:0",
        "state": "LISTEN",
        "inode": 1234,
    } in ev["connections"]
    assert ev["recent_events"][0]["filename"] == "/bin/nc"
    [f] = engine.records.findings(container="web")
    assert f.verdict.action_id == rec.id and f.verdict.result == "confirmed"
    # A second finding joins the incident: no second action.
    engine.on_finding(rule_finding(c, source=Source.BEHAVIOR))
    assert len(engine.records.actions()) == 1


def test_observe_mode_records_but_never_writes(env: Any) -> None:
    ctx, c = env(mode="observe")
    engine = ResponseEngine(ctx)
    v = engine.on_finding(rule_finding(c))
    assert v.action == Action.FREEZE and not v.enforce
    assert state_file(ctx, c).read_text().strip() == "THAWED"
    assert engine.records.actions() == []
    assert engine.records.findings()[0].verdict.enforce is False


@pytest.mark.parametrize("case", ["unknown", "exempt", "host", "impostor"])
def test_never_acts_outside_the_registry_on_the_host_or_exempt(env: Any, case: str) -> None:
    ctx, c = env()
    engine = ResponseEngine(ctx)
    if case == "unknown":
        ctx.registry.remove(c.id)
        f = rule_finding(c)
    elif case == "exempt":
        ctx.registry.upsert(Container(**{**c.to_dict(), "labels": {"riskguard.exempt": "true"}, "details": {}}))
        f = rule_finding(c, ref=ctx.registry.get(c.id).ref())  # type: ignore[union-attr]
    elif case == "host":
        f = rule_finding(c, ref=None)
    else:  # a finding naming the container's name but another id: not that container
        from agent.events import ContainerRef

        f = rule_finding(c, ref=ContainerRef(id="0" * 64, name="web", image="nginx:1"))
    v = engine.on_finding(f)
    assert v.action == Action.ALERT and not v.enforce
    assert state_file(ctx, c).read_text().strip() == "THAWED"
    assert engine.records.actions() == []
    if case in ("unknown", "exempt"):
        with pytest.raises(ResponseError):
            engine.isolate(c.id)
        assert state_file(ctx, c).read_text().strip() == "THAWED"


def test_agent_own_cgroup_is_refused(env: Any) -> None:
    import os

    ctx, c = env()
    engine = ResponseEngine(ctx)
    me = Container(**{**c.to_dict(), "id": "e" * 64, "name": "me", "init_pid": os.getpid(), "details": {}})
    ctx.registry.upsert(me)
    with pytest.raises(ResponseError, match="the agent itself"):
        engine.isolate(me.id)


def test_interrupted_intent_is_completed_at_startup(env: Any) -> None:
    ctx, c = env()
    first = ResponseEngine(ctx)
    aid = first.records.intend(
        container_id=c.id, container_name=c.name, image=c.image, init_pid=c.init_pid, action="freeze",
        method="auto", actor="operator", reason="test", dry_run=False,
    )  # fmt: skip
    assert state_file(ctx, c).read_text().strip() == "THAWED"
    second = ResponseEngine(ctx)  # "restart": a fresh engine on the same store
    second.reconcile()
    assert state_file(ctx, c).read_text().strip() == "FROZEN"
    rec = second.records.get(aid)
    assert rec is not None and rec.phase == "confirmed" and rec.active
    assert second.isolations()[0]["freezer_state"] == "frozen"


def test_interrupted_intent_on_a_gone_container_is_rolled_back(env: Any) -> None:
    ctx, _c = env()
    engine = ResponseEngine(ctx)
    aid = engine.records.intend(
        container_id="9" * 64, container_name="gone", image="x", init_pid=999999, action="quarantine",
        method="netns", actor="operator", reason="test", dry_run=False,
    )  # fmt: skip
    engine.reconcile()
    rec = engine.records.get(aid)
    assert rec is not None and rec.phase == "rolled_back" and not rec.active


def test_thawed_behind_our_back_is_refrozen_and_release_thaws(env: Any) -> None:
    ctx, c = env()
    engine = ResponseEngine(ctx)
    engine.isolate(c.id, "freeze")
    state_file(ctx, c).write_text("THAWED")  # e.g. `docker unpause`
    ResponseEngine(ctx).reconcile()
    assert state_file(ctx, c).read_text().strip() == "FROZEN"
    [rec] = engine.release("web")
    assert rec.phase == "released" and not rec.active
    assert state_file(ctx, c).read_text().strip() == "THAWED"
    assert [h.phase for h in engine.records.history(rec.id)][-2:] == ["release_intended", "released"]
    with pytest.raises(ResponseError, match="nothing to release"):
        engine.release(c.id)


def test_a_release_while_a_sweep_runs_is_not_undone(env: Any) -> None:
    """The sweep reads the isolations in effect, then checks each: an operator's release in between
    thaws the container on purpose, and the sweep must not freeze it again (the chaos e2e saw
    ``released`` followed 40 ms later by ``applied``/``confirmed``, "re-asserted")."""
    ctx, c = env()
    engine = ResponseEngine(ctx)
    engine.isolate(c.id, "freeze")
    [seen] = engine.records.active(c.id)  # what a sweep running now has read
    assert engine.release("web")[0].phase == "released"  # the operator, between the read and the check
    got = engine._reconcile_confirmed(seen)  # the sweep goes on with what it read
    assert got.phase == "released" and not got.active
    assert state_file(ctx, c).read_text().strip() == "THAWED"
    assert engine.records.active(c.id) == []


def test_dry_run_records_and_changes_nothing(env: Any) -> None:
    ctx, c = env(dry_run=True)
    engine = ResponseEngine(ctx)
    engine.on_finding(rule_finding(c))
    assert state_file(ctx, c).read_text().strip() == "THAWED"
    [rec] = engine.records.actions()
    assert rec.dry_run and not rec.active and rec.phase == "confirmed"
    assert "would write freezer.state=FROZEN" in rec.detail


def test_build_is_none_when_disabled(make_ctx: Callable[..., AgentContext]) -> None:
    ctx = make_ctx(config=AgentConfig.model_validate({"response": {"enabled": False}}))
    assert build(ctx) is None


def test_parse_proc_net_ipv6() -> None:
    text = (
        "  sl  local_address                         remote_address                        st\n"
        "   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A"
        " 00000000:00000000 00:00000000 00000000     0        0 77 1\n"
    )
    assert parse_proc_net(text, "tcp6") == [
        {"protocol": "tcp6", "local": "[::1]:80", "remote": "[::]:0", "state": "LISTEN", "inode": 77}
    ]


def test_riskguardctl_over_the_control_socket(
    env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent import ctl

    ctx, c = env(mode="observe")
    comp = build(ctx)
    assert isinstance(comp, ResponseComponent)
    attach(ctx, comp)
    server = ControlServer(tmp_path / "s.sock", ctx.control_methods)
    server.start()
    # The agent's log lines must not mix into riskguardctl's stdout: capture them.
    capture = structlog.testing.capture_logs()
    logs = capture.__enter__()
    try:
        ctx.findings.process(rule_finding(c, severity=Severity.HIGH))
        ctx.findings.process(rule_finding(c, source=Source.VULN, severity=Severity.LOW))
        sock = ["--socket", str(tmp_path / "s.sock")]
        assert ctl.main([*sock, "findings", "--json", "--severity", "high"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [r["source"] for r in rows] == ["rule"] and rows[0]["verdict"]["action"] == "freeze"
        assert ctl.main([*sock, "findings", "--source", "vuln"]) == 0
        out = capsys.readouterr().out
        assert "low" in out and "rule" not in out
        assert ctl.main([*sock, "findings", "--container", "nope", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == []
        # Operator isolation works in observe mode too.
        assert ctl.main([*sock, "isolate", "web", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["phase"] == "confirmed"
        assert state_file(ctx, c).read_text().strip() == "FROZEN"
        assert comp.status()["isolations"][0]["freezer_state"] == "frozen"
        monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: each action on one line
        assert ctl.main([*sock, "actions"]) == 0
        monkeypatch.delenv("COLUMNS")
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split()[:4] == ["TIME", "ACTION", "CONTAINER", "ACTIVE"]
        assert "intended → applied → confirmed" in lines[1]
        assert ctl.main([*sock, "release", c.id[:12]]) == 0
        assert "released" in capsys.readouterr().out
        assert state_file(ctx, c).read_text().strip() == "THAWED"
        assert ctl.main([*sock, "release", "web"]) == 1
        assert "nothing to release" in capsys.readouterr().err
        assert ctl.main([*sock, "isolate", "nope"]) == 1
        assert "no discovered container" in capsys.readouterr().err
        assert any(e["event"] == "container_frozen" for e in logs)
    finally:
        capture.__exit__(None, None, None)
        server.stop()
        comp.stop()


def test_socket_table_after_the_freeze_when_configured(env: Any) -> None:
    ctx, c = env(evidence_connections="after_freeze")
    engine = ResponseEngine(ctx)
    rec = engine.isolate(c.id, "freeze")
    first, late = engine.records.evidence(rec.id)
    assert first["connections"] is None and {p["pid"] for p in first["processes"]} == {PID, PID + 1}
    assert any(x["local"] == "127.0.0.1:8080" for x in late["connections"])
    assert rec.phase == "confirmed"


def test_findings_and_actions_reach_the_outputs(tmp_path: Path, make_ctx: Callable[..., AgentContext]) -> None:
    from agent.outputs.component import build as build_outputs

    paths, c = fake_host(tmp_path / "host")
    alerts = tmp_path / "alerts.jsonl"
    cfg = AgentConfig.model_validate(
        {
            "response": {"mode": "enforce"},
            "outputs": {"alerts_file": str(alerts), "log_findings": False, "metrics": {"enabled": False}},
        }
    )
    ctx = make_ctx(config=cfg, paths=paths)
    ctx.registry.upsert(c)
    outputs = build_outputs(ctx)
    comp = build(ctx, outputs=outputs)
    assert comp is not None
    attach(ctx, outputs, comp)  # as agent.wiring: the response reports to the outputs
    try:
        ctx.findings.process(rule_finding(c))
        ctx.findings.process(rule_finding(c, source=Source.BEHAVIOR))  # joins the incident: no new action
        comp.engine.release(c.id)
    finally:
        comp.stop()
        outputs.stop()
    lines = [json.loads(x) for x in alerts.read_text().splitlines()]
    findings = [x for x in lines if x.get("type") != "action"]
    # one record per finding: the one that joined the incident is alerted too, without an action
    assert len(findings) == 2
    assert findings[0]["verdict"] == "freeze" and findings[0]["action"]["kind"] == "freeze"
    assert findings[0]["action"]["ok"] is True and findings[0]["container_id"] == c.id
    assert findings[1]["source"] == "behavior" and findings[1]["verdict"] == "none"
    assert findings[1]["action"] is None and "joined incident" in findings[1]["verdict_reason"]


def test_sweep_puts_back_a_freeze_undone_behind_our_back_and_forget_closes_records(env: Any) -> None:
    ctx, c = env()
    engine = ResponseEngine(ctx)
    rec = engine.isolate(c.id, "freeze")
    state_file(ctx, c).write_text("THAWED")  # `docker unpause` writes the same file
    engine.sweep()
    assert state_file(ctx, c).read_text().strip() == "FROZEN"
    assert engine.records.get(rec.id).phase == "confirmed"  # type: ignore[union-attr]
    # The container exits: its cgroup goes, the registry drops it, the record is closed.
    import shutil

    shutil.rmtree(state_file(ctx, c).parent)
    ctx.registry.remove(c.id)
    engine.forget(c.id)
    got = engine.records.get(rec.id)
    assert got is not None and got.phase == "gone" and not got.active
