# SPDX-License-Identifier: Apache-2.0
"""Which containers the capture source refuses, on a host tree (HostPaths.under)."""

from __future__ import annotations

import os
from pathlib import Path

from agent.hostfs import HostPaths
from agent.runtime.model import Container, ContainerRegistry
from agent.settings.sources import CaptureSettings
from agent.sources.capture import CaptureSource


def container(pid: int, mode: str) -> Container:
    return Container(
        id=f"{pid:064x}", name=f"c{pid}", image="img", image_id="sha256:1", runtime="docker",
        init_pid=pid, details={"network_mode": mode},
    )  # fmt: skip


def test_eligibility(tmp_path: Path) -> None:
    paths = HostPaths.under(tmp_path)
    for pid in (1, 10, 20):
        (paths.pid_netns(pid)).parent.mkdir(parents=True)
    paths.pid_netns(1).write_text("host netns")
    os.link(paths.pid_netns(1), paths.pid_netns(10))  # same inode: the host's netns
    paths.pid_netns(20).write_text("its own netns")
    src = CaptureSource(CaptureSettings(enabled=True), paths, ContainerRegistry(), lambda w: None, 10)
    assert src.eligible(container(20, "bridge")) == ""
    assert src.eligible(container(20, "host")) == "network mode host"
    assert src.eligible(container(20, "none")) == "network mode none"
    assert "shares the network namespace of" in src.eligible(container(20, "container:" + "a" * 64))
    assert src.eligible(container(10, "bridge")) == "shares the host network namespace"
    assert "netns unreadable" in src.eligible(container(30, "bridge"))
