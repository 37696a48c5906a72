# SPDX-License-Identifier: Apache-2.0
"""Container registry lookups, /proc/<pid>/cgroup parsing, runtime patterns, captured host trees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.hostfs import HostPaths
from agent.runtime.cgroups import (
    ProcessGone,
    container_cgroups,
    match_container_cgroup,
    parse_proc_cgroup,
    read_proc_cgroup,
)
from agent.runtime.discovery import CgroupScanner
from agent.runtime.enrich import Enricher, container_of_pid
from agent.runtime.model import Container, ContainerRegistry
from agent.settings.core import RuntimeSettings
from tests.support import REPO

CID = "a" * 64
CID2 = "b" * 64
FIXTURE = REPO / "tests" / "fixtures" / "hosts" / "hybrid-docker"


def make(cid: str = CID, name: str = "web", cgroup_id: int = 44) -> Container:
    return Container(
        id=cid,
        name=name,
        image="busybox",
        image_id="sha256:1",
        runtime="docker",
        init_pid=100,
        cgroup_v1={"freezer": f"/docker/{cid}"},
        cgroup_v2=f"/docker/{cid}",
        cgroup_id=cgroup_id,
    )


def test_registry_lookups_and_listeners() -> None:
    r = ContainerRegistry()
    seen: list[tuple[str, str]] = []
    r.add_listener(lambda what, c: seen.append((what, c.name)))
    assert r.upsert(make()) == "added"
    assert r.upsert(make()) == ""  # unchanged: no event
    assert r.upsert(make(name="web2")) == "updated"
    r.upsert(make(CID2, "db", 45))
    assert r.get(CID[:12]) is not None and r.get(CID[:12]).id == CID  # type: ignore[union-attr]
    assert r.get("db").id == CID2  # type: ignore[union-attr]
    assert r.get("aaa") is None  # too short a prefix to be safe
    assert r.by_cgroup_id(45).name == "db"  # type: ignore[union-attr]
    # a process in a child cgroup of the container belongs to it
    assert r.by_cgroup_path(f"/docker/{CID}/sub/leaf").id == CID  # type: ignore[union-attr]
    assert r.by_cgroup_path("/system.slice/cron.service") is None
    r.remove(CID)
    assert r.by_cgroup_id(44) is None and r.get(CID) is None
    assert seen == [("added", "web"), ("updated", "web2"), ("added", "db"), ("removed", "web2")]


def test_parse_hybrid_and_v2_proc_cgroup() -> None:
    hybrid = f"9:name=systemd:/docker/{CID}\n6:freezer:/docker/{CID}\n1:cpu,cpuacct:/docker/{CID}\n0::/docker/{CID}\n"
    cg = parse_proc_cgroup(hybrid)
    assert cg.v1 == {
        "systemd": f"/docker/{CID}",
        "freezer": f"/docker/{CID}",
        "cpu": f"/docker/{CID}",
        "cpuacct": f"/docker/{CID}",
    }
    assert cg.v2 == f"/docker/{CID}"
    pure_v2 = parse_proc_cgroup(f"0::/system.slice/docker-{CID}.scope\n")
    assert pure_v2.v1 == {} and pure_v2.v2 == f"/system.slice/docker-{CID}.scope"
    assert parse_proc_cgroup("garbage\n\n").v2 is None


@pytest.mark.parametrize(
    ("path", "runtime", "own"),
    [
        (f"/docker/{CID}", "docker", f"/docker/{CID}"),
        (f"/system.slice/docker-{CID}.scope", "docker", f"/system.slice/docker-{CID}.scope"),
        (f"/kubepods.slice/kubepods-burstable.slice/crio-{CID}.scope", "cri-o", None),
        (f"/kubepods.slice/kubepods-pod1.slice/cri-containerd-{CID}.scope/init", "containerd", None),
        (f"/kubepods/besteffort/pod0f7c-11/{CID}", "containerd", None),
        (f"/machine.slice/libpod-{CID}.scope/container", "podman", None),
        (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope", "podman", None),
    ],
)
def test_runtime_patterns(path: str, runtime: str, own: str | None) -> None:
    m = match_container_cgroup(path)
    assert m is not None and m[0] == runtime and m[1] == CID
    assert path.startswith(m[2]) and m[2].rstrip("/").endswith((CID, ".scope"))
    if own:
        assert m[2] == own


def test_non_container_paths_do_not_match() -> None:
    for p in ("/", "/system.slice/ssh.service", "/docker", "/docker/abc", "/user.slice/session-3.scope"):
        assert match_container_cgroup(p) is None


def test_captured_host_tree(tmp_path: Path) -> None:
    """The cgroup facts of a real Docker container (captured by scripts/fixtures/capture-cgroup-tree.py)."""
    root = tmp_path / "host"
    shutil.copytree(FIXTURE, root)
    meta = json.loads((FIXTURE / "captured.json").read_text())[0]
    paths = HostPaths.under(root)
    assert paths.cgroup_mode() == "hybrid"
    v1, v2 = container_cgroups(paths, meta["pid"])
    assert v2 == f"/docker/{meta['id']}" and v1["freezer"] == v2
    with pytest.raises(ProcessGone):
        read_proc_cgroup(paths, 999999)
    # the cgroup scanner, told not to skip Docker, finds the container from the tree alone
    reg = ContainerRegistry()
    found = CgroupScanner(paths, RuntimeSettings(), reg).scan()
    assert list(found) == [meta["id"]]
    c = reg.get(meta["id"])
    assert c is not None and c.runtime == "docker" and c.init_pid == meta["pid"]
    # enrichment by pid resolves through /proc/<pid>/cgroup → registry
    assert container_of_pid(paths, reg, meta["pid"]) == c
    # the process exits: the next scan removes the container
    (root / "proc" / str(meta["pid"]) / "cgroup").unlink()
    for f in root.rglob("cgroup.procs"):
        if meta["id"] in str(f):
            f.write_text("")
    for f in root.rglob("tasks"):
        f.write_text("")
    CgroupScanner(paths, RuntimeSettings(), reg).scan()
    assert reg.get(meta["id"]) is None


def test_enricher_drops_host_events_unless_included(tmp_path: Path) -> None:
    from agent.events import ProcessExit

    reg = ContainerRegistry()
    reg.upsert(make())
    paths = HostPaths.under(tmp_path)
    e = Enricher(paths, reg)
    inside = e(ProcessExit(ts=0, cgroup_id=44, pid=1, comm="sh"))
    assert inside is not None and inside.container is not None and inside.container.name == "web"
    assert e(ProcessExit(ts=0, cgroup_id=1, pid=1, comm="systemd")) is None
    assert e.unattributed == 1
    e.include_host = True
    host = e(ProcessExit(ts=0, cgroup_id=1, pid=1, comm="systemd"))
    assert host is not None and host.container is None
