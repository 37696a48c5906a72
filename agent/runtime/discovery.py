# SPDX-License-Identifier: Apache-2.0
"""Container discovery: the Docker API (initial list + events stream, reconnecting when dockerd
restarts) and a cgroup scan for runtimes without an API here (containerd, CRI-O, podman).

Both keep ``ContainerRegistry`` current; a container that starts or stops is reflected within a
second (Docker events arrive at once; the cgroup scan runs every ``runtime.cgroup_scan_seconds``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from agent.hostfs import HostPaths
from agent.pipeline import Periodic
from agent.runtime.cgroups import (
    ProcessGone,
    cgroup_id_of,
    cgroup_pids,
    match_container_cgroup,
    read_proc_cgroup,
)
from agent.runtime.docker import container_from_inspect, docker_client, docker_sdk
from agent.runtime.model import Container, ContainerRegistry
from agent.runtime.netns import netns_inode
from agent.settings.core import RuntimeSettings

log = structlog.get_logger("agent.runtime")

# "kill" is sent for any signal (a SIGHUP leaves the container running): only die/stop/destroy
# mean it is gone.
_STOP_ACTIONS = {"die", "stop", "destroy"}


class DockerWatcher:
    """Follows dockerd: lists running containers, then applies the events stream."""

    def __init__(self, paths: HostPaths, settings: RuntimeSettings, registry: ContainerRegistry) -> None:
        self.paths = paths
        self.settings = settings
        self.registry = registry
        self.connected = False
        self.reconnects = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._client: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="docker-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(5)
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass

    def _run(self) -> None:
        docker = docker_sdk()
        DockerException = docker.errors.DockerException

        was_down_logged = False
        while not self._stop.is_set():
            try:
                self._client = docker_client(self.settings.docker_url, timeout=10)
                # Subscribe first, then list: a container started in between is in the stream.
                since = int(time.time()) - 1
                self._stream = self._client.events(decode=True, filters={"type": "container"}, since=since)
                self.resync()
                self.connected = True
                was_down_logged = False
                log.info("docker_connected", url=self.settings.docker_url, containers=len(self.registry))
                for ev in self._iter(self._stream):
                    self._apply(ev)
                if not self._stop.is_set():
                    raise ConnectionError("events stream ended")
            except (DockerException, OSError, ConnectionError, ValueError) as exc:
                self.last_error = str(exc)
                if self.connected or not was_down_logged:
                    log.warning("docker_unavailable", url=self.settings.docker_url, error=str(exc)[:300])
                    was_down_logged = True
                self.connected = False
            except Exception as exc:  # the requests/urllib3 stack raises its own families
                self.last_error = repr(exc)
                if self.connected or not was_down_logged:
                    log.warning("docker_unavailable", url=self.settings.docker_url, error=repr(exc)[:300])
                    was_down_logged = True
                self.connected = False
            finally:
                self._stream = None
            if self._stop.wait(self.settings.reconnect_seconds):
                return
            self.reconnects += 1

    def _iter(self, stream: Any) -> Iterator[dict[str, Any]]:
        for ev in stream:
            if self._stop.is_set():
                return
            if isinstance(ev, dict):
                yield ev

    def resync(self) -> None:
        """Make the registry's Docker containers exactly the running ones."""
        assert self._client is not None
        running: set[str] = set()
        for summary in self._client.api.containers(quiet=True):
            cid = summary["Id"]
            if self._inspect_and_add(cid):
                running.add(cid)
        for c in self.registry.all():
            if c.runtime == "docker" and c.id not in running:
                self.registry.remove(c.id)
                log.info("container_removed", container_id=c.short_id, container_name=c.name, reason="resync")

    def _inspect_and_add(self, cid: str) -> bool:
        NotFound = docker_sdk().errors.NotFound

        assert self._client is not None
        try:
            attrs = self._client.api.inspect_container(cid)
        except NotFound:
            return False  # gone between list and inspect: normal
        c = container_from_inspect(self.paths, attrs)
        if c is None:
            return False
        what = self.registry.upsert(c)
        if what == "added":
            log.info(
                "container_discovered",
                container_id=c.short_id,
                container_name=c.name,
                image=c.image,
                runtime="docker",
                pid=c.init_pid,
                cgroup_id=c.cgroup_id,
            )
        return True

    def _apply(self, ev: dict[str, Any]) -> None:
        action = str(ev.get("Action") or ev.get("status") or "")
        cid = str(ev.get("id") or (ev.get("Actor") or {}).get("ID") or "")
        if not cid:
            return
        action = action.split(":", 1)[0]
        if action in ("start", "unpause", "restart"):
            self._inspect_and_add(cid)
        elif action in _STOP_ACTIONS:
            c = self.registry.remove(cid)
            if c is not None:
                log.info("container_removed", container_id=c.short_id, container_name=c.name, reason=action)
        elif action in ("rename", "update") and cid in self.registry.ids():
            self._inspect_and_add(cid)


