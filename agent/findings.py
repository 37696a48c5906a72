# SPDX-License-Identifier: Apache-2.0
"""Pipeline products: ``Finding`` → ``Verdict`` → ``ActionResult``."""

from __future__ import annotations

import re
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


# Findings that say something about what a container did, and are worth an alert: they keep the
# behaviour windows around them out of training and take back what the container taught the
# kernel's known-event filter while its image learned. Posture (network posture RG-01xx:
# capabilities, namespaces, published ports) and vulnerability findings describe how a container
# was started or built, so every container of a default Docker host has one (RG-0105, NET_RAW kept).
NOT_BEHAVIOUR_SOURCES = ("vuln",)
POSTURE_DETECTORS = "RG-01__"  # SQL LIKE: the network posture checks RG-0101 … RG-0199
_POSTURE = re.compile("RG-01..")  # the same, for a finding in memory
TAINT_MIN_SEVERITY = 2  # Severity.MEDIUM: LOW/INFO findings are notes, not suspicion
TAINTING_SQL = (
    f"severity >= {TAINT_MIN_SEVERITY} "
    f"AND source NOT IN ({', '.join(repr(s) for s in NOT_BEHAVIOUR_SOURCES)}) "
    f"AND NOT (source = 'netpolicy' AND detector_id LIKE '{POSTURE_DETECTORS}') "
    # A finding lowered by the image's learned allowances describes its normal behaviour.
    "AND json_extract(evidence, '$.allowance') IS NULL"
)


def taints(f: Finding) -> bool:
    """``TAINTING_SQL`` for one finding in memory."""
    return (
        f.severity >= TAINT_MIN_SEVERITY
        and str(f.source) not in NOT_BEHAVIOUR_SOURCES
        and not (f.source == "netpolicy" and _POSTURE.fullmatch(f.detector_id) is not None)
        and f.evidence.get("allowance") is None
    )


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
