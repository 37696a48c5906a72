# SPDX-License-Identifier: Apache-2.0
"""The fast path's own freezer writes: control files opened ahead of a stop, one write(2), a
sleeping poll (``agent.response.fastpath``; the handler's ``agent.response.freeze`` then
confirms and records)."""

from __future__ import annotations

import contextlib
import os
import time

from agent.hostfs import HostPaths
from agent.response.freeze import FreezeError, freezer_of
from agent.runtime.model import Container


class Freezers:
    """The freezer control files of the enforcing containers, opened ahead of a stop (when the
    kernel is told the container's rules), so the fast path's freeze is one write(2) on an open
    fd: no path walk, no allocation, no log line before it. After the write it polls the state
    with short sleeps (20 µs, doubling up to 200 µs) instead of spinning: the container's tasks
    must get a CPU to reach the refrigerator, and on a small busy host a spinning freezer thread
    takes it from them. The handler's own freeze then confirms and records (one more write and
    read). Files of a container that left are closed when the container set is pruned."""

    def __init__(self, paths: HostPaths, method: str, limit: int = 1024) -> None:
        self.paths = paths
        self.method = method
        self.limit = limit
        self._open: dict[str, tuple[str, int, int]] = {}  # container id -> (kind, write fd, read fd)

    def prepare(self, c: Container) -> tuple[str, int, int] | None:
        """Open ``c``'s freezer files (once); ``None`` when it has none (the handler reports why)."""
        got = self._open.get(c.id)
        if got is not None:
            return got
        if len(self._open) >= self.limit:
            return None
        try:
            kind, cgdir = freezer_of(self.paths, c, self.method)
            wname, rname = ("freezer.state", "freezer.state") if kind == "v1" else ("cgroup.freeze", "cgroup.events")
            wfd = os.open(cgdir / wname, os.O_WRONLY | os.O_CLOEXEC)
        except (FreezeError, OSError):
            return None
        try:
            rfd = os.open(cgdir / rname, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(wfd)
            return None
        self._open[c.id] = got = (kind, wfd, rfd)
        return got

    def freeze(self, c: Container, timeout: float, marks: list[int]) -> str:
        """Write the freeze, then poll until the kernel reads frozen (``timeout`` s at most);
        ``marks`` gets the ns the write returned and the ns it read frozen. Returns the state
        read before the write ("thawed", "freezing", "frozen"), "" when the fast write was not
        possible (the handler then does all of it)."""
        got = self.prepare(c)
        if got is None:
            return ""
        kind, wfd, rfd = got
        try:
            before = os.pread(rfd, 64, 0)
            os.write(wfd, b"FROZEN" if kind == "v1" else b"1")
        except OSError:
            self.forget(c.id)  # the cgroup is gone or moved: the handler finds out and says so
            return ""
        marks.append(time.monotonic_ns())
        deadline = time.monotonic() + timeout
        delay = 20e-6
        try:
            while not _frozen(kind, os.pread(rfd, 64, 0)):
                if time.monotonic() > deadline:
                    return _state_name(kind, before)
                time.sleep(delay)
                delay = min(delay * 2, 2e-4)
        except OSError:
            return _state_name(kind, before)
        marks.append(time.monotonic_ns())
        return _state_name(kind, before)

    def forget(self, container_id: str) -> None:
        got = self._open.pop(container_id, None)
        if got is not None:
            for fd in got[1:]:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def prune(self, live: set[str]) -> None:
        """Close the files of the containers not in ``live``."""
        for cid in [k for k in self._open if k not in live]:
            self.forget(cid)

    def close(self) -> None:
        self.prune(set())


def _frozen(kind: str, raw: bytes) -> bool:
    return raw.strip() == b"FROZEN" if kind == "v1" else b"frozen 1" in raw


def _state_name(kind: str, raw: bytes) -> str:
    if _frozen(kind, raw):
        return "frozen"
    if kind == "v1":
        return "freezing" if raw.strip() == b"FREEZING" else "thawed"
    return "thawed"
