# SPDX-License-Identifier: Apache-2.0
"""One scan: open a root (directory, running container, overlay layers or image tarball), read
its inventory, match it. Used by the CLI and by the daemon component."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agent.hostfs import HostPaths
from agent.vuln.db import VulnDB
from agent.vuln.inventory import Inventory, read_inventory
from agent.vuln.matcher import Match, Matcher
from agent.vuln.rootfs import DirRoot, LayeredRoot, Root, RootError
from agent.vuln.sandbox import SandboxLimits, run_isolated
from agent.vuln.tarroot import TarImageRoot

log = structlog.get_logger("agent.vuln")


class ScanError(Exception):
    """The target could not be scanned (missing, not running, unreadable)."""


@dataclass
class ScanResult:
    """Inventory and matches of one target."""

    target: str
    inventory: Inventory
    matches: list[Match]
    image_id: str = ""
    db_generation: int = 0
    scanned_at: float = field(default_factory=time.time)
    read_seconds: float = 0.0
    match_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        by_sev: dict[str, int] = {}
        for m in self.matches:
            by_sev[m.severity] = by_sev.get(m.severity, 0) + 1
        return {
            "target": self.target,
            "image_id": self.image_id,
            "os": self.inventory.os.pretty_name or self.inventory.os.osv_ecosystem,
            "packages": len(self.inventory.packages),
            "vulnerabilities": len(self.matches),
            "by_severity": by_sev,
            "skipped": dict(self.inventory.skipped),
            "scanned_at": self.scanned_at,
            "db_generation": self.db_generation,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "matches": [m.to_dict() for m in self.matches]}


def root_spec(root: Root) -> dict[str, Any]:
    """A description of ``root`` a sandbox child can reopen (``{"dir": …}`` or ``{"layers": […]}``)."""
    if isinstance(root, DirRoot):
        return {"dir": str(root.path)}
    if isinstance(root, LayeredRoot):
        return {"layers": [str(layer.path) for layer in root.layers]}
    raise ScanError(f"a {type(root).__name__} cannot be reopened in a sandbox")


def inventory_of_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Open the root ``spec`` names and return its inventory as a dict (runs in the sandbox child)."""
    root: Root = DirRoot(spec["dir"]) if "dir" in spec else LayeredRoot(list(spec["layers"]))
    try:
        return read_inventory(root).to_dict()
    finally:
        root.close()


def read_inventory_isolated(root: Root, limits: SandboxLimits) -> Inventory:
    """``read_inventory(root)`` in a sandbox child bounded by ``limits`` (``SandboxError`` if not)."""
    return Inventory.from_dict(run_isolated(inventory_of_spec, root_spec(root), limits=limits))


def scan_root(root: Root, db: VulnDB, target: str = "", image_id: str = "") -> ScanResult:
    """Read ``root``'s inventory and match it against ``db``."""
    t0 = time.monotonic()
    inv = read_inventory(root)
    t1 = time.monotonic()
    matches = Matcher(db).match(inv)
    t2 = time.monotonic()
    return ScanResult(
        target=target or root.label,
        inventory=inv,
        matches=matches,
        image_id=image_id,
        db_generation=db.generation(),
        read_seconds=t1 - t0,
        match_seconds=t2 - t1,
    )


def open_container_root(paths: HostPaths, pid: int, details: Mapping[str, Any] | None = None) -> Root:
    """A running container's root through ``/proc/<pid>/root``; its overlay layers when the
    process is gone but Docker still reports the layer directories (host paths, read under
    ``paths.root``)."""
    if pid > 0:
        try:
            return DirRoot(paths.pid_root(pid))
        except RootError as exc:
            log.debug("container_root_unavailable", pid=pid, error=str(exc))
    d = details or {}
    reported = [d.get("upper_dir", ""), *(d.get("lower_dirs") or [])]
    layers: list[str | os.PathLike[str]] = [paths.host(p) for p in reported if p]
    if layers:
        return LayeredRoot(layers)
    raise ScanError(f"no readable root for pid {pid} and no overlay layers")


def docker_target(ref: str, kind: str, docker_url: str) -> tuple[Any, str]:
    """The docker SDK object for a container or image ``ref`` on the dockerd at ``docker_url``
    (``runtime.docker_url``); a ScanError when unknown or unreachable."""
    from agent.runtime.docker import docker_client, docker_sdk

    docker = docker_sdk()
    try:
        client = docker_client(docker_url, timeout=60)
        obj = client.containers.get(ref) if kind == "container" else client.images.get(ref)
    except docker.errors.NotFound:
        raise ScanError(f"no such {kind}: {ref}") from None
    except docker.errors.DockerException as exc:
        raise ScanError(f"cannot reach Docker: {exc}") from None
    return obj, str(obj.id)


def open_image_tarball(ref: str, workdir: Path, docker_url: str) -> TarImageRoot:
    """An image's merged filesystem: ``ref`` is a ``docker save`` tarball path or an image of the
    dockerd at ``docker_url``."""
    if Path(ref).is_file():
        return TarImageRoot(ref)
    image, _ = docker_target(ref, "image", docker_url)
    out = workdir / "image.tar"
    with out.open("wb") as f:
        for chunk in image.save(named=True):
            f.write(chunk)
    return TarImageRoot(out)


def scan_image(ref: str, db: VulnDB, docker_url: str) -> ScanResult:
    with tempfile.TemporaryDirectory(prefix="rg-vuln-") as tmp:
        root = open_image_tarball(ref, Path(tmp), docker_url)
        try:
            return scan_root(root, db, target=ref, image_id=root.image_id)
        finally:
            root.close()


def scan_container(ref: str, db: VulnDB, docker_url: str, paths: HostPaths | None = None) -> ScanResult:
    from agent.runtime.docker import details_from_inspect

    c, cid = docker_target(ref, "container", docker_url)
    attrs = c.attrs
    pid = int((attrs.get("State") or {}).get("Pid") or 0)
    root = open_container_root(paths or HostPaths(), pid, details_from_inspect(attrs))
    try:
        return scan_root(root, db, target=cid, image_id=str(attrs.get("Image", "")))
    finally:
        root.close()
