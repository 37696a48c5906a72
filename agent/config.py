# SPDX-License-Identifier: Apache-2.0
"""``agent.yaml``: frozen pydantic models, unknown keys rejected, errors as dotted paths.

Every section model lives in ``agent/settings/`` (the lowest layer); this module composes them
and loads the file. With no file at all the embedded defaults (``AgentConfig()``) run; ``config/agent.yaml``
documents every key and equals those defaults (a test keeps them in step).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import ValidationError

from agent.settings.behavior import BehaviorSettings
from agent.settings.core import CoreSections
from agent.settings.detectors import DetectorsSettings
from agent.settings.logs import LogsSettings
from agent.settings.network import NetworkSettings
from agent.settings.outputs import OutputsSettings
from agent.settings.response import KubernetesSettings, ResponseSettings
from agent.settings.sources import SourceSections
from agent.settings.vuln import VulnSettings

log = structlog.get_logger("agent.config")

# Sections renamed so that each config section is named like the package that owns it. The old
# keys are still accepted, with a warning, for one release: old key -> (new section, sub-key or
# "" to merge into the section itself).
RENAMED_SECTIONS: dict[str, tuple[str, str]] = {
    "scan": ("vuln", ""),
    "vulndb": ("vuln", "db"),
}

# Keys that no longer do anything: accepted with a warning for one release, then unknown.
# section -> {key: why it went}.
RETIRED_KEYS: dict[str, dict[str, str]] = {
    "logs": {
        "drain_sim_th": "the template miner's similarity adapts to message length",
        "drain_depth": "the template miner routes by length and first token",
        "top_k": "the session model is calibrated to logs.anomaly_target_fpr",
        "min_support": "PrefixSpan support is chosen by the session model",
        "anomaly_threshold": "use logs.anomaly_target_fpr",
    },
}

DEFAULT_CONFIG_PATH = Path("/etc/riskguard/agent.yaml")
MAX_CONFIG_BYTES = 4 << 20  # a bigger agent.yaml is a mistake (or an attack), not a config


class AgentConfig(SourceSections, CoreSections):
    """The whole file: the agent's own sections (``CoreSections``: log, host, state, control,
    runtime), the sources' (``SourceSections`` in ``agent/settings/sources.py``: a new source's
    section is declared there, not here), then the analysers', the response's and the outputs'."""

    behavior: BehaviorSettings = BehaviorSettings()
    logs: LogsSettings = LogsSettings()
    detectors: DetectorsSettings = DetectorsSettings()
    vuln: VulnSettings = VulnSettings()
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
    data = migrate_renamed_sections(data, source)
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


def migrate_renamed_sections(data: dict[str, Any], source: str = "<config>") -> dict[str, Any]:
    """Move sections under their old names (``RENAMED_SECTIONS``) to the new ones and drop
    ``RETIRED_KEYS``, each with a warning.

    A key set under both the old and the new name is an error, not a silent choice.
    """
    out = dict(data)
    for old, (new, sub) in RENAMED_SECTIONS.items():
        if old not in out:
            continue
        value = out.pop(old)
        target = f"{new}.{sub}" if sub else new
        log.warning("config_key_deprecated", config=source, key=old, use=target, until="the next release")
        section = out.get(new)
        if section is None:
            section = {}
        if not isinstance(section, dict) or not isinstance(value, dict | type(None)):
            raise ConfigError(source, [f"{old}: renamed to {target}; both must be mappings"])
        section = dict(section)
        if sub:
            if sub in section:
                raise ConfigError(source, [f"{old}: renamed to {target}, which is also set; keep only {target}"])
            section[sub] = value or {}
        else:
            both = sorted(set(section) & set(value or {}))
            if both:
                raise ConfigError(source, [f"{old}.{both[0]}: renamed to {new}.{both[0]}, which is also set"])
            section.update(value or {})
        out[new] = section
    for name, keys in RETIRED_KEYS.items():
        section = out.get(name)
        if not isinstance(section, dict) or not set(section) & set(keys):
            continue
        section = dict(section)
        for key in sorted(set(section) & set(keys)):
            del section[key]
            log.warning("config_key_retired", config=source, key=f"{name}.{key}", why=keys[key])
        out[name] = section
    return out


def check_file_permissions(path: Path) -> None:
    """Refuse a config that is not a regular file (a FIFO would hang the read) or that someone
    other than its owner could have written (see ``read_trusted``)."""
    read_trusted(path)


def _trusted_owners() -> set[int]:
    """Owners a config and its directories may have: root, and the running user when not root
    (sshd's ``StrictModes``, sudo's sudoers checks)."""
    return {0, os.geteuid()}


