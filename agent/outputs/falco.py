# SPDX-License-Identifier: Apache-2.0
"""Findings as Falco alerts, so Falcosidekick, Falco Talon and Falco dashboards take them as-is.

The document is the one Falco writes with ``json_output: true`` and POSTs to Falcosidekick:
``uuid``, ``rule``, ``priority`` (Falco's names: Critical … Informational), ``output`` (Falco's
``<time>: <Priority> <message> (k=v …)`` line), ``output_fields`` (flat, Falco's field names:
``container.id``, ``proc.cmdline``, ``fd.name``, ``k8s.pod.name`` …, plus ``riskguard.*``),
``time`` (RFC 3339 with nanoseconds), ``source``, ``tags`` and ``hostname``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from agent.outputs.evidence import rule_name, split_image, subjects

# Falco's priorities (falco_common::priority_type), ours mapped onto them.
PRIORITY = {
    "critical": "Critical",
    "high": "Error",
    "medium": "Warning",
    "low": "Notice",
    "info": "Informational",
}
# Falco's event sources: findings made from kernel events are "syscall"; the rest keep our name.
SYSCALL_SOURCES = frozenset({"rule", "audit", "behavior", "syscall_chain"})
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"


def falco_time(ts: float) -> tuple[str, int]:
    """RFC 3339 UTC with nanoseconds (Falco's ``time``) and the same instant in ns (``evt.time``)."""
    ns = round(ts * 1e9)
    sec, frac = divmod(ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(sec, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z", ns


def _scalar(v: Any) -> Any:
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


def finding_to_falco(rec: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Falco alert from an alert record (``finding_record``); ``labels`` are the container's
    runtime labels, whose CRI pod name and namespace become ``k8s.pod.name``/``k8s.ns.name``."""
    severity = str(rec.get("severity") or "medium")
    priority = PRIORITY.get(severity, "Warning")
    source = str(rec.get("source") or "")
    when, ns = falco_time(float(rec.get("ts") or 0.0))
    sub = subjects(rec)
    repo, tag = split_image(str(rec.get("image") or ""))
    cid = str(rec.get("container_id") or "")
    fields: dict[str, Any] = {
        "evt.time": ns,
        "container.id": cid[:12] if cid else "host",
        "container.name": str(rec.get("container_name") or "") or ("host" if not cid else ""),
        "container.image.repository": repo,
        "container.image.tag": tag,
        "proc.pid": sub.process.get("pid"),
        "proc.name": sub.process.get("name"),
        "proc.exepath": sub.process.get("executable"),
        "proc.cmdline": sub.process.get("command_line"),
        "proc.ppid": sub.parent.get("pid"),
        "proc.pname": sub.parent.get("name"),
        "user.uid": int(sub.user_id) if sub.user_id else None,
        "fd.name": sub.file.get("path"),
        "fd.sip": sub.destination.get("ip"),
        "fd.sport": sub.destination.get("port"),
        "riskguard.finding_id": str(rec.get("id") or ""),
        "riskguard.detector_id": str(rec.get("detector_id") or ""),
        "riskguard.severity": severity,
        "riskguard.verdict": str(rec.get("verdict") or ""),
        "riskguard.action": str((rec.get("action") or {}).get("kind") or ""),
    }
    lab = labels or {}
    if lab.get(POD_NAME_LABEL):
        fields["k8s.pod.name"] = lab[POD_NAME_LABEL]
        fields["k8s.ns.name"] = lab.get(POD_NAMESPACE_LABEL, "")
    fields = {k: _scalar(v) for k, v in fields.items() if v is not None and v != ""}
    shown = " ".join(
        f"{k}={fields[k]}"
        for k in ("container.id", "container.name", "proc.name", "proc.cmdline", "fd.name", "fd.sip", "fd.sport")
        if k in fields
    )
    mitre = str(rec.get("mitre") or "")
    tags = ["riskguard", source or "unknown", *([mitre] if mitre else [])]
    return {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"riskguard:{rec.get('id') or ns}")),
        "rule": rule_name(rec),
        "priority": priority,
        "output": f"{when[11:29]}: {priority} {rec.get('summary') or rule_name(rec)} ({shown})",
        "output_fields": fields,
        "time": when,
        "source": "syscall" if source in SYSCALL_SOURCES else f"riskguard_{source or 'unknown'}",
        "tags": tags,
        "hostname": str(rec.get("host") or ""),
    }
