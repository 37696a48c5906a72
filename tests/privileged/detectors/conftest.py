# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the detector trigger tests: the static ``rgtrigger`` helper."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import need, need_tool

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def trigger_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``rgtrigger`` (ptrace, bpf, setuid(0), memfd exec), built static so
    it runs in the busybox image; bind-mount it read-only at /opt/rg."""
    gcc = need_tool("gcc")
    out = tmp_path_factory.mktemp("rgbin")
    res = subprocess.run(
        [gcc, "-static", "-O1", "-o", str(out / "rgtrigger"), str(HERE / "rgtrigger.c")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    need(
        res.returncode == 0,
        f"This test needs gcc with a static libc (libc6-dev) to build its helper: {res.stderr[-300:]}",
    )
    return out
