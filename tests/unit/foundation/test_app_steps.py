# SPDX-License-Identifier: Apache-2.0
"""Start-up steps on a bare state, status, SIGHUP reload semantics; the systemd unit verifies."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agent.app import STARTUP_STEPS, AppState, reload_config, startup, status, teardown
from agent.config import parse_config
from agent.control import call
from tests.support import REPO, VENV_BIN, need_tool


def cfg(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "agent.yaml"
    p.write_text(
        f"""
state: {{dir: {tmp_path}/state}}
control: {{socket: {tmp_path}/run/agent.sock}}
runtime: {{docker: false, cgroup_scan: false}}
{extra}
"""
    )
    p.chmod(0o600)
    return p


def bare_state(tmp_path: Path) -> AppState:
    import yaml

    p = cfg(tmp_path)
    return AppState(
        config=parse_config(yaml.safe_load(p.read_text())),
        config_source=str(p),
        config_path=p,
        wiring=lambda _gen: None,
    )


def test_steps_are_ordered_and_teardown_undoes_them(tmp_path: Path) -> None:
    names = [s.__name__ for s in STARTUP_STEPS]
    assert names.index("step_open_store") < names.index("step_context") < names.index("step_components")
    assert names[-1] == "step_control"  # the socket answers only once everything is up
    state = bare_state(tmp_path)
    startup(state)
    try:
        sock = tmp_path / "run" / "agent.sock"
        st = call(sock, "status")
        assert st["containers"] == 0 and st["config"].endswith("agent.yaml")
        assert call(sock, "containers") == []
        assert (tmp_path / "state" / "agent.db").exists()
        assert oct((tmp_path / "state").stat().st_mode & 0o777) == "0o700"
    finally:
        teardown(state)
    assert not (tmp_path / "run" / "agent.sock").exists()
    assert state.undo == []


def test_reload_keeps_old_config_when_new_one_is_bad(tmp_path: Path) -> None:
    state = bare_state(tmp_path)
    startup(state)
    try:
        old = state.config
        cfg(tmp_path, "behavior: {window_seconds: nope}")
        assert reload_config(state) is False
        assert state.config is old
        cfg(tmp_path, f"state: {{dir: {tmp_path}/elsewhere}}")
        # state set twice: refused as a duplicate key (test_state_dir_cannot_change_on_reload: the change)
        assert reload_config(state) is False
        cfg(tmp_path, "behavior: {window_seconds: 3}")
        assert reload_config(state) is True
        assert state.config.behavior.window_seconds == 3
        assert status(state)["reloads"] == 1
        # control socket still answers after the reload
        assert call(tmp_path / "run" / "agent.sock", "status")["reloads"] == 1
    finally:
        teardown(state)


def test_state_dir_cannot_change_on_reload(tmp_path: Path) -> None:
    state = bare_state(tmp_path)
    startup(state)
    try:
        p = tmp_path / "agent.yaml"
        p.write_text(
            f"state: {{dir: {tmp_path}/other}}\ncontrol: {{socket: {tmp_path}/run/agent.sock}}\n"
            "runtime: {docker: false, cgroup_scan: false}\n"
        )
        assert reload_config(state) is False
        assert state.config.state.dir == tmp_path / "state"
    finally:
        teardown(state)


def test_systemd_unit_verifies_cleanly(tmp_path: Path) -> None:
    need_tool("systemd-analyze")
    unit = (REPO / "systemd" / "riskguard-agent.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "Restart=on-failure" in unit
    assert "CapabilityBoundingSet=" in unit
    # verify checks that executables exist: point the copy at this checkout's venv
    local = tmp_path / "riskguard-agent.service"
    local.write_text(unit.replace("/opt/riskguard/venv", str(VENV_BIN.parent)))
    r = subprocess.run(
        [shutil.which("systemd-analyze") or "systemd-analyze", "verify", str(local)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r.stderr


@pytest.mark.parametrize("cap", ["CAP_BPF", "CAP_NET_ADMIN", "CAP_AUDIT_READ", "CAP_SYS_PTRACE", "CAP_NET_RAW"])
def test_unit_justifies_each_capability(cap: str) -> None:
    unit = (REPO / "systemd" / "riskguard-agent.service").read_text()
    bounding = next(line for line in unit.splitlines() if line.startswith("CapabilityBoundingSet="))
    assert cap in bounding
    assert any(line.startswith("#") and cap in line for line in unit.splitlines())
