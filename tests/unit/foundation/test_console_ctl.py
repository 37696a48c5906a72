# SPDX-License-Identifier: Apache-2.0
"""The operator surface through the real entry points against an in-process agent (its control
socket, its response component, a captured host tree): one console layer (headers, 80
columns), ``--version``, global options before or after the sub-command, help on every option,
severity by name, "N of M" for a cut list, the container state column, observe-mode patch plans
marked "not applied", and the NetworkPolicy export that refuses a deny-all by accident."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
import yaml

from agent import __version__, cli, ctl
from agent.app import AppState, startup, teardown
from agent.config import parse_config
from agent.console import render_table
from agent.control import ControlServer
from agent.findings import Finding, Severity, Source
from agent.network import ctl as netctl
from agent.runtime.model import Container
from tests.support import wait_for
from tests.unit.response.test_response_engine import fake_host


# --- parsers ---------------------------------------------------------------------------------
def _undocumented(parser: argparse.ArgumentParser, path: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if not choice.help:
                    yield f"{path} {choice.dest}"
            for name, sub in action.choices.items():
                yield from _undocumented(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction) and not action.help:
            yield f"{path} {'/'.join(action.option_strings) or action.dest}"


def test_every_option_and_sub_command_has_help() -> None:
    missing = [
        *_undocumented(ctl.build_parser(), "riskguardctl"),
        *_undocumented(cli.build_parser(), "riskguard-agent"),
    ]
    assert missing == []


def test_the_walker_sees_an_option_without_help() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    s = sub.add_parser("x", help="documented")
    s.add_argument("--bare")
    assert list(_undocumented(p, "prog")) == ["prog x --bare"]


@pytest.mark.parametrize(("main", "prog"), [(ctl.main, "riskguardctl"), (cli.main, "riskguard-agent")])
def test_version(main: Any, prog: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"{prog} {__version__}\n"


def test_global_options_before_or_after_the_sub_command() -> None:
    p = ctl.build_parser()
    for argv in (
        ["--socket", "/s", "--json", "logs", "status"],
        ["logs", "status", "--socket", "/s", "--json"],
        ["--json", "logs", "--socket", "/s", "status"],
        ["findings", "--json", "--socket", "/s"],
    ):
        args = p.parse_args(argv)
        assert (args.socket, args.json) == (Path("/s"), True), argv
    args = p.parse_args(["--socket", "/s", "containers"])
    assert (args.socket, args.json) == (Path("/s"), False)  # the sub-command does not reset them


def test_a_table_fits_80_columns_with_a_header() -> None:
    rows = [
        {"id": "a" * 12, "name": "web-frontend-" * 3, "image": "registry.example.com:5000/team/app:" + "1" * 40}
    ] * 3
    text = render_table(rows, ["id", "name", "image"], width=80)
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "NAME", "IMAGE"]
    assert max(len(line) for line in lines) <= 80
    assert text.count("a" * 12) == 3  # short columns are never cut
    assert text.count("registry") == 3  # a long cell wraps inside its column


# --- an agent --------------------------------------------------------------------------------
@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[AppState, Container, Path]]:
    host = tmp_path / "host"
    _paths, c = fake_host(host)
    sock = tmp_path / "run" / "agent.sock"
    cfg = f"""
