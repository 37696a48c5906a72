# SPDX-License-Identifier: Apache-2.0
"""SIGHUP as a transaction on the real components: a good config restarts every component (each
control method still answers, each metric is exported once, events reach the new analysers); a
config whose build raises keeps the running components; check-config never shows a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.app import AppState, reload_config, startup, status, teardown
from agent.config import parse_config
from agent.control import ControlError, call
from agent.events import ContainerRef, FileOpen
from tests.support import VENV_BIN, wait_for

# Every component that starts without the kernel features (eBPF, audit netlink, capture and
# nftables have their own privileged tests).
COMPONENTS = {"outputs", "response", "detectors", "behavior", "logs", "window", "vuln", "procfs"}
CONTROL = ["status", "containers", "findings", "actions", "detectors.list", "logs.status", "window.status"]


def write(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "agent.yaml"
    base = f"""
state: {{dir: {tmp_path}/state}}
control: {{socket: {tmp_path}/run/agent.sock}}
runtime: {{docker: false, cgroup_scan: false}}
ebpf: {{enabled: false}}
audit: {{enabled: false}}
network: {{enabled: false}}
response: {{mode: observe}}
vuln: {{enabled: true, on_start: false, db: {{path: {tmp_path}/vulndb.sqlite}}}}
outputs: {{alerts_file: {tmp_path}/alerts.jsonl, log_findings: false, metrics: {{enabled: true, port: 0}}}}
"""
    # A section in ``extra`` replaces the base one (a key set twice is a config error).
    replaced = {line.split(":", 1)[0] for line in extra.splitlines() if line and not line[0].isspace()}
    kept = [line for line in base.splitlines() if line.split(":", 1)[0] not in replaced]
    p.write_text("\n".join([*kept, extra, ""]))
    p.chmod(0o600)
    return p


@pytest.fixture
def agent(tmp_path: Path) -> Any:
    p = write(tmp_path)
    state = AppState(config=parse_config(yaml.safe_load(p.read_text())), config_source=str(p), config_path=p)
    startup(state)
    yield state
    teardown(state)


def running(state: AppState) -> dict[str, str]:
    return {name: c["state"] for name, c in status(state)["components"].items()}


def families(state: AppState) -> list[str]:
    assert state.ctx is not None
    return [f.name for f in text_string_to_metric_families(generate_latest(state.ctx.metrics).decode())]


def shadow_read(cid: str) -> FileOpen:
    ref = ContainerRef(id=cid, name="web", image="nginx")
    return FileOpen(ts=1.0, pid=7, cgroup_id=0, container=ref, comm="cat", path="/etc/shadow", flags=0, write=False)


def test_valid_reload_restarts_every_component_and_every_method_answers(agent: AppState, tmp_path: Path) -> None:
    state = agent
    assert running(state) == dict.fromkeys(COMPONENTS, "running")
    before = {c.name: c for c in state.components}
    names_before = families(state)
    write(tmp_path, "behavior: {window_seconds: 7}")
    assert reload_config(state) is True
    assert state.config.behavior.window_seconds == 7 and state.reloads == 1
    assert running(state) == dict.fromkeys(COMPONENTS, "running")
    assert state.component_errors == {}
    after = {c.name: c for c in state.components}
    assert all(after[n] is not before[n] for n in COMPONENTS)  # new instances, old ones stopped
    sock = tmp_path / "run" / "agent.sock"
    for method in CONTROL:
        call(sock, method, {})  # raises ControlError on an unknown method
    assert call(sock, "status")["reloads"] == 1
    # Each metric family once (a second registration would have raised "Duplicated timeseries").
    names_after = families(state)
    assert sorted(names_after) == sorted(set(names_after)) == sorted(set(names_before))
    assert "riskguard_detector_findings" in names_after and "riskguard_behavior_windows" in names_after
    # Events reach the new detectors, and their findings the new response (its records).
    assert state.ctx is not None
    state.ctx.publish(shadow_read("ab" * 32))
    wait_for(lambda: call(sock, "findings", {"container": "ab" * 32}), 5, what="finding recorded after reload")
    assert after["detectors"].status()["findings"] == {"RG-0002": 1}  # type: ignore[attr-defined]
    assert before["detectors"].status()["findings"] == {}  # type: ignore[attr-defined]


def test_reload_whose_build_raises_keeps_the_running_components(agent: AppState, tmp_path: Path) -> None:
    state = agent
    before = list(state.components)
    old = state.config
    grok = tmp_path / "grok"
    grok.mkdir()
    (grok / "patterns").write_bytes(b"\xff\xfe not utf-8\n")  # the logs builder cannot read it
    write(tmp_path, f"logs: {{grok_dirs: [{grok}]}}\nbehavior: {{window_seconds: 7}}")
    with structlog.testing.capture_logs() as logs:
        assert reload_config(state) is False
    [failed] = [e for e in logs if e["event"] == "config_reload_failed"]
    assert failed["log_level"] == "error" and "logs: UnicodeDecodeError" in failed["error"]
    assert state.config is old and state.reloads == 0
    assert state.components == before
    assert running(state) == dict.fromkeys(COMPONENTS, "running")
    sock = tmp_path / "run" / "agent.sock"
    for method in CONTROL:
        call(sock, method, {})
    assert state.ctx is not None
    state.ctx.publish(shadow_read("cd" * 32))
    wait_for(lambda: call(sock, "findings", {"container": "cd" * 32}), 5, what="old components still analyse")


def test_reload_whose_start_fails_goes_back_to_the_old_config(agent: AppState, tmp_path: Path) -> None:
    state = agent
    old = state.config
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    # Valid, and every component builds; the scanner cannot open its database when it starts.
    write(tmp_path, f"vuln: {{enabled: true, on_start: false, db: {{path: {blocker}/vulndb.sqlite}}}}")
    with structlog.testing.capture_logs() as logs:
        assert reload_config(state) is False
    [failed] = [e for e in logs if e["event"] == "config_reload_failed"]
    assert failed["error"].startswith("vuln: FileExistsError") and failed["log_level"] == "error"
    assert state.config is old and state.reloads == 0
    assert running(state) == dict.fromkeys(COMPONENTS, "running")
    sock = tmp_path / "run" / "agent.sock"
    for method in [*CONTROL, "scan"]:
        try:
            call(sock, method, {})
        except ControlError as exc:
            assert "unknown method" not in str(exc)
    assert state.ctx is not None
    state.ctx.publish(shadow_read("ef" * 32))
    wait_for(lambda: call(sock, "findings", {"container": "ef" * 32}), 5, what="analysed on the old config")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("behavior:\n  window_seconds: 2024-31-12\n", "behavior.window_seconds: line 2, column 19:"),
        ("behavior:\n  window_seconds: !!float soon\n", "behavior.window_seconds: line 2, column 19:"),
        ("behavior: {window_seconds: " + "9" * 5000 + "}\n", "behavior.window_seconds: line 1, column 28:"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "(file): invalid YAML: nested too deeply"),
    ],
)
def test_check_config_never_shows_a_traceback(tmp_path: Path, text: str, expected: str) -> None:
    p = tmp_path / "agent.yaml"
    p.write_text(text)
    p.chmod(0o600)
    r = subprocess.run(
        [str(VENV_BIN / "riskguard-agent"), "check-config", "--config", str(p)], capture_output=True, text=True
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith(expected), r.stderr
    assert len(r.stderr) < 600


def test_check_config_refuses_a_fifo_without_hanging(tmp_path: Path) -> None:
    p = tmp_path / "agent.yaml"
    os.mkfifo(p, 0o600)
    r = subprocess.run(
        [str(VENV_BIN / "riskguard-agent"), "check-config", "--config", str(p)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and r.stderr.strip() == "(file): not a regular file"
