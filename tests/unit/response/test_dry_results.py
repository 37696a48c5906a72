# SPDX-License-Identifier: Apache-2.0
"""A dry run reports what it would do, through one constructor (``ActionResult.dry``), and does
nothing: thawing and releasing alike."""

from __future__ import annotations

from pathlib import Path

from agent.findings import Action, ActionResult
from agent.hostfs import HostPaths
from agent.response import freeze, quarantine

CID = "ab" * 32


def test_dry_thaw_writes_nothing(tmp_path: Path) -> None:
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "cgroup.freeze").write_text("1")
    got = freeze.thaw(HostPaths.under(tmp_path), CID, {"freezer": "v2", "cgroup": str(cg)}, dry_run=True)
    assert got == ActionResult.dry(Action.FREEZE, CID, f"would thaw {cg}")
    assert (got.ok, got.dry_run, dict(got.state)) == (True, True, {})
    assert (cg / "cgroup.freeze").read_text() == "1"
    real = freeze.thaw(HostPaths.under(tmp_path), CID, {"freezer": "v2", "cgroup": str(cg)})
    assert not real.dry_run and (cg / "cgroup.freeze").read_text() == "0"


def test_dry_release_names_the_method_and_touches_nothing(tmp_path: Path) -> None:
    got = quarantine.release(HostPaths.under(tmp_path), CID, 0, {"method": "netns"}, dry_run=True)
    assert got == ActionResult.dry(Action.QUARANTINE, CID, "would release netns")
    assert list(tmp_path.iterdir()) == []