host: {{root: {host}}}
state: {{dir: {tmp_path}/state}}
control: {{socket: {sock}}}
runtime: {{docker: false, cgroup_scan: false}}
ebpf: {{enabled: false}}
audit: {{enabled: false}}
network: {{enabled: false}}
capture: {{enabled: false}}
behavior: {{enabled: false}}
logs: {{enabled: false}}
vuln: {{enabled: false}}
response: {{mode: observe}}
outputs: {{alerts_file: null, log_findings: false, metrics: {{enabled: false}}}}
"""
    p = tmp_path / "agent.yaml"
    p.write_text(cfg)
    p.chmod(0o600)
    state = AppState(config=parse_config(yaml.safe_load(cfg)), config_source=str(p), config_path=p)
    with structlog.testing.capture_logs():
        startup(state)
    state.registry.upsert(c)
    try:
        yield state, c, sock
    finally:
        with structlog.testing.capture_logs():
            teardown(state)


def _ctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with structlog.testing.capture_logs():
        rc = ctl.main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _report(state: AppState, c: Container, n: int, **kw: Any) -> None:
    assert state.ctx is not None
    with structlog.testing.capture_logs():
        for i in range(n):
            state.ctx.findings.process(
                Finding(
                    container=c.ref(),
                    source=kw.get("source", Source.RULE),
                    detector_id=kw.get("detector_id", "RG-0002"),
                    severity=kw.get("severity", Severity.HIGH),
                    summary=kw.get("summary", f"sensitive file read #{i}: /etc/shadow by cat"),
                    evidence=kw.get("evidence", {}),
                )
            )


def test_findings_say_n_of_m_and_severity_by_name(
    agent: tuple[AppState, Container, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    state, c, sock = agent
    _report(state, c, 5)
    wait_for(lambda: len(ctl_json(capsys, sock, "findings")) == 5, what="five findings stored")
    rc, out, err = _ctl(capsys, "findings", "--limit", "3", "--socket", str(sock))
    assert rc == 0 and "3 of 5 findings shown (raise --limit)" in err
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "SEV", "SOURCE", "DETECTOR", "CONTAINER", "VERDICT", "SUMMARY"]
    assert max(map(len, lines)) <= 80 and sum("high" in line for line in lines) == 3
    rc, out, err = _ctl(capsys, "--json", "--socket", str(sock), "findings")
    rows = json.loads(out)
    assert rc == 0 and err == "" and {r["severity"] for r in rows} == {"high"}  # a name, as in alerts
    rc, out, err = _ctl(capsys, "findings", "--severity", "critical", "--socket", str(sock))
    assert rc == 0 and out == "no findings\n" and err == ""


def ctl_json(capsys: pytest.CaptureFixture[str], sock: Path, *argv: str) -> Any:
    rc, out, err = _ctl(capsys, "--socket", str(sock), *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


def test_containers_show_their_state(
    agent: tuple[AppState, Container, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _state, c, sock = agent
    rc, out, _ = _ctl(capsys, "--socket", str(sock), "containers")
    lines = out.splitlines()
    assert rc == 0 and lines[0].split() == ["ID", "NAME", "IMAGE", "STATE", "PID", "UP"]
    assert lines[1].split()[:4] == [c.id[:12], "web", "nginx:1", "running"]
    rc, out, err = _ctl(capsys, "isolate", "web", "--socket", str(sock))
    assert rc == 0, out + err
    freezer = _state.paths.cgroup / "freezer" / "docker" / c.id / "freezer.state"  # type: ignore[union-attr]
    assert freezer.read_text().strip() == "FROZEN"
    rc, out, _ = _ctl(capsys, "containers", "--socket", str(sock))
    assert out.splitlines()[1].split()[:4] == [c.id[:12], "web", "nginx:1", "frozen"]
    assert ctl_json(capsys, sock, "containers")[0]["state"] == ["frozen"]
    rc, out, _ = _ctl(capsys, "release", "web", "--socket", str(sock))
    assert rc == 0
    assert ctl_json(capsys, sock, "containers")[0]["state"] == []


def test_observe_mode_shows_the_patch_plan_not_applied(
    agent: tuple[AppState, Container, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state, c, sock = agent
    vulns = [
        {"package": "zlib1g", "version": "1:1.2.13.dfsg-1", "fixed_version": "1:1.2.13.dfsg-1+deb12u1",
         "ecosystem": "Debian:12", "vulnerability": "DSA-5555-1", "severity": "critical"},
        {"package": "tar", "version": "1.34+dfsg-1.2", "fixed_version": "", "ecosystem": "Debian:12",
         "vulnerability": "DSA-5556-1", "severity": "unknown"},
    ]  # fmt: skip
    _report(
        state,
        c,
        1,
        source=Source.VULN,
        detector_id="vuln.image",
        severity=Severity.CRITICAL,
        summary="2 new vulnerabilities",
        evidence={"vulnerabilities": vulns},
    )
    plans = wait_for(lambda: ctl_json(capsys, sock, "plans"), what="the observed plan")
    assert [(p["observed"], p["applied"], p["status"]) for p in plans] == [(True, False, "packages_only")]
    assert [pkg["name"] for pkg in plans[0]["packages"]] == ["zlib1g"]
    rc, out, _ = _ctl(capsys, "--socket", str(sock), "plans")
    assert rc == 0 and "not applied (observe mode)" in out
    assert ["zlib1g", "1:1.2.13.dfsg-1", "1:1.2.13.dfsg-1+deb12u1", "DSA-5555-1"] in [
        x.split() for x in out.splitlines()
    ]
    [f] = ctl_json(capsys, sock, "findings", "--source", "vuln")
    assert f["severity"] == "critical" and f["verdict"]["action"] == "patch" and not f["verdict"]["enforce"]


# --- NetworkPolicy export --------------------------------------------------------------------
def test_export_refuses_an_empty_allowlist_unless_deny_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answer: dict[str, Any] = {
        "container": {"id": "ab" * 32, "name": "web", "image": "busybox", "labels": {}},
        "mode": "enforce",
        "allowlist": None,
        "proposal": None,
    }
    sock = tmp_path / "ctl.sock"
    server = ControlServer(sock, {"netpolicy": lambda _p: answer})
    server.start()
    try:
        rc, out, err = _ctl(capsys, "netpolicy", "web", "--export", "networkpolicy", "--socket", str(sock))
        assert rc == 2 and out == "" and "would deny all its traffic" in err and "--deny-all" in err
        rc, out, err = _ctl(
            capsys, "netpolicy", "web", "--export", "networkpolicy", "--deny-all", "--socket", str(sock)
        )
        pol = yaml.safe_load(out)
        assert rc == 0 and pol["spec"]["egress"] == [] and pol["spec"]["ingress"] == []
        answer["allowlist"] = {"source": "declared", "egress": [], "ingress": []}  # declared, but empty
        rc, _out, err = _ctl(capsys, "netpolicy", "web", "--export", "networkpolicy", "--socket", str(sock))
        assert rc == 2
        answer["allowlist"] = {"source": "declared", "egress": [{"cidr": "10.0.0.1/32", "ports": [443]}]}
        rc, out, _ = _ctl(capsys, "netpolicy", "web", "--export", "networkpolicy", "--socket", str(sock))
        assert rc == 0 and yaml.safe_load(out)["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    finally:
        server.stop()
    assert netctl.allows_nothing({"allowlist": None, "proposal": {"egress": [{"cidr": "1.1.1.1"}]}}, True) is False


def test_plans_and_actions_say_when_cut(
    agent: tuple[AppState, Container, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state, c, sock = agent
    from agent.response.patch import plan_for

    assert state.ctx is not None
    with structlog.testing.capture_logs():
        for _ in range(3):
            plan_for(state.ctx, c, [], observe=True)
        for _ in range(2):
            assert ctl.main(["--socket", str(sock), "isolate", "web", "--dry-run", "--json"]) == 0
    rc, out, err = _ctl(capsys, "plans", "--limit", "2", "--json", "--socket", str(sock))
    assert rc == 0 and len(json.loads(out)) == 2 and "2 of 3 patch plans shown" in err
    rc, out, err = _ctl(capsys, "plans", "--socket", str(sock))
    assert rc == 0 and err == "" and out.count("not applied (observe mode)") == 3
    rc, out, err = _ctl(capsys, "actions", "--limit", "2", "--socket", str(sock))
    assert rc == 0 and "the newest 2 actions shown; there may be more" in err
    rc, out, err = _ctl(capsys, "actions", "--limit", "3", "--socket", str(sock))
    assert rc == 0 and err == ""


def test_container_states_read_isolations_and_managed_networking() -> None:
    status = {
        "components": {
            "response": {
                "isolations": [
                    {"container_id": "a" * 64, "action": "freeze", "phase": "confirmed"},
                    {"container_id": "a" * 64, "action": "quarantine", "phase": "applied"},
                ]
            },
            "netpolicy": {"containers": {"a" * 12: {"managed": "10.213.0.2"}, "b" * 12: {"managed": ""}}},
        }
    }
    states = ctl.container_states(status)
    assert sorted(states["a" * 64] + states["a" * 12]) == ["frozen", "managed", "quarantined (applied)"]
    assert "b" * 12 not in states


def test_no_column_is_dropped_when_the_terminal_is_narrow() -> None:
    row = {
        "time": "2026-12-02 08:40:11",
        "severity": "high",
        "source": "rule",
        "detector": "RG-0002",
        "container": "web-frontend-1",
        "verdict": "freeze (observed)",
        "summary": "sensitive file read: /etc/shadow by cat (pid 4242, parent sh, uid 0)",
    }
    for width in (80, 100):
        text = render_table([row], list(row), width=width)
        lines = text.splitlines()
        assert lines[0].split() == [k.upper() for k in row], width
        assert max(map(len, lines)) <= width
        words = " ".join(text.split())
        for value in ("2026-12-02", "/etc/shadow", "uid", "web-frontend"):
            assert value in words, (width, value)
    narrow = render_table([row], list(row), width=60)  # every column narrowed, headers wrap too
    assert max(map(len, narrow.splitlines())) <= 60
    assert "".join(narrow.split()).count("high") == 1 and "RG-0002" in narrow
