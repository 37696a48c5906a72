# SPDX-License-Identifier: Apache-2.0
"""scripts/record_syscall_traces.py records real per-process traces from busybox containers."""

from __future__ import annotations

import subprocess
from pathlib import Path

from agent.behavior.ngram import parse_trace
from agent.syscall_table import syscall_number
from scripts.record_syscall_traces import PREFIX, record_run, workloads
from tests.support import TEST_IMAGE, need, need_root, need_tool


def _image_present() -> bool:
    return subprocess.run(["docker", "image", "inspect", TEST_IMAGE], capture_output=True, check=False).returncode == 0


def test_benign_and_attack_runs_become_per_process_traces(tmp_path: Path) -> None:
    need_root()
    need_tool("strace")
    need_tool("docker")
    need(_image_present(), f"This test needs the local image {TEST_IMAGE} (scripts/setup-host.sh builds it).")
    by_name = {w.name: w for w in workloads(1234)}
    lines = {name: record_run(by_name[name], 0, tmp_path, 20000) for name in ("shell_scripts", "shadow_read")}

    execve, exit_group, openat = (syscall_number(n) for n in ("execve", "exit_group", "openat"))
    for name, rows in lines.items():
        assert len(rows) >= 3, (name, rows)
        for row in rows:
            run, pid, program, rest = row.split(" ", 3)
            assert run == "0" and pid.isdigit() and program
            calls = parse_trace(rest)  # the product's own parser accepts every trace
            assert calls and calls[-1] == exit_group, (name, program, calls[-5:])
        assert any(execve in parse_trace(r.split(" ", 3)[3]) for r in rows)
    programs = {r.split(" ", 3)[2] for r in lines["shadow_read"]}
    # cp, awk, head and cut are busybox NOEXEC applets: forked, never exec'd, named "?".
    assert {"cat", "grep", "?"} <= programs
    assert any(openat in parse_trace(r.split(" ", 3)[3]) for r in lines["shadow_read"] if r.split()[2] == "cat")
    # The tracer's containers are gone and the work folder is empty again.
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name={PREFIX}-"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert left == [] and list(tmp_path.iterdir()) == []
