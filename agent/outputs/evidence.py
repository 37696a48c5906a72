# SPDX-License-Identifier: Apache-2.0
"""What a finding's evidence says about the process, file, peer and rule, in one normalised shape.

Detectors name their evidence keys for their own event (``comm``, ``exe``, ``argv``, ``pid``,
``path``, ``daddr``/``dport`` …); the ECS and Falco outputs both read them through
``subjects``, so the two formats always agree on what a finding was about.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "low", "medium", "high", "critical")


def severity_rank(severity: str) -> int:
    """The order of a severity name (info=0 … critical=4); an unknown name ranks as medium."""
    try:
        return SEVERITIES.index(str(severity).strip().lower())
    except ValueError:
        return 2


def at_least(severity: str, minimum: str) -> bool:
    """True when ``severity`` is ``minimum`` or above."""
    return severity_rank(severity) >= severity_rank(minimum)


def split_image(image: str) -> tuple[str, str]:
    """An image reference's name and tag ("" when untagged), its digest dropped."""
    ref = image.split("@", 1)[0]
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, ""


@functools.cache
def _detector_names() -> dict[str, str]:
    from agent.detectors.registry import DETECTORS  # the rule specs: id -> name

    return {d.id: d.name for d in DETECTORS}


def rule_name(rec: Mapping[str, Any]) -> str:
    """The detector's name (``sensitive_file_access`` for RG-0002), else the evidence's rule name,
    else the analyser's own id (``vuln.image``, ``behavior.deviation`` …)."""
    did = str(rec.get("detector_id") or "")
    ev = rec.get("evidence") or {}
    return _detector_names().get(did) or str(ev.get("rule_name") or ev.get("rule") or did)


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _ip(v: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(v)))
    except ValueError:
        return ""


@dataclass
class Subjects:
    """The process, file and network peer a finding names (empty parts when it names none)."""

    process: dict[str, Any] = field(default_factory=dict)
    parent: dict[str, Any] = field(default_factory=dict)
    file: dict[str, Any] = field(default_factory=dict)
    destination: dict[str, Any] = field(default_factory=dict)
    user_id: str = ""


def _first(ev: Mapping[str, Any], *keys: str) -> Any:
    for k in keys:
        v = ev.get(k)
        if v not in (None, "", [], {}):
            return v
    return None


def subjects(rec: Mapping[str, Any]) -> Subjects:
    """Read the process, parent, file and destination out of an alert record's evidence."""
    ev = rec.get("evidence") or {}
    if not isinstance(ev, Mapping):
        return Subjects()
    out = Subjects()
    pid = _int(ev.get("pid"))
    if pid is not None:
        out.process["pid"] = pid
    comm = _first(ev, "comm", "process")
    if isinstance(comm, str):
        out.process["name"] = comm
    exe = _first(ev, "exe", "executable")
    if isinstance(exe, str):
        out.process["executable"] = exe
    argv = _first(ev, "argv", "args")
    if isinstance(argv, (list, tuple)):
        out.process["args"] = [str(a) for a in argv]
        out.process["command_line"] = " ".join(str(a) for a in argv)
    elif isinstance(ev.get("cmdline"), str):
        out.process["command_line"] = ev["cmdline"]
    ppid = _int(ev.get("ppid"))
    if ppid is not None:
        out.parent["pid"] = ppid
    parent = _first(ev, "parent_comm", "parent")
    if isinstance(parent, str):
        out.parent["name"] = parent
    uid = _int(ev.get("uid"))
    if uid is not None:
        out.user_id = str(uid)
    path = _first(ev, "path", "filename", "file", "target")
    if isinstance(path, str) and path.startswith("/"):
        out.file = {"path": path, "name": path.rstrip("/").rsplit("/", 1)[-1]}
        if "/" in path.rstrip("/")[1:]:
            out.file["directory"] = path.rstrip("/").rsplit("/", 1)[0]
    addr = _ip(_first(ev, "daddr", "dst", "dst_ip", "address", "ip", "remote_ip") or "")
    if addr:
        out.destination["ip"] = addr
        port = _int(_first(ev, "dport", "dst_port", "port", "remote_port"))
        if port is not None:
            out.destination["port"] = port
    return out
