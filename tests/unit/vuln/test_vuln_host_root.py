# SPDX-License-Identifier: Apache-2.0
"""Host paths Docker reports (GraphDriver's overlay2 dirs) are read below ``host.root``: the agent
in its DaemonSet sees the node's ``/var/lib/docker`` at ``/host/var/lib/docker``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.app import host_paths
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.runtime.docker import details_from_inspect
from agent.runtime.model import Container
from agent.settings.core import HostSettings, RuntimeSettings
from agent.settings.vuln import VulnDbSettings, VulnSettings
from agent.vuln.component import VulnComponent, build
from agent.vuln.inventory import read_inventory
from agent.vuln.rootfs import LayeredRoot, RootError
from agent.vuln.scanner import ScanError, open_container_root
from agent.wiring import attach
from tests.fixtures.vuln.builders import CRITICAL, osv, write_dpkg_status, write_os_release, write_records

GONE_PID = 4343  # no /proc entry in the captured tree: the scan falls back to the layers


def test_host_reroots_an_absolute_host_path(tmp_path: Path) -> None:
    assert HostPaths().host("/var/lib/docker/overlay2/x/diff") == Path("/var/lib/docker/overlay2/x/diff")
    tree = HostPaths.under(tmp_path)
    assert tree.root == tmp_path
    assert tree.host("/var/lib/docker/overlay2/x/diff") == tmp_path / "var/lib/docker/overlay2/x/diff"
    assert tree.host("/var/lib/docker/overlay2/x/diff") == tree.docker_root / "overlay2/x/diff"
    # ``..`` stays below the root; a relative path is taken from the host's /.
    assert tree.host("/var/lib/docker/../../../../etc/shadow") == tmp_path / "etc/shadow"
    assert tree.host("var/log/x.log") == tmp_path / "var/log/x.log"
    assert tree.host("/") == tmp_path
    # The daemon's paths for ``host.root: /host`` (the image's agent.yaml).
    paths = host_paths(AgentConfig(host=HostSettings(root=Path("/host"))))
    assert paths.root == Path("/host") and paths.proc == Path("/host/proc")
    assert paths.host("/var/lib/docker/overlay2/x/merged") == Path("/host/var/lib/docker/overlay2/x/merged")
    assert host_paths(AgentConfig()).host("/var/run/docker/netns/abc") == Path("/var/run/docker/netns/abc")


def overlay2_inspect(host: HostPaths) -> dict[str, Any]:
    """A captured-style overlay2 layout under ``host`` and the inspect data naming it as the node
    does (``/var/lib/docker/overlay2/<id>/...``): the image layer holds the dpkg database."""
    cid, image_layer = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    overlay = host.docker_root / "overlay2"
    image = overlay / image_layer / "diff"
    write_os_release(image, "debian", "12")
    write_dpkg_status(image, [{"name": "libexpat1", "version": "2.5.0-1", "source": "expat"}])
    (overlay / f"{cid}-init" / "diff" / "etc").mkdir(parents=True)
    (overlay / f"{cid}-init" / "diff" / "etc" / "hostname").write_text("")
    upper = overlay / cid / "diff"
    (upper / "tmp").mkdir(parents=True)
    (upper / "tmp" / "written-at-run-time").write_text("x")
    (overlay / cid / "merged").mkdir()
    node = "/var/lib/docker/overlay2"
    return {
        "Id": cid,
        "Name": "/web",
        "Image": "sha256:" + image_layer,
        "State": {"Running": True, "Pid": GONE_PID},
        "Config": {"Image": "web:1"},
        "LogPath": f"/var/lib/docker/containers/{cid}/{cid}-json.log",
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "LowerDir": f"{node}/{cid}-init/diff:{node}/{image_layer}/diff",
                "MergedDir": f"{node}/{cid}/merged",
                "UpperDir": f"{node}/{cid}/diff",
                "WorkDir": f"{node}/{cid}/work",
            },
        },
    }


def test_layers_from_inspect_are_read_below_the_host_root(tmp_path: Path) -> None:
    host = HostPaths.under(tmp_path / "host")
    attrs = overlay2_inspect(host)
    details = details_from_inspect(attrs)
    assert details["upper_dir"].startswith("/var/lib/docker/overlay2/")  # as the node names it
    root = open_container_root(host, GONE_PID, details)
    try:
        assert isinstance(root, LayeredRoot)
        assert root.label.split(":")[0] == str(tmp_path / "host" / details["upper_dir"].lstrip("/"))
        inv = read_inventory(root)
        assert (inv.os.id, [(p.name, p.version) for p in inv.packages]) == ("debian", [("libexpat1", "2.5.0-1")])
        assert root.is_file("/tmp/written-at-run-time")  # the upper layer is part of the view
    finally:
        root.close()


def test_the_same_inspect_data_is_not_found_on_the_agents_own_filesystem(tmp_path: Path) -> None:
    """Without the re-rooting the node's paths name nothing the agent can open (the bug)."""
    host = HostPaths.under(tmp_path / "host")
    details = details_from_inspect(overlay2_inspect(host))
    assert not Path(details["upper_dir"]).exists()
    with pytest.raises((RootError, ScanError)):
        open_container_root(HostPaths(), 0, details)


