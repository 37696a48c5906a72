# SPDX-License-Identifier: Apache-2.0
"""Every default path of the agent's own files derives from ``state.dir``: moving the state
directory moves the vulnerability database, its downloads and the pcap rings with it; an
absolute path in the config is kept as written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.sources import capture
from agent.vuln import cli as vuln_cli
from agent.vuln import component as vuln


def test_relative_paths_are_under_the_state_dir() -> None:
    paths = HostPaths().with_state(Path("/srv/rg"))
    assert paths.in_state(Path("vulndb.sqlite")) == Path("/srv/rg/vulndb.sqlite")
    assert paths.in_state(Path("/data/v.sqlite")) == Path("/data/v.sqlite")


def test_defaults_follow_state_dir(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    cfg = AgentConfig.model_validate({"capture": {"enabled": True}})
    ctx = make_ctx(config=cfg)  # the daemon's ctx.paths.state is state.dir (app.host_paths)
    state = ctx.paths.state
    assert state.is_relative_to(tmp_path)
    comp = vuln.build(ctx)
    assert comp is not None
    assert comp.db_settings.path == state / "vulndb.sqlite"
    assert comp.db_settings.download_dir == state / "vulndb-sources"
    src = capture.build(ctx)
    assert src is not None and src.settings.pcap_dir == state / "pcap"
    # The offline tools resolve them the same way from the config file alone.
    moved = AgentConfig.model_validate({"state": {"dir": str(tmp_path / "s2")}})
    assert vuln_cli._state_path(moved, "path") == tmp_path / "s2" / "vulndb.sqlite"
    assert vuln_cli._state_path(moved, "download_dir") == tmp_path / "s2" / "vulndb-sources"


def test_absolute_paths_are_kept(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "v.sqlite"
    cfg = AgentConfig.model_validate({"vuln": {"db": {"path": str(db), "download_dir": str(tmp_path / "dl")}}})
    ctx = make_ctx(config=cfg)
    comp = vuln.build(ctx)
    assert comp is not None and comp.db_settings.path == db and comp.db_settings.download_dir == tmp_path / "dl"


def test_alerts_file_follows_state_dir_and_null_still_disables_it(
    make_ctx: Callable[..., AgentContext],
) -> None:
    from agent.outputs import component as outputs

    ctx = make_ctx()
    out = outputs.build(ctx)
    assert out.settings.alerts_file == ctx.paths.state / "alerts.jsonl"
    off = outputs.build(make_ctx(config=AgentConfig.model_validate({"outputs": {"alerts_file": None}})))
    assert off.settings.alerts_file is None
