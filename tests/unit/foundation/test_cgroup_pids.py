# SPDX-License-Identifier: Apache-2.0
"""The one cgroup pid walker (``agent.runtime.cgroups``) on captured-shape host trees."""

from __future__ import annotations

from pathlib import Path

from agent.hostfs import HostPaths
from agent.runtime.cgroups import cgroup_pids, container_pids
from agent.runtime.model import Container


def _write(d: Path, name: str, pids: list[int]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text("".join(f"{p}\n" for p in pids))


def _container(**kw: object) -> Container:
    base: dict[str, object] = {"id": "c" * 64, "name": "web", "image": "busybox", "image_id": "", "runtime": "docker"}
    base["init_pid"] = 77
    base.update(kw)
    return Container(**base)  # type: ignore[arg-type]


def test_pids_of_a_cgroup_and_its_children(host_tree: HostPaths) -> None:
    top = host_tree.cgroup_v2 / "docker" / "abc"
    _write(top, "cgroup.procs", [10, 11])
    _write(top / "init.scope", "cgroup.procs", [12])
    _write(top / "init.scope" / "deeper", "cgroup.procs", [13, 10])
    (top / "cgroup.controllers").write_text("")  # other files are ignored
    assert cgroup_pids(top) == {10, 11, 12, 13}
    assert cgroup_pids(top / "gone") == set()


def test_v1_hierarchy_without_cgroup_procs_reads_tasks(host_tree: HostPaths) -> None:
    d = host_tree.cgroup_v1("freezer") / "docker" / "abc"
    _write(d, "tasks", [20, 21])
    (d / "junk").write_text("x y\n")
    assert cgroup_pids(d) == {20, 21}


def test_container_pids_prefers_v2_then_v1_then_the_init_pid(host_tree: HostPaths) -> None:
    _write(host_tree.cgroup_v2 / "docker" / "abc", "cgroup.procs", [31, 30])
    _write(host_tree.cgroup_v1("pids") / "docker" / "abc", "cgroup.procs", [40])
    both = _container(cgroup_v2="/docker/abc", cgroup_v1={"pids": "/docker/abc"})
    assert container_pids(host_tree, both) == [30, 31]
    v1 = _container(cgroup_v1={"pids": "/docker/abc"})
    assert container_pids(host_tree, v1) == [40]
    # An existing empty cgroup: the container has no process (no guess from a stale init pid).
    _write(host_tree.cgroup_v2 / "docker" / "empty", "cgroup.procs", [])
    assert container_pids(host_tree, _container(cgroup_v2="/docker/empty")) == []
    # Nothing readable: the init pid recorded at discovery.
    assert container_pids(host_tree, _container(cgroup_v2="/docker/none")) == [77]
    assert container_pids(host_tree, _container(init_pid=0)) == []
