# SPDX-License-Identifier: Apache-2.0
"""Typed response records: an action row with its history, a verdict as stored with its finding,
and a stored finding.

``to_dict`` gives each record the JSON shape of the control socket (``riskguardctl actions``,
``findings``); ``state`` stays a mapping because its keys belong to the handler (and method) that
wrote it: it is all that handler needs to release or re-check the action.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.findings import Severity, Verdict

# Phases in which an interrupted action must be looked at again at start-up.
PENDING = ("intended", "applied", "release_intended")
ENDED = ("released", "rolled_back", "failed", "gone")
# Phases in which an isolation is (or is about to be) in place: a second request is idempotent.
IN_PLACE = ("confirmed", "applied", "intended")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One phase transition of an action."""

    ts: float
    phase: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One row of ``response_actions``: an action on a container, from intent to its end."""

    id: str
    container_id: str
    action: str
    phase: str
    actor: str
    created: float
    updated: float
    container_name: str = ""
    image: str = ""
    init_pid: int = 0
    method: str = ""
    active: bool = True
    dry_run: bool = False
    reason: str = ""
    finding_id: str = ""
    verdict_id: str = ""
    detail: str = ""
    state: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ActionRecord:
        """Decode a ``response_actions`` row (``state`` is JSON)."""
        return cls(
            id=str(row["id"]),
            container_id=str(row["container_id"]),
            action=str(row["action"]),
            phase=str(row["phase"]),
            actor=str(row["actor"]),
            created=float(row["created"]),
            updated=float(row["updated"]),
            container_name=str(row["container_name"]),
            image=str(row["image"]),
            init_pid=int(row["init_pid"]),
            method=str(row["method"]),
            active=bool(row["active"]),
            dry_run=bool(row["dry_run"]),
            reason=str(row["reason"]),
            finding_id=str(row["finding_id"]),
            verdict_id=str(row["verdict_id"]),
            detail=str(row["detail"]),
            state=json.loads(row["state"] or "{}"),
        )

    def output(self, kind: str = "") -> dict[str, Any]:
        """The record as the outputs take it (``kind``, ``ok``, ``detail`` …)."""
        return {
            "kind": kind or self.action,
            "action_id": self.id,
            "container_id": self.container_id,
            "container_name": self.container_name,
            "method": self.method,
            "actor": self.actor,
            "phase": self.phase,
            "ok": self.phase in ("confirmed", "released"),
            "detail": self.detail,
            "dry_run": self.dry_run,
        }

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["state"] = dict(self.state)
        return out


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    """A verdict as stored next to its finding: the decision, and what came of it."""

    id: str
    action: str
    enforce: bool
    reason: str
    incident: str | None = None
    action_id: str | None = None  # the action record that carries the verdict out
    result: str | None = None  # that record's phase

    @classmethod
    def of(
        cls,
        verdict: Verdict,
        *,
        incident: str | None = None,
        action_id: str | None = None,
        result: str | None = None,
    ) -> VerdictRecord:
        """The stored form of ``verdict``, with what came of it."""
        return cls(
            id=verdict.id,
            action=str(verdict.action),
            enforce=verdict.enforce,
            reason=verdict.reason,
            incident=incident,
            action_id=action_id,
            result=result,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VerdictRecord:
        """Decode a stored verdict (unknown keys ignored)."""

        def opt(key: str) -> str | None:
            return None if d.get(key) is None else str(d[key])

        return cls(
            id=str(d.get("id", "")),
            action=str(d.get("action", "")),
            enforce=bool(d.get("enforce", False)),
            reason=str(d.get("reason", "")),
            incident=opt("incident"),
            action_id=opt("action_id"),
            result=opt("result"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON shape: keys left unset are absent."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """A row of the core ``findings`` table with its verdict decoded."""

    id: str
    ts: float
    container_id: str
    container_name: str
    image: str
    source: str
    detector_id: str
    severity: int
    summary: str
    evidence: Mapping[str, Any]
    mitre: str = ""
    verdict: VerdictRecord | None = None
    status: str = "open"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredFinding:
        """Decode a ``findings`` row (``evidence`` and ``verdict`` are JSON)."""
        verdict = json.loads(row["verdict"]) if row["verdict"] else None
        return cls(
            id=str(row["id"]),
            ts=float(row["ts"]),
            container_id=str(row["container_id"]),
            container_name=str(row["container_name"]),
            image=str(row["image"]),
            source=str(row["source"]),
            detector_id=str(row["detector_id"]),
            severity=int(row["severity"]),
            summary=str(row["summary"]),
            evidence=json.loads(row["evidence"] or "{}"),
            mitre=str(row["mitre"]),
            verdict=VerdictRecord.from_dict(verdict) if isinstance(verdict, dict) and verdict else None,
            status=str(row["status"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The finding as JSON (``verdict`` is ``{}`` when none was stored; ``severity`` by name,
        as in alerts: the store keeps the number for ordering)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["severity"] = str(Severity(self.severity)) if 0 <= self.severity <= 4 else str(self.severity)
        out["evidence"] = dict(self.evidence)
        out["verdict"] = self.verdict.to_dict() if self.verdict else {}
        return out
