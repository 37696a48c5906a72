# SPDX-License-Identifier: Apache-2.0
"""The dispatcher's enrichment step: give every event the container it belongs to.

By cgroup id first (what the eBPF probes report), then by pid through ``/proc/<pid>/cgroup``.
Events of host processes are dropped unless ``runtime.include_host`` is set.
"""

from __future__ import annotations

import dataclasses

from agent.events import Event
from agent.hostfs import HostPaths
from agent.runtime.cgroups import ProcessGone, read_proc_cgroup
from agent.runtime.model import Container, ContainerRegistry


def container_of_pid(paths: HostPaths, registry: ContainerRegistry, pid: int) -> Container | None:
    """The registered container a pid belongs to, or ``None`` (host process, or gone)."""
    try:
        cg = read_proc_cgroup(paths, pid)
    except ProcessGone:
        return None
    if cg.v2 not in (None, "", "/"):
        c = registry.by_cgroup_path(cg.v2 or "")
        if c is not None:
            return c
    for path in cg.v1.values():
        c = registry.by_cgroup_path(path)
        if c is not None:
            return c
    return None


class Enricher:
    """A ``Bus.add_prepare`` step; counts what it could not attribute."""

    def __init__(self, paths: HostPaths, registry: ContainerRegistry, include_host: bool = False) -> None:
        self.paths = paths
        self.registry = registry
        self.include_host = include_host
        self.unattributed = 0

    def __call__(self, ev: Event) -> Event | None:
        if ev.container is not None:
            return ev
        c: Container | None = None
        if ev.cgroup_id:
            c = self.registry.by_cgroup_id(ev.cgroup_id)
        if c is None and ev.pid > 0:
            c = container_of_pid(self.paths, self.registry, ev.pid)
        if c is None:
            self.unattributed += 1
            return ev if self.include_host else None
        return dataclasses.replace(ev, container=c.ref())
