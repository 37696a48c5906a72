# SPDX-License-Identifier: Apache-2.0
"""Which recorded freezer cgroups count as a removed container's leftover (the removal itself
is tested on real cgroups: tests/privileged/response/test_response_freeze.py)."""

from __future__ import annotations

from pathlib import Path

from agent.response import freeze

CID = "ab" * 32


def cgroup(root: Path, name: str, procs: str, state: str = "FROZEN") -> dict[str, str]:
    d = root / "freezer" / "docker" / name
    d.mkdir(parents=True)
    (d / "freezer.state").write_text(state)
    (d / "cgroup.procs").write_text(procs)
    return {"freezer": "v1", "cgroup": str(d)}


def test_a_frozen_cgroup_with_processes_is_no_leftover(tmp_path: Path) -> None:
    state = cgroup(tmp_path, CID, "4242\n4243\n")
    assert not freeze.holds_no_process(*freeze.recorded(state))
    assert freeze.remove_leftover(CID, state) is False
    assert Path(state["cgroup"], "freezer.state").read_text() == "FROZEN"


def test_only_the_containers_own_empty_cgroup_is_touched(tmp_path: Path) -> None:
    other = cgroup(tmp_path, "cd" * 32, "")
    assert freeze.holds_no_process(*freeze.recorded(other))
    assert freeze.remove_leftover(CID, other) is False  # not named after the container
    assert freeze.remove_leftover("", other) is False
    assert Path(other["cgroup"], "freezer.state").read_text() == "FROZEN"


def test_an_empty_v2_cgroup_reads_populated_0_and_a_missing_one_is_gone(tmp_path: Path) -> None:
    d = tmp_path / "unified" / "docker" / CID
    d.mkdir(parents=True)
    (d / "cgroup.events").write_text("populated 0\nfrozen 1\n")
    assert freeze.holds_no_process("v2", d)
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert not freeze.holds_no_process("v2", d)
    assert freeze.remove_leftover(CID, {"freezer": "v2", "cgroup": str(tmp_path / "nope" / CID)}) is True