def _check_directories(path: Path, source: str, owners: set[int]) -> None:
    """Every directory from the config's real location up to ``/`` must be owned by a trusted
    user and not writable by group or others unless sticky (``/tmp``) or mounted read-only:
    otherwise someone else could swap the file."""
    for d in [path.parent, *path.parent.parents]:
        try:
            st = d.stat()
        except OSError as exc:
            raise ConfigError(source, [f"(file): cannot check directory {d}: {exc.strerror}"]) from None
        if st.st_uid not in owners:
            raise ConfigError(source, [f"(file): directory {d} is owned by uid {st.st_uid}, not root"])
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX and not _read_only(d):
            raise ConfigError(
                source,
                [f"(file): directory {d} (mode {stat.S_IMODE(st.st_mode):04o}) is writable by group or others"],
            )


def _read_only(d: Path) -> bool:
    """Whether ``d`` is on a read-only mount (a Kubernetes ConfigMap volume mounted ``readOnly``:
    its directories are 0777, yet nobody can write them)."""
    try:
        return bool(os.statvfs(d).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def read_trusted(path: Path) -> str:
    """The text of ``path`` once it is trusted like sshd/sudo trust theirs: a regular file (opened
    without blocking, so a FIFO is refused, not waited on), owned by root (or by the running user
    when not root), not writable by group or others, in directories (real path, up to ``/``)
    nobody else can write (sticky, or a read-only mount, is fine). Checks are made on the open
    descriptor; any failure is a ``ConfigError``."""
    source = str(path)
    owners = _trusted_owners()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(source, [f"(file): cannot open: {exc.strerror}"]) from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(source, ["(file): not a regular file"])
        if st.st_uid not in owners:
            who = "root" if os.geteuid() == 0 else f"root or uid {os.geteuid()}"
            raise ConfigError(source, [f"(file): owned by uid {st.st_uid}, not {who}; chown root {path}"])
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(
                source,
                [f"(file): mode {stat.S_IMODE(st.st_mode):04o} is group- or world-writable; chmod go-w {path}"],
            )
        _check_directories(Path(os.path.realpath(path)), source, owners)
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(source, [f"(file): {st.st_size} bytes, more than {MAX_CONFIG_BYTES}"])
        raw = fh.read(MAX_CONFIG_BYTES + 1)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"(file): cannot read: {exc}"]) from None


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
    text = read_trusted(target)
    return parse_config(read_yaml(text, str(target)), str(target)), str(target)


def read_yaml(text: str, source: str) -> Any:
    """Parse ``text`` as YAML; every failure (syntax, a value PyYAML cannot construct such as an
    unquoted ``2024-31-12``, a 5,000-digit int, nesting too deep) is a ``ConfigError``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise ConfigError(source, [f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    except RecursionError:
        raise ConfigError(source, ["(file): invalid YAML: nested too deeply"]) from None
    if node is None:
        return None
    duplicates = duplicate_keys(node)
    if duplicates:
        raise ConfigError(source, duplicates)
    try:
        return yaml.SafeLoader("").construct_document(node)
    except RecursionError:
        raise ConfigError(source, ["(file): invalid YAML: nested too deeply"]) from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        path, bad = _unconstructible(node)
        mark = bad.start_mark
        reason = str(getattr(exc, "problem", None) or exc)[:200]
        value = bad.value if isinstance(bad, yaml.ScalarNode) else ""
        shown = value if len(value) <= 40 else f"{value[:20]}…({len(value)} characters)"
        raise ConfigError(
            source,
            [
                f"{path}: line {mark.line + 1}, column {mark.column + 1}: YAML cannot read the value "
                f"{shown!r} ({reason}); quote it to use it as a string"
            ],
        ) from None


def _walk(root: yaml.Node) -> Iterator[tuple[yaml.Node, tuple[Any, ...]]]:
    """Every node under ``root`` (mapping keys too, at their value's path) in document order,
    each once: an alias may point back at its own ancestor (``a: &x [*x]``)."""
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())]
    visited: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        yield node, loc
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                stack.append((value, (*loc, name)))
                stack.append((key, (*loc, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, (*loc, i)) for i, v in reversed(list(enumerate(node.value))))


def duplicate_keys(root: yaml.Node) -> list[str]:
    """``path: duplicate key 'k' (lines A and B)`` for every key set twice in one mapping (PyYAML
    silently keeps the last one)."""
    problems: list[str] = []
    for node, loc in _walk(root):
        if not isinstance(node, yaml.MappingNode):
            continue
        seen: dict[str, int] = {}
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if key.value in seen:
                where = _dotted((*loc, key.value))
                problems.append(f"{where}: duplicate key {key.value!r} (lines {seen[key.value]} and {line})")
            else:
                seen[key.value] = line
    return sorted(problems)


def _unconstructible(root: yaml.Node) -> tuple[str, yaml.Node]:
    """The dotted path and node of the first value in ``root`` that SafeLoader cannot construct."""
    for node, loc in _walk(root):
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            continue
        try:
            yaml.SafeLoader("").construct_object(node)
        except Exception:
            return _dotted(loc), node
    return "(file)", root


def config_path_from_env(cli_value: str | None) -> Path | None:
    """``--config`` wins, then ``RISKGUARD_CONFIG``; ``None`` means the default path."""
    value = cli_value or os.environ.get("RISKGUARD_CONFIG")
    return Path(value) if value else None
