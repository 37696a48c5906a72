# SPDX-License-Identifier: Apache-2.0
"""``agent.yaml``: frozen pydantic models, unknown keys rejected, errors as dotted paths.

Each subsystem owns its section model (``agent/<subsystem>/settings.py``); this module composes
them. With no file at all the embedded defaults (``AgentConfig()``) run; ``config/agent.yaml``
documents every key and equals those defaults (a test keeps them in step).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from agent.actions.settings import KubernetesSettings, ResponseSettings
from agent.behavior.settings import BehaviorSettings
from agent.detectors.settings import DetectorsSettings
from agent.logs.settings import LogsSettings
from agent.netpolicy.settings import NetworkSettings
from agent.outputs.settings import OutputsSettings
from agent.settings_base import Section
from agent.sources.settings import AuditSettings, CaptureSettings, EbpfSettings, ProcfsSettings
from agent.vuln.settings import ScanSettings, VulnDbSettings

DEFAULT_CONFIG_PATH = Path("/etc/riskguard/agent.yaml")


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

    @field_validator("docker_url")
    @classmethod
    def _local_docker(cls, v: str) -> str:
        scheme = v.partition("://")[0].lower() if "://" in v else ""
        if scheme not in ("unix", "tcp", "http", "https"):
            raise ValueError(f"{v!r}: use unix://, tcp://, http:// or https:// (the dockerd of this host)")
        return v


class AgentConfig(Section):
    log: LogSettings = LogSettings()
    host: HostSettings = HostSettings()
    state: StateSettings = StateSettings()
    control: ControlSettings = ControlSettings()
    runtime: RuntimeSettings = RuntimeSettings()
    ebpf: EbpfSettings = EbpfSettings()
    audit: AuditSettings = AuditSettings()
    procfs: ProcfsSettings = ProcfsSettings()
    capture: CaptureSettings = CaptureSettings()
    behavior: BehaviorSettings = BehaviorSettings()
    logs: LogsSettings = LogsSettings()
    detectors: DetectorsSettings = DetectorsSettings()
    scan: ScanSettings = ScanSettings()
    vulndb: VulnDbSettings = VulnDbSettings()
    response: ResponseSettings = ResponseSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()
    outputs: OutputsSettings = OutputsSettings()
    network: NetworkSettings = NetworkSettings()


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` are ``dotted.path: reason`` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def _dotted(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def parse_config(data: Any, source: str = "<config>") -> AgentConfig:
    """Validate a parsed YAML document; raise ``ConfigError`` with dotted paths."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"(top level): expected a mapping, got {type(data).__name__}"])
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            problems.append(f"{_dotted(tuple(err['loc']))}: {msg}")
        raise ConfigError(source, problems) from None


def check_file_permissions(path: Path) -> None:
    """Refuse a config that someone other than its owner could have written."""
    st = path.stat()
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            str(path),
            [f"(file): mode {stat.S_IMODE(st.st_mode):04o} is group- or world-writable; chmod go-w {path}"],
        )


def load_config(path: Path | None) -> tuple[AgentConfig, str]:
    """Load ``path`` (or the default path; the embedded default when that does not exist).

    Returns the config and a description of where it came from.
    """
    explicit = path is not None
    target = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if not target.exists():
        if explicit:
            raise ConfigError(str(target), ["(file): does not exist"])
        return AgentConfig(), "embedded default"
    check_file_permissions(target)
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(target), [f"(file): cannot read: {exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(str(target), [f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    return parse_config(data, str(target)), str(target)


def config_path_from_env(cli_value: str | None) -> Path | None:
    """``--config`` wins, then ``RISKGUARD_CONFIG``; ``None`` means the default path."""
    value = cli_value or os.environ.get("RISKGUARD_CONFIG")
    return Path(value) if value else None
