# SPDX-License-Identifier: Apache-2.0
"""agent.yaml from a Kubernetes ConfigMap volume: kubelet makes the volume's directory 0777 (no
sticky bit) with the file behind ``..data`` symlinks; mounted read-only (as the DaemonSet does)
nobody can write it, so it is trusted; the same tree writable is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config
from tests.support import need_root, need_tool


def configmap_volume(root: Path) -> Path:
    """The layout of kubelet's atomic writer: <vol>/..<ts>/agent.yaml, ..data -> ..<ts>, and
    agent.yaml -> ..data/agent.yaml; the volume directory 0777, the file 0400 (defaultMode)."""
    vol = root / "etc-riskguard"
    ts = vol / "..2026_12_02_08_00_00.000000001"
    ts.mkdir(parents=True)
    (ts / "agent.yaml").write_text("behavior: {window_seconds: 7}\n")
    (ts / "agent.yaml").chmod(0o400)
    ts.chmod(0o755)
    (vol / "..data").symlink_to(ts.name)
    (vol / "agent.yaml").symlink_to("..data/agent.yaml")
    vol.chmod(0o777)
    root.chmod(0o700)
    return vol


def test_a_read_only_configmap_volume_is_trusted_a_writable_one_is_not(tmp_path: Path) -> None:
    need_root()
    need_tool("mount")
    vol = configmap_volume(tmp_path)
    with pytest.raises(ConfigError) as exc:
        load_config(vol / "agent.yaml")
    assert exc.value.problems == [f"(file): directory {vol} (mode 0777) is writable by group or others"]
    subprocess.run(["mount", "--bind", str(vol), str(vol)], check=True, timeout=20)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(vol)], check=True, timeout=20)
        cfg, _source = load_config(vol / "agent.yaml")
        assert cfg.behavior.window_seconds == 7
    finally:
        subprocess.run(["umount", str(vol)], check=True, timeout=20)
