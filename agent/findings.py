# SPDX-License-Identifier: Apache-2.0
"""Pipeline products: ``Finding`` → ``Verdict`` → ``ActionResult``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from agent.events import ContainerRef


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: str | int | Severity) -> Severity:
        if isinstance(value, Severity):
            return value
        if isinstance(value, int):
            return cls(value)
        return cls[value.strip().upper()]

    def __str__(self) -> str:
        return self.name.lower()


class Source(StrEnum):
    BEHAVIOR = "behavior"
    SYSCALL_CHAIN = "syscall_chain"
    LOGS = "logs"
    AUDIT = "audit"
    NETWORK = "network"
    VULN = "vuln"
    RULE = "rule"
    NETPOLICY = "netpolicy"
    OPERATOR = "operator"


class Action(StrEnum):
    """What the response does, ordered as the graded ladder."""

    NONE = "none"
    ALERT = "alert"
    FREEZE = "freeze"
    QUARANTINE = "quarantine"
    PATCH = "patch"


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """Something an analyser concluded about one container, with the evidence for it."""

    container: ContainerRef | None
    source: Source
    detector_id: str  # RG-NNNN for rule detectors; a stable id for every other analyser
    severity: Severity
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    mitre: str = ""  # ATT&CK technique id, e.g. T1059.004
    ts: float = field(default_factory=time.time)
    id: str = field(default_factory=_new_id)

    @property
    def container_id(self) -> str:
        return self.container.id if self.container else ""

    def to_dict(self) -> dict[str, Any]:
        c = self.container
        return {
            "id": self.id,
            "ts": self.ts,
            "container_id": c.id if c else "",
            "container_name": c.name if c else "",
            "image": c.image if c else "",
            "source": str(self.source),
            "detector_id": self.detector_id,
            "severity": str(self.severity),
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "mitre": self.mitre,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The policy's decision about one finding."""

    finding: Finding
    action: Action
    enforce: bool  # False: observe mode, the action is recorded, not applied
    reason: str
    id: str = field(default_factory=_new_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionResult:
    """What an action did (or would have done, in dry-run)."""

    action: Action
    container_id: str
    ok: bool
    detail: str
    dry_run: bool = False
    state: Mapping[str, Any] = field(default_factory=dict)  # what release needs to restore

    @classmethod
    def dry(
        cls, action: Action, container_id: str, detail: str, state: Mapping[str, Any] | None = None
    ) -> ActionResult:
        """What a dry run reports: ``detail`` says what it would have done, and nothing was."""
        return cls(action=action, container_id=container_id, ok=True, detail=detail, dry_run=True, state=state or {})