class CgroupScanner:
    """Finds containers of runtimes we have no API for by their cgroup path patterns."""

    def __init__(
        self,
        paths: HostPaths,
        settings: RuntimeSettings,
        registry: ContainerRegistry,
        skip_runtimes: frozenset[str] = frozenset(),
    ) -> None:
        self.paths = paths
        self.settings = settings
        self.registry = registry
        self.skip_runtimes = skip_runtimes
        self.scans = 0
        self._timer = Periodic("cgroup-scan", settings.cgroup_scan_seconds, self.scan, run_first=True)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def _roots(self) -> list[tuple[str, Path]]:
        """(hierarchy name, mount) pairs to walk: cgroup2, else a v1 controller present on every
        host (pids, then cpu)."""
        mode = self.paths.cgroup_mode()
        roots: list[tuple[str, Path]] = []
        if mode in ("v2", "hybrid"):
            roots.append(("", self.paths.cgroup_v2))
        if mode in ("v1", "hybrid"):
            for ctrl in ("pids", "cpu", "memory"):
                if self.paths.cgroup_v1(ctrl).is_dir():
                    roots.append((ctrl, self.paths.cgroup_v1(ctrl)))
                    break
        return roots

    def scan(self) -> dict[str, Container]:
        """One pass: add new containers, remove vanished ones (of the runtimes we scan)."""
        self.scans += 1
        found: dict[str, Container] = {}
        for hier, root in self._roots():
            for rel in _walk(root, max_depth=7):
                m = match_container_cgroup(rel)
                if m is None or m[2] != rel:
                    continue
                runtime, cid, cpath = m
                if runtime in self.skip_runtimes or cid in found:
                    continue
                pids = cgroup_pids(root / cpath.lstrip("/"))
                if not pids:
                    continue  # an empty cgroup the runtime has not removed yet: no container
                known = self.registry.get(cid)
                if known is not None and known.id == cid and known.init_pid in pids:
                    found[cid] = known
                    continue
                c = self._container_from_cgroup(hier, runtime, cid, pids)
                if c is not None:
                    found[cid] = c
        for c in found.values():
            if self.registry.upsert(c) == "added":
                log.info(
                    "container_discovered",
                    container_id=c.short_id,
                    container_name=c.name,
                    runtime=c.runtime,
                    pid=c.init_pid,
                    cgroup_id=c.cgroup_id,
                    via="cgroup_scan",
                )
        for c in self.registry.all():
            scanned = c.runtime not in self.skip_runtimes and c.details.get("discovered_by") == "cgroup_scan"
            if scanned and c.id not in found:
                self.registry.remove(c.id)
                log.info("container_removed", container_id=c.short_id, container_name=c.name, reason="cgroup_gone")
        return found

    def _container_from_cgroup(self, hier: str, runtime: str, cid: str, pids: set[int]) -> Container | None:
        for pid in sorted(pids):
            try:
                cg = read_proc_cgroup(self.paths, pid)
            except ProcessGone:
                continue
            v1 = {}
            for ctrl, p in cg.v1.items():
                mm = match_container_cgroup(p)
                v1[ctrl] = mm[2] if mm else p
            v2 = ""
            if cg.v2 not in (None, "", "/"):
                mm = match_container_cgroup(cg.v2 or "")
                v2 = mm[2] if mm else (cg.v2 or "")
            return Container(
                id=cid,
                name=f"{runtime}-{cid[:12]}",
                image="",
                image_id="",
                runtime=runtime,
                init_pid=pid,
                cgroup_v1=v1,
                cgroup_v2=v2,
                cgroup_id=cgroup_id_of(self.paths, v2) if v2 else 0,
                netns_inode=netns_inode(self.paths, pid),
                labels={},
                started_at=_start_time(self.paths, pid),
                details={"discovered_by": "cgroup_scan", "hierarchy": hier or "v2"},
            )
        return None


def _walk(root: Path, max_depth: int) -> Iterator[str]:
    """Relative paths ("/a/b") of cgroup directories below ``root``."""
    stack: list[tuple[Path, str, int]] = [(root, "", 0)]
    while stack:
        path, rel, depth = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for e in entries:
            try:
                if not e.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            sub = f"{rel}/{e.name}"
            yield sub
            if depth + 1 < max_depth:
                stack.append((Path(e.path), sub, depth + 1))


def _start_time(paths: HostPaths, pid: int) -> float:
    try:
        return paths.pid_dir(pid).stat().st_mtime
    except OSError:
        return 0.0


class Discovery:
    """The runtime component: Docker watcher + cgroup scanner over one registry."""

    name = "runtime"

    def __init__(self, paths: HostPaths, settings: RuntimeSettings, registry: ContainerRegistry) -> None:
        self.docker = DockerWatcher(paths, settings, registry) if settings.docker else None
        self.scanner = (
            CgroupScanner(
                paths,
                settings,
                registry,
                skip_runtimes=frozenset({"docker"}) if settings.docker else frozenset(),
            )
            if settings.cgroup_scan
            else None
        )
        self.registry = registry

    def start(self) -> None:
        if self.docker:
            self.docker.start()
        if self.scanner:
            self.scanner.start()

    def stop(self) -> None:
        if self.docker:
            self.docker.stop()
        if self.scanner:
            self.scanner.stop()

    def status(self) -> dict[str, Any]:
        return {
            "containers": len(self.registry),
            "docker": None
            if self.docker is None
            else {
                "connected": self.docker.connected,
                "reconnects": self.docker.reconnects,
                "last_error": self.docker.last_error,
            },
            "cgroup_scan": None if self.scanner is None else {"scans": self.scanner.scans},
        }
