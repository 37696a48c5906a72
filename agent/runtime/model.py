# SPDX-License-Identifier: Apache-2.0
"""The container record and the registry that answers "which container is this pid / cgroup?"."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.events import ContainerRef


@dataclass(frozen=True, slots=True)
class Container:
    """Everything the agent knows of one running container."""

    id: str
    name: str
    image: str
    image_id: str
    runtime: str  # docker | containerd | cri-o | podman
    init_pid: int
    cgroup_v1: Mapping[str, str] = field(default_factory=dict)  # controller -> path below its mount
    cgroup_v2: str = ""  # path below the cgroup2 mount ("" when the container has none)
    cgroup_id: int = 0  # inode of the v2 cgroup dir: what bpf_get_current_cgroup_id() returns
    netns_inode: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    # Runtime-specific details the agent may need later (Docker inspect subset: network mode,
    # networks, ports, mounts, capabilities, log path, overlay dirs …).
    details: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def ref(self) -> ContainerRef:
        return ContainerRef(
            id=self.id,
            name=self.name,
            image=self.image,
            image_id=self.image_id,
            runtime=self.runtime,
            labels=dict(self.labels),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "image": self.image,
            "image_id": self.image_id,
            "runtime": self.runtime,
            "init_pid": self.init_pid,
            "cgroup_v1": dict(self.cgroup_v1),
            "cgroup_v2": self.cgroup_v2,
            "cgroup_id": self.cgroup_id,
            "netns_inode": self.netns_inode,
            "labels": dict(self.labels),
            "started_at": self.started_at,
        }


Listener = Callable[[str, Container], None]  # ("added" | "removed" | "updated", container)


class ContainerRegistry:
    """The set of discovered containers, indexed by id, cgroup id, cgroup path and netns.

    Thread-safe. Listeners are called outside the lock, in the discovering thread.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_id: dict[str, Container] = {}
        self._by_cgroup_id: dict[int, str] = {}
        self._by_cgroup_path: dict[str, str] = {}
        self._listeners: list[Listener] = []

    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def _notify(self, what: str, c: Container) -> None:
        for fn in list(self._listeners):
            fn(what, c)

    def upsert(self, c: Container) -> str:
        """Add or update ``c``; return "added", "updated" or "" (unchanged)."""
        with self._lock:
            old = self._by_id.get(c.id)
            if old == c:
                return ""
            if old is not None:
                self._unindex(old)
            self._by_id[c.id] = c
            if c.cgroup_id:
                self._by_cgroup_id[c.cgroup_id] = c.id
            for p in (*c.cgroup_v1.values(), c.cgroup_v2):
                if p:
                    self._by_cgroup_path[p] = c.id
            what = "updated" if old is not None else "added"
        self._notify(what, c)
        return what

    def remove(self, container_id: str) -> Container | None:
        with self._lock:
            c = self._by_id.pop(container_id, None)
            if c is not None:
                self._unindex(c)
        if c is not None:
            self._notify("removed", c)
        return c

    def _unindex(self, c: Container) -> None:
        if self._by_cgroup_id.get(c.cgroup_id) == c.id:
            del self._by_cgroup_id[c.cgroup_id]
        for p in (*c.cgroup_v1.values(), c.cgroup_v2):
            if p and self._by_cgroup_path.get(p) == c.id:
                del self._by_cgroup_path[p]

    def get(self, container_id: str) -> Container | None:
        """By full id, or by a unique id prefix (≥ 4 chars), or by exact name."""
        with self._lock:
            c = self._by_id.get(container_id)
            if c is not None:
                return c
            if len(container_id) >= 4:
                hits = [v for k, v in self._by_id.items() if k.startswith(container_id)]
                if len(hits) == 1:
                    return hits[0]
            named = [v for v in self._by_id.values() if v.name == container_id]
            return named[0] if len(named) == 1 else None

    def by_cgroup_id(self, cgroup_id: int) -> Container | None:
        with self._lock:
            cid = self._by_cgroup_id.get(cgroup_id)
            return self._by_id.get(cid) if cid else None

    def by_cgroup_path(self, path: str) -> Container | None:
        """By a cgroup path (below a mount), or any path nested inside a container's cgroup."""
        with self._lock:
            p = path
            while p and p != "/":
                cid = self._by_cgroup_path.get(p)
                if cid:
                    return self._by_id.get(cid)
                p = p.rsplit("/", 1)[0]
            return None

    def all(self) -> list[Container]:
        with self._lock:
            return sorted(self._by_id.values(), key=lambda c: c.name)

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._by_id)

    def cgroup_ids(self) -> set[int]:
        with self._lock:
            return set(self._by_cgroup_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)
