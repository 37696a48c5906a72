# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the test tiers.

``need(condition, reason)`` is how a test states what the machine must provide: it skips on a
developer's machine that lacks it, and fails when ``CI=true`` (CI is root on a real kernel, so a
missing capability there is a defect, not a reason to skip).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_IMAGE = "riskguard-test/busybox"
TEST_LABEL = "riskguard.test"


def need(condition: bool, reason: str) -> None:
    """Skip (developer machine) or fail (CI) unless ``condition`` holds."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}", pytrace=False)
    pytest.skip(reason)


def need_root() -> None:
    need(os.geteuid() == 0, "This test needs root.")


def need_tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"This test needs the {name} command (scripts/setup-host.sh installs it).")
    assert path is not None
    return path


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}", pytrace=False)
        time.sleep(interval)


def run(cmd: list[str], check: bool = True, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload,no-any-return]


REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


CGROUP_ROOT = Path("/sys/fs/cgroup")


def remove_container(c: Any, attempts: int = 3) -> None:
    """Remove a test container for good, also after a failed test: thawed first (a frozen
    container cannot be killed), removed, and again if that failed (something that froze it
    again while docker thawed and killed it leaves it frozen with the kill pending: docker gives
    up); then the freezer cgroups named after it that outlived it, emptied and frozen, are thawed
    and removed (docker's rmdir failed on them and it does not retry). Only this container's own
    cgroups are touched; every step is best effort."""
    freezers = [(d / "freezer.state", "THAWED") for d in CGROUP_ROOT.joinpath("freezer").glob(f"*/{c.id}")] + [
        (d / "cgroup.freeze", "0") for d in CGROUP_ROOT.joinpath("unified").glob(f"*/{c.id}")
    ]
    for _ in range(attempts):
        for state, thawed in freezers:
            with contextlib.suppress(OSError):
                state.write_text(thawed)
        try:
            c.remove(force=True)
            break
        except Exception as exc:
            if type(exc).__name__ == "NotFound":
                break
    for state, thawed in freezers:
        with contextlib.suppress(OSError):
            if state.parent.is_dir() and not (state.parent / "cgroup.procs").read_text().split():
                state.write_text(thawed)
                state.parent.rmdir()
