# SPDX-License-Identifier: Apache-2.0
"""Alert and action records as Elastic Common Schema (ECS 8.x) documents.

Findings are ``event.kind: alert`` with ``rule.*`` (``rule.name`` is the detector's name,
``rule.id`` its RG id), ``container.*``, ``process.*`` (with ``process.parent.*``), ``file.*``,
``destination.*``, ``user.id``, ``threat.*`` and ``host.name``, read from the evidence through
``agent.outputs.evidence.subjects``; action results are ``event.kind: event`` with ``event.action`` and
``event.outcome``. Fields ECS has no name for stay under ``riskguard.*`` (ECS reserves custom
top-level objects for the user), so nothing collides with a future ECS field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent import __version__
from agent.outputs.evidence import rule_name, split_image, subjects

ECS_VERSION = "8.11.0"

# ECS event.severity is numeric; these are the values Elastic Security uses for
# low/medium/high/critical risk, with info below them.
SEVERITY_SCORE = {"info": 0, "low": 21, "medium": 47, "high": 73, "critical": 99}

# event.category per finding source (ECS allowed values).
CATEGORIES: dict[str, list[str]] = {
    "vuln": ["vulnerability", "package"],
    "network": ["network", "intrusion_detection"],
    "netpolicy": ["network", "intrusion_detection"],
    "logs": ["intrusion_detection"],
    "audit": ["process", "intrusion_detection"],
    "rule": ["process", "intrusion_detection"],
    "behavior": ["process", "intrusion_detection"],
    "syscall_chain": ["process", "intrusion_detection"],
    "operator": ["configuration"],
}


def _threat(mitre: str) -> dict[str, Any] | None:
    if not mitre:
        return None
    technique, _, sub = mitre.partition(".")
    t: dict[str, Any] = {
        "framework": "MITRE ATT&CK",
        "technique": {
            "id": [technique],
            "reference": [f"https://attack.mitre.org/techniques/{technique}/"],
        },
    }
    if sub:
        t["technique"]["subtechnique"] = {
            "id": [mitre],
            "reference": [f"https://attack.mitre.org/techniques/{technique}/{sub}/"],
        }
    return t


def _container(rec: Mapping[str, Any]) -> dict[str, Any] | None:
    cid = str(rec.get("container_id") or "")
    if not cid:
        return None
    name, tag = split_image(str(rec.get("image") or ""))
    c: dict[str, Any] = {"id": cid, "name": str(rec.get("container_name") or "")}
    if name:
        c["image"] = {"name": name, "tag": [tag] if tag else []}
    return c


def finding_to_ecs(rec: Mapping[str, Any]) -> dict[str, Any]:
    """An ECS alert document from an alert record (``agent.outputs.alert.finding_record``)."""
    source = str(rec.get("source", ""))
    severity = str(rec.get("severity", ""))
    action = rec.get("action") or {}
    doc: dict[str, Any] = {
        "@timestamp": rec.get("time"),
        "ecs": {"version": ECS_VERSION},
        "message": rec.get("summary", ""),
        "event": {
            "kind": "alert",
            "id": rec.get("id", ""),
            "category": CATEGORIES.get(source, ["intrusion_detection"]),
            "type": ["info"],
            "severity": SEVERITY_SCORE.get(severity, 0),
            "module": "riskguard",
            "dataset": "riskguard.alerts",
            "provider": source,
            "created": rec.get("time"),
        },
        "rule": {
            "id": rec.get("detector_id", ""),
            "name": rule_name(rec),
            "ruleset": source,
            "description": rec.get("summary", ""),
        },
        "host": {"name": rec.get("host", ""), "hostname": rec.get("host", "")},
        "agent": {"type": "riskguard-agent", "version": __version__, "name": rec.get("host", "")},
        "observer": {"type": "host-ids", "vendor": "riskguard", "product": "riskguard-agent"},
        "riskguard": {
            "severity": severity,
            "source": source,
            "evidence": rec.get("evidence") or {},
            "verdict": rec.get("verdict", ""),
            "enforce": rec.get("enforce"),
            "verdict_reason": rec.get("verdict_reason", ""),
            "action": action or None,
        },
    }
    if rec.get("verdict"):
        doc["event"]["action"] = rec["verdict"]
    if action:
        doc["event"]["outcome"] = (
            "success" if action.get("ok") else "failure" if action.get("ok") is False else "unknown"
        )
    container = _container(rec)
    if container:
        doc["container"] = container
    sub = subjects(rec)
    if sub.process:
        doc["process"] = dict(sub.process)
        if sub.parent:
            doc["process"]["parent"] = dict(sub.parent)
    if sub.file:
        doc["file"] = dict(sub.file)
    if sub.destination:
        doc["destination"] = dict(sub.destination)
    if sub.user_id:
        doc["user"] = {"id": sub.user_id}
    threat = _threat(str(rec.get("mitre") or ""))
    if threat:
        doc["threat"] = threat
    return doc


def action_to_ecs(rec: Mapping[str, Any]) -> dict[str, Any]:
    """An ECS event document from an action record (``agent.outputs.alert.action_record``)."""
    ok = rec.get("ok")
    doc: dict[str, Any] = {
        "@timestamp": rec.get("time"),
        "ecs": {"version": ECS_VERSION},
        "message": rec.get("detail", ""),
        "event": {
            "kind": "event",
            "category": ["host"],
            "type": ["change"],
            "action": rec.get("kind", ""),
            "outcome": "success" if ok else "failure" if ok is False else "unknown",
            "module": "riskguard",
            "dataset": "riskguard.actions",
        },
        "host": {"name": rec.get("host", ""), "hostname": rec.get("host", "")},
        "agent": {"type": "riskguard-agent", "version": __version__, "name": rec.get("host", "")},
        "riskguard": {k: v for k, v in rec.items() if k not in ("time", "ts", "host", "type")},
    }
    if rec.get("container_id"):
        doc["container"] = {"id": rec["container_id"]}
    return doc
