# SPDX-License-Identifier: Apache-2.0
"""Which container logs to tail (Docker json-file/local, CRI files under ``/var/log/pods``) and
the set of tailers that reads them all once per poll, one log's failure isolated from the others.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agent.events import ContainerRef
from agent.hostfs import HostPaths
from agent.runtime.model import ContainerRegistry
from agent.sources.logs import OFFSETS_NS, LogTailer, LogTarget, RawLine
from agent.store import Store

log = structlog.get_logger("agent.sources.logs")

SUPPORTED_DOCKER_DRIVERS = ("json-file", "local")


def discover_targets(
    paths: HostPaths, registry: ContainerRegistry, drivers: Iterable[str] = SUPPORTED_DOCKER_DRIVERS, cri: bool = True
) -> tuple[list[LogTarget], Counter[str]]:
    """Logs of the registry's Docker containers and of CRI pods; unsupported drivers counted."""
    targets: list[LogTarget] = []
    unsupported: Counter[str] = Counter()
    allowed = set(drivers)
    by_cri: dict[tuple[str, str], ContainerRef] = {}
    for c in registry.all():
        labels = c.labels or {}
        uid = labels.get("io.kubernetes.pod.uid")
        cname = labels.get("io.kubernetes.container.name")
        if uid and cname:
            by_cri[(uid, cname)] = c.ref()
        if c.runtime != "docker":
            continue
        driver = str((c.details or {}).get("log_driver") or "json-file")
        cdir = _container_dir(paths, c.id, str((c.details or {}).get("log_path") or ""))
        if driver == "json-file" and driver in allowed:
            targets.append(LogTarget(c.id, c.ref(), cdir / f"{c.id}-json.log", "json-file"))
        elif driver == "local" and driver in allowed:
            targets.append(LogTarget(c.id, c.ref(), cdir / "local-logs" / "container.log", "local"))
        else:
            unsupported[driver] += 1
    if cri and paths.pod_logs.is_dir():
        try:
            pods = sorted(paths.pod_logs.iterdir())
        except OSError:
            pods = []
        for pod in pods:
            # <namespace>_<pod>_<uid>/<container>/<restart>.log
            bits = pod.name.split("_")
            uid = bits[-1] if len(bits) >= 3 else ""
            try:
                cdirs = sorted(p for p in pod.iterdir() if p.is_dir())
            except OSError:
                continue
            for cdir in cdirs:
                logs = [p for p in cdir.glob("*.log") if p.stem.isdigit()]
                if not logs:
                    continue
                current = max(logs, key=lambda p: int(p.stem))
                ref = by_cri.get((uid, cdir.name)) or ContainerRef(
                    id=f"cri:{pod.name}/{cdir.name}", name=cdir.name, image="", runtime="cri"
                )
                targets.append(LogTarget(f"cri:{pod.name}/{cdir.name}/{current.stem}", ref, current, "cri"))
    return targets, unsupported


def _container_dir(paths: HostPaths, container_id: str, log_path: str) -> Path:
    """Where dockerd keeps the container's files: the folder of the ``LogPath`` it reports (its
    ``data-root`` may not be ``/var/lib/docker``: a second daemon, a moved data-root), else the
    default data-root's folder (the ``local`` driver reports no ``LogPath``)."""
    if log_path:
        return paths.host(log_path).parent
    return paths.docker_container_dir(container_id)


def _unsupported_by_container(registry: ContainerRegistry, drivers: Iterable[str]) -> list[tuple[str, str]]:
    allowed = set(drivers)
    out = []
    for c in registry.all():
        if c.runtime != "docker":
            continue
        driver = str((c.details or {}).get("log_driver") or "json-file")
        if driver not in allowed:
            out.append((c.id, driver))
    return out


@dataclass
class TailerSet:
    """The tailers of every discovered log; ``poll`` reads them all once."""

    paths: HostPaths
    registry: ContainerRegistry
    store: Store | None
    options: dict[str, Any] = field(default_factory=dict)
    drivers: tuple[str, ...] = SUPPORTED_DOCKER_DRIVERS
    cri: bool = True
    max_lines_per_poll: int = 10_000
    tailers: dict[str, LogTailer] = field(default_factory=dict)
    unsupported: Counter[str] = field(default_factory=Counter)
    _warned: set[str] = field(default_factory=set)

    def refresh(self) -> list[RawLine]:
        """Follow the discovered set; a log whose container left is read one last time."""
        targets, self.unsupported = discover_targets(self.paths, self.registry, self.drivers, self.cri)
        for key, driver in _unsupported_by_container(self.registry, self.drivers):
            if key not in self._warned:
                self._warned.add(key)
                log.warning("log_driver_unsupported", container_id=key, driver=driver[:64])
        want = {t.key + ":" + t.path.name: t for t in targets}
        final: list[RawLine] = []
        for k in list(self.tailers):
            if k not in want:
                tailer = self.tailers.pop(k)
                try:
                    final.extend(tailer.poll(self.max_lines_per_poll))
                except OSError:
                    pass
                tailer.close()
        for k, t in want.items():
            if k not in self.tailers:
                self.tailers[k] = LogTailer(t, self.store, **self.options)
        return final

    def poll(self) -> list[RawLine]:
        """Every tailer once; one log that fails (I/O, or content no check foresaw) is counted
        and skipped, the other containers' lines still come back."""
        out = self.refresh()
        for tailer in list(self.tailers.values()):
            try:
                out.extend(tailer.poll(self.max_lines_per_poll))
            except OSError as exc:
                log.warning("log_read_failed", container_id=tailer.target.key, error=str(exc)[:200])
            except Exception as exc:  # per-container isolation: the batch goes on
                tailer.stats.bad("tailer_failed")
                log.error("log_tail_failed", container_id=tailer.target.key, error=repr(exc)[:300])
        return out

    def prune_offsets(self) -> int:
        """Forget stored offsets of log files that no longer exist; returns how many."""
        if self.store is None:
            return 0
        gone = 0
        for key, raw in self.store.kv_items(OFFSETS_NS):
            try:
                path = json.loads(raw).get("path", "")
            except (ValueError, AttributeError):
                path = ""
            if path and not Path(path).exists():
                self.store.kv_delete(OFFSETS_NS, key)
                gone += 1
        return gone

    def close(self) -> None:
        for t in self.tailers.values():
            t.close()
        self.tailers.clear()

    def stats(self) -> dict[str, Any]:
        total: Counter[str] = Counter()
        per: dict[str, dict[str, int]] = {}
        for k, t in self.tailers.items():
            snap = t.stats.snapshot()
            per[k] = snap
            total.update(snap)
        reasons: Counter[str] = Counter()
        for t in self.tailers.values():
            reasons.update(t.stats.malformed_by_reason)
        return {
            "tailers": len(self.tailers),
            "totals": dict(total),
            "malformed_by_reason": dict(reasons),
            "per_log": per,
            "unsupported_drivers": dict(self.unsupported),
        }