@pytest.fixture
def component(tmp_path: Path, make_ctx: Callable[..., AgentContext]) -> Iterator[tuple[AgentContext, VulnComponent]]:
    from agent.vuln.db import VulnDB

    dbpath = tmp_path / "vulndb.sqlite"
    db = VulnDB(dbpath)
    record = osv(
        "DSA-9-1", "Debian:12", "expat", fixed="2.5.0-1+deb12u1", aliases=["CVE-2099-9"], severity_vector=CRITICAL
    )
    db.import_paths([write_records(tmp_path / "feed", [record])], progress=False)
    db.close()
    cfg = AgentConfig(vuln=VulnSettings(interval_seconds=3600, db=VulnDbSettings(path=dbpath)))
    ctx = make_ctx(cfg, HostPaths.under(tmp_path / "host"))
    comp = build(ctx)
    assert comp is not None
    attach(ctx, comp)
    yield ctx, comp
    comp.stop()


def test_the_component_scans_a_container_through_its_reported_layers(
    component: tuple[AgentContext, VulnComponent],
) -> None:
    ctx, comp = component
    attrs = overlay2_inspect(ctx.paths)
    c = Container(
        id=attrs["Id"],
        name="web",
        image="web:1",
        image_id=attrs["Image"],
        runtime="docker",
        init_pid=GONE_PID,
        details=details_from_inspect(attrs),
    )
    ctx.registry.upsert(c)
    r = comp.scan_container(c.id, refresh=True)
    assert r is not None
    assert r["summary"]["packages"] == 1
    assert [v["vulnerability"] for v in r["vulnerabilities"]] == ["CVE-2099-9"]


def test_cli_container_scan_uses_the_configured_host_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``riskguard-agent scan container`` in the agent's image reads where the daemon reads."""
    import argparse

    from agent.vuln.cli import _runtime

    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"host:\n  root: {tmp_path / 'host'}\n")
    args = argparse.Namespace(config=str(cfg), db=None)
    paths, docker_url = _runtime(args)
    assert paths == HostPaths.under(tmp_path / "host")
    assert docker_url == RuntimeSettings().docker_url
    details = details_from_inspect(overlay2_inspect(paths))
    root = open_container_root(paths, GONE_PID, details)
    try:
        assert [p.name for p in read_inventory(root).packages] == ["libexpat1"]
    finally:
        root.close()
    # No config that loads (``--db`` given): the real host.
    monkeypatch.delenv("RISKGUARD_CONFIG", raising=False)
    missing = argparse.Namespace(config=str(tmp_path / "missing.yaml"), db="x.sqlite")
    assert _runtime(missing) == (HostPaths(), RuntimeSettings().docker_url)
