# SPDX-License-Identifier: Apache-2.0
"""Config sections of the agent itself: ``log``, ``host``, ``state``, ``control``, ``runtime``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from agent.settings.base import Section


class LogSettings(Section):
    """The agent's own log: JSON lines on stdout (journald keeps them)."""

    # Lowest level logged: debug, info, warning or error.
    level: Literal["debug", "info", "warning", "error"] = "info"
    # auto: JSON lines, or a readable console rendering when stdout is a terminal.
    format: Literal["auto", "json", "console"] = "auto"


class StateSettings(Section):
    """The agent's persistent state."""

    # The agent's state: the sqlite store (agent.db), models, alerts; created 0700.
    dir: Path = Path("/var/lib/riskguard")


class ControlSettings(Section):
    """The operator's control socket (riskguardctl)."""

    # The control socket riskguardctl talks to; created 0600 in a 0700 directory, root only.
    socket: Path = Path("/run/riskguard/agent.sock")


class HostSettings(Section):
    """Where the host's kernel and runtime interfaces are seen from (a DaemonSet mounts them under /host)."""

    # Root under which the host's /proc, /sys, /var/lib/docker… are found: "/" on a host, the
    # host mount (e.g. /host) in a DaemonSet pod.
    root: Path = Path("/")


class RuntimeSettings(Section):
    """Container discovery: Docker's API, and a cgroup scan for containerd, CRI-O and podman."""

    # Follow Docker through its API (container list + events stream).
    docker: bool = True
    # Where this host's dockerd listens (the docker SDK's base_url): unix://, tcp://, http:// or
    # https://. ssh:// is refused: the agent watches the containers of the host it runs on.
    docker_url: str = "unix:///var/run/docker.sock"
    # Seconds between reconnect attempts while dockerd is down.
    reconnect_seconds: float = Field(default=1.0, gt=0)
    # cgroup/proc scan for runtimes without an API here (containerd, CRI-O, podman).
    cgroup_scan: bool = True
    # Seconds between two cgroup scans (a new container is seen within this time).
    cgroup_scan_seconds: float = Field(default=0.5, gt=0)
    # Also watch processes that belong to no container (the host itself). Off: host processes
    # are ignored by every source.
    include_host: bool = False
    # The container runtime's executables on the host: names looked up in the host's sbin/bin
    # directories, or absolute host paths (under host.root, else through /proc/1/root).
    # `docker exec` and HEALTHCHECK run `runc init` inside the container's cgroup; a process
    # running one of these files (same inode and device, so a container cannot pass for it by
    # name) is the runtime's: its syscalls, memory and threads are not the container's behaviour.
    executables: tuple[str, ...] = ("runc", "crun", "youki", "runsc")

    @field_validator("docker_url")
    @classmethod
    def _local_docker(cls, v: str) -> str:
        scheme = v.partition("://")[0].lower() if "://" in v else ""
        if scheme not in ("unix", "tcp", "http", "https"):
            raise ValueError(f"{v!r}: use unix://, tcp://, http:// or https:// (the dockerd of this host)")
        return v


class CoreSections(Section):
    """The agent's own sections, first in ``agent.yaml`` (``AgentConfig`` includes them)."""

    log: LogSettings = LogSettings()
    host: HostSettings = HostSettings()
    state: StateSettings = StateSettings()
    control: ControlSettings = ControlSettings()
    runtime: RuntimeSettings = RuntimeSettings()
