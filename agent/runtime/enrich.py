# SPDX-License-Identifier: Apache-2.0
"""The dispatcher's enrichment step: give every event the container it belongs to.

By cgroup id first (what the eBPF probes report), then by pid through ``/proc/<pid>/cgroup``.
Events of host processes are dropped unless ``runtime.include_host`` is set.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any

from agent.events import ContainerRef, Event
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
    """A ``Bus.add_prepare`` step; counts what it could not attribute.

    It runs for every event: a container's ``ContainerRef`` is made once per registry record
    (not per event), and the event is copied with it slot by slot (a third of
    ``dataclasses.replace``'s cost, which walks the fields and calls ``__init__``)."""

    def __init__(self, paths: HostPaths, registry: ContainerRegistry, include_host: bool = False) -> None:
        self.paths = paths
        self.registry = registry
        self.include_host = include_host
        self.unattributed = 0
        # cgroup id -> (the registry's record, its ref): the ref is reused while the record is
        # the registry's (an update replaces the record, so the ref is made again)
        self._refs: dict[int, tuple[Container, ContainerRef]] = {}

    def __call__(self, ev: Event) -> Event | None:
        if ev.container is not None:
            return ev
        c: Container | None = None
        cgroup_id = ev.cgroup_id
        if cgroup_id:
            c = self.registry.by_cgroup_id(cgroup_id)
        if c is None and ev.pid > 0:
            c = container_of_pid(self.paths, self.registry, ev.pid)
            cgroup_id = 0  # found by pid: not cached under the event's cgroup id
        if c is None:
            self.unattributed += 1
            return ev if self.include_host else None
        hit = self._refs.get(cgroup_id) if cgroup_id else None
        if hit is not None and hit[0] is c:
            ref = hit[1]
        else:
            ref = c.ref()
            if cgroup_id:
                if len(self._refs) >= _MAX_REFS:
                    self._refs.clear()
                self._refs[cgroup_id] = (c, ref)
        return with_container(ev, ref)


_MAX_REFS = 4096
_COPIERS: dict[type, tuple[Callable[[Any], tuple[Any, ...]], tuple[str, ...]]] = {}


def with_container(ev: Event, ref: ContainerRef) -> Event:
    """``dataclasses.replace(ev, container=ref)``, cheaper: the event types are frozen slotted
    dataclasses without ``__post_init__``, so a new instance gets every other slot as it is."""
    cls = type(ev)
    copier = _COPIERS.get(cls)
    if copier is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name != "container")
        copier = _COPIERS[cls] = (operator.attrgetter(*names), names)
    get, names = copier
    new = cls.__new__(cls)
    for name, value in zip(names, get(ev), strict=True):
        _set(new, name, value)
    _set(new, "container", ref)
    return new


_set = object.__setattr__
