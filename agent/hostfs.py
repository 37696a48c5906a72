# SPDX-License-Identifier: Apache-2.0
"""Every host path the agent reads or writes, in one injectable value.

Nothing else in the agent spells a host path: code receives a ``HostPaths`` and asks it. Tests
point the whole agent at a captured host tree with ``HostPaths.under(tmp_path)``.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class HostPaths:
    """Roots of the host's kernel and runtime interfaces."""

    root: Path = Path("/")  # where the host's ``/`` is mounted (``host.root``: ``/host`` in a DaemonSet)
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    cgroup: Path = Path("/sys/fs/cgroup")
    tracefs: Path = Path("/sys/kernel/tracing")
    btf_vmlinux: Path = Path("/sys/kernel/btf/vmlinux")
    run_netns: Path = Path("/run/netns")
    docker_root: Path = Path("/var/lib/docker")
    docker_socket: Path = Path("/var/run/docker.sock")
    containerd_socket: Path = Path("/run/containerd/containerd.sock")
    crio_socket: Path = Path("/var/run/crio/crio.sock")
    pod_logs: Path = Path("/var/log/pods")
    audit_log: Path = Path("/var/log/audit/audit.log")
    etc: Path = Path("/etc")
    run: Path = Path("/run/riskguard")
    state: Path = Path("/var/lib/riskguard")
    cni_bin: Path = Path("/usr/lib/cni")

    @classmethod
    def under(cls, root: str | os.PathLike[str]) -> HostPaths:
        """Return the default paths re-rooted below ``root`` (a captured host tree in tests)."""
        base = Path(root)
        values = {}
        for f in dataclasses.fields(cls):
            default = f.default
            assert isinstance(default, Path)
            values[f.name] = base / default.relative_to("/")
        return cls(**values)

    def with_state(self, state: Path, run: Path | None = None) -> HostPaths:
        """Return a copy whose agent-owned directories are ``state`` (and ``run``)."""
        return dataclasses.replace(self, state=state, run=run if run is not None else self.run)

    def in_state(self, configured: Path) -> Path:
        """A path from the config: an absolute one as given, a relative one (every default:
        ``alerts.jsonl``, ``vulndb.sqlite``…) under the state directory (``state.dir``)."""
        return self.state / configured

    def host(self, path: str | os.PathLike[str]) -> Path:
        """A path as the host names it (Docker inspect's overlay2 dirs, ``LogPath``, a mount
        source) re-rooted under ``root``; ``..`` cannot climb above it, a relative path is
        taken from the host's ``/``."""
        rel = posixpath.normpath("/" + os.fspath(path)).lstrip("/")
        return self.root / rel if rel else self.root

    # --- /proc ---------------------------------------------------------------------------
    def pid_dir(self, pid: int) -> Path:
        return self.proc / str(pid)

    def pid_root(self, pid: int) -> Path:
        """The process's root directory as the kernel exposes it (a container's filesystem)."""
        return self.proc / str(pid) / "root"

    def pid_netns(self, pid: int) -> Path:
        return self.proc / str(pid) / "ns" / "net"

    # --- cgroups -------------------------------------------------------------------------
    def cgroup_v1(self, controller: str) -> Path:
        return self.cgroup / controller

    @property
    def cgroup_v2(self) -> Path:
        """The cgroup2 mount: ``/sys/fs/cgroup`` on a unified host, ``.../unified`` on hybrid."""
        unified = self.cgroup / "unified"
        if (unified / "cgroup.controllers").exists() or (unified / "cgroup.procs").exists():
            return unified
        return self.cgroup

    def cgroup_mode(self) -> str:
        """``v2`` (unified), ``hybrid`` (v1 controllers + v2 at ``unified``) or ``v1``."""
        if (self.cgroup / "cgroup.controllers").exists():
            return "v2"
        if (self.cgroup / "unified" / "cgroup.procs").exists():
            return "hybrid"
        return "v1"

    def docker_container_dir(self, container_id: str) -> Path:
        return self.docker_root / "containers" / container_id
