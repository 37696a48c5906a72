# SPDX-License-Identifier: Apache-2.0
"""Docker: the SDK as the agent imports it, and ``docker inspect`` data as ``Container`` records."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import ModuleType
from typing import Any

from agent.hostfs import HostPaths
from agent.runtime.cgroups import ProcessGone, cgroup_id_of, container_cgroups
from agent.runtime.model import Container
from agent.runtime.netns import netns_inode


class _NoDockerSsh(importlib.abc.MetaPathFinder):
    """Refuses docker-py's SSH transport module, which the SDK imports as optional."""

    BLOCKED = "docker.transport.sshconn"

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self.BLOCKED:
            raise ImportError(f"{fullname}: ssh:// Docker hosts are not used by riskguard-agent", name=fullname)
        return None


_sdk_lock = threading.Lock()


def docker_sdk() -> ModuleType:
    """The docker SDK, imported without its SSH transport.

    docker-py imports paramiko, and with it cryptography, PyNaCl and bcrypt, whenever paramiko is
    installed (python-gvm depends on it), only to offer ``ssh://`` daemon URLs: +19 MiB resident
    for the agent's lifetime. The agent watches the local host's dockerd (``unix://`` or
    ``tcp://``, see ``runtime.docker_url``), so the SDK's optional ``docker.transport.sshconn`` is
    refused (both places the SDK imports it catch ImportError). Every part of the agent imports
    the SDK through here.
    """
    with _sdk_lock:
        mod = sys.modules.get("docker")
        if mod is not None:
            return mod
        finder = _NoDockerSsh()
        sys.meta_path.insert(0, finder)
        try:
            importlib.import_module("docker")
        finally:
            sys.meta_path.remove(finder)
        return sys.modules["docker"]


def docker_client(url: str, timeout: float = 30) -> Any:
    """A docker SDK client for the dockerd at ``url`` (``runtime.docker_url``: the host's socket
    re-rooted under ``/host`` in the agent's image). Every Docker client of the agent is made
    here: ``docker.from_env()`` would follow ``DOCKER_HOST`` or the pod's own
    ``/var/run/docker.sock`` instead of the configured daemon."""
    return docker_sdk().DockerClient(base_url=url, timeout=timeout)


def _parse_time(value: str) -> float:
    if not value or value.startswith("0001-"):
        return 0.0
    # Docker prints nanoseconds; Python parses microseconds.
    head, _, frac = value.rstrip("Z").partition(".")
    frac = (frac[:6]).ljust(6, "0") if frac else "000000"
    try:
        return datetime.fromisoformat(f"{head}.{frac}+00:00").timestamp()
    except ValueError:
        return 0.0


def details_from_inspect(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of inspect data other subsystems need, in stable names."""
    host = attrs.get("HostConfig") or {}
    net = attrs.get("NetworkSettings") or {}
    graph = (attrs.get("GraphDriver") or {}).get("Data") or {}
    return {
        "network_mode": host.get("NetworkMode", ""),
        "networks": sorted((net.get("Networks") or {}).keys()),
        "ip_addresses": {name: n.get("IPAddress", "") for name, n in (net.get("Networks") or {}).items() if n},
        "ports": net.get("Ports") or {},
        "privileged": bool(host.get("Privileged")),
        "cap_add": list(host.get("CapAdd") or []),
        "cap_drop": list(host.get("CapDrop") or []),
        "pid_mode": host.get("PidMode", ""),
        "ipc_mode": host.get("IpcMode", ""),
        "mounts": [
            {
                "source": m.get("Source", ""),
                "destination": m.get("Destination", ""),
                "mode": m.get("Mode", ""),
                "rw": bool(m.get("RW")),
                "type": m.get("Type", ""),
            }
            for m in attrs.get("Mounts") or []
        ],
        "devices": list(host.get("Devices") or []),
        "log_path": attrs.get("LogPath", ""),
        "log_driver": (host.get("LogConfig") or {}).get("Type", ""),
        "upper_dir": graph.get("UpperDir", ""),
        "lower_dirs": [d for d in (graph.get("LowerDir") or "").split(":") if d],
        "merged_dir": graph.get("MergedDir", ""),
        "user": (attrs.get("Config") or {}).get("User", ""),
        "cmd": list((attrs.get("Config") or {}).get("Cmd") or []),
        "entrypoint": list((attrs.get("Config") or {}).get("Entrypoint") or []),
    }


def container_from_inspect(paths: HostPaths, attrs: Mapping[str, Any]) -> Container | None:
    """A ``Container`` for a running container's inspect data; ``None`` if it is not running or
    its init process is already gone."""
    state = attrs.get("State") or {}
    pid = int(state.get("Pid") or 0)
    if not state.get("Running") or pid <= 0:
        return None
    try:
        v1, v2 = container_cgroups(paths, pid)
    except ProcessGone:
        return None
    config = attrs.get("Config") or {}
    return Container(
        id=str(attrs["Id"]),
        name=str(attrs.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")),
        image_id=str(attrs.get("Image", "")),
        runtime="docker",
        init_pid=pid,
        cgroup_v1=v1,
        cgroup_v2=v2,
        cgroup_id=cgroup_id_of(paths, v2) if v2 else 0,
        netns_inode=netns_inode(paths, pid),
        labels=dict(config.get("Labels") or {}),
        started_at=_parse_time(str(state.get("StartedAt", ""))),
        details=details_from_inspect(attrs),
    )
