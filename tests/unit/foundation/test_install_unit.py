# SPDX-License-Identifier: Apache-2.0
"""scripts/install.sh writes the unit for the real PREFIX and ETC, not the repository's defaults."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def render(**env: str) -> str:
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "install.sh"), "--render-unit"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
        check=True,
    )
    return r.stdout


def test_unit_names_the_install_prefix_and_config_dir() -> None:
    unit = render(PREFIX="/usr/local/rg/", ETC="/srv/rg-etc")
    assert "/opt/riskguard" not in unit and "/etc/riskguard" not in unit
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["ExecStart"] == "/usr/local/rg/venv/bin/riskguard-agent run --config /srv/rg-etc/agent.yaml"
    assert lines["ExecStartPre"].startswith("/usr/local/rg/venv/bin/riskguard-agent check-config")
    assert lines["Environment"] == "RISKGUARD_DATA_DIR=/usr/local/rg/share"
    # Everything but the paths is the unit in systemd/, line for line.
    shipped = (REPO / "systemd" / "riskguard-agent.service").read_text()
    assert len(unit.splitlines()) == len(shipped.splitlines())


def test_default_prefix_renders_the_shipped_unit() -> None:
    assert (
        render(PREFIX="/opt/riskguard", ETC="/etc/riskguard")
        == (REPO / "systemd" / "riskguard-agent.service").read_text()
    )


def test_a_prefix_sed_cannot_carry_is_refused() -> None:
    r = subprocess.run(
        ["bash", str(REPO / "scripts" / "install.sh"), "--render-unit"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PREFIX": "/opt/a|b"},
        check=False,
    )
    assert r.returncode != 0 and "may not contain" in r.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_rendered_unit_passes_systemd_analyze(tmp_path: Path) -> None:
    prefix = tmp_path / "rg"
    (prefix / "venv" / "bin").mkdir(parents=True)
    exe = prefix / "venv" / "bin" / "riskguard-agent"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit = tmp_path / "riskguard-agent.service"
    unit.write_text(render(PREFIX=str(prefix), ETC=str(tmp_path / "etc")))
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0 and str(unit) not in r.stderr, r.stderr
