# SPDX-License-Identifier: Apache-2.0
"""The fast path's own freezer writes: control files opened ahead of a stop, one write(2), a
sleeping poll (``agent.response.fastpath``; the handler's ``agent.response.freeze`` then
confirms and records)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from agent.hostfs import HostPaths
from agent.response.freeze import FreezeError, freezer_of
from agent.runtime.model import Container

BOOST_MAX = 64  # threads of a container boosted while it freezes (the rest wait their turn)


class Freezers:
    """The freezer control files of the enforcing containers, opened ahead of a stop (when the
    kernel is told the container's rules), so the fast path's freeze is one write(2) on an open
    fd: no path walk, no allocation, no log line before it. After the write it polls the state
    with short sleeps (20 µs, doubling up to 200 µs) instead of spinning: the container's tasks
    must get a CPU to reach the refrigerator, and on a small busy host a spinning freezer thread
    takes it from them. The handler's own freeze then confirms and records (one more write and
    read). Files of a container that left are closed when the container set is pruned."""

    def __init__(self, paths: HostPaths, method: str, limit: int = 1024, boost: bool = False) -> None:
        self.paths = paths
        self.method = method
        self.limit = limit
        # Run the container's threads SCHED_FIFO from the write until the freezer reads FROZEN
        # (response.kernel_stop.realtime): each was sent the freezer's fake signal, so it enters
        # the refrigerator before it returns to user mode; it only needs a CPU now.
        self.boost = boost
        self._open: dict[str, tuple[str, int, int]] = {}  # container id -> (kind, write fd, read fd)
        self._tasks: dict[str, Path] = {}  # container id -> its cgroup's thread list

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
        self._tasks[c.id] = cgdir / ("tasks" if kind == "v1" else "cgroup.threads")
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
        boosted = self._boost(c.id) if self.boost and not _frozen(kind, os.pread(rfd, 64, 0)) else []
        try:
            while not _frozen(kind, os.pread(rfd, 64, 0)):
                if time.monotonic() > deadline:
                    return _state_name(kind, before)
                time.sleep(delay)
                delay = min(delay * 2, 2e-4)
        except OSError:
            return _state_name(kind, before)
        finally:
            _restore(boosted)
        marks.append(time.monotonic_ns())
        return _state_name(kind, before)

    def _boost(self, container_id: str) -> list[tuple[int, int, int]]:
        """SCHED_FIFO (reset on fork) for the cgroup's first BOOST_MAX threads; their policies
        before, to restore."""
        out: list[tuple[int, int, int]] = []
        try:
            tids = self._tasks[container_id].read_text().split()[:BOOST_MAX]
        except (KeyError, OSError):
            return out
        fifo = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
        for t in tids:
            tid = int(t)
            try:
                policy, prio = os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority
                os.sched_setscheduler(tid, fifo, os.sched_param(1))
                out.append((tid, policy, prio))
            except OSError:
                continue  # gone, or already real-time
        return out

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


def _restore(boosted: list[tuple[int, int, int]]) -> None:
    for tid, policy, prio in boosted:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(tid, policy, os.sched_param(prio))


def _frozen(kind: str, raw: bytes) -> bool:
    return raw.strip() == b"FROZEN" if kind == "v1" else b"frozen 1" in raw


def _state_name(kind: str, raw: bytes) -> str:
    if _frozen(kind, raw):
        return "frozen"
    if kind == "v1":
        return "freezing" if raw.strip() == b"FREEZING" else "thawed"
    return "thawed"
