# SPDX-License-Identifier: Apache-2.0
"""One finding per scanned container image (detector ``vuln.image``) instead of one per package.

The finding's evidence holds the new vulnerabilities (each match as ``riskguard-agent scan``
reports it, severity ``unknown`` when no source rated it), their counts by severity, the
packages they are in and how many have a fix. Its severity is the highest rated one; an image
whose new vulnerabilities are all unrated gets ``LOW`` with "unrated" in the summary, never a
made-up ``MEDIUM``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.findings import Finding, Severity, Source
from agent.runtime.model import Container
from agent.vuln.matcher import Match

MAX_EVIDENCE_MATCHES = 500  # matches listed in one finding's evidence (the stored scan has all)
_ORDER = ("critical", "high", "medium", "low", "unknown")
_SEVERITY = {"critical": Severity.CRITICAL, "high": Severity.HIGH, "medium": Severity.MEDIUM, "low": Severity.LOW}


def rating(m: Match) -> str:
    """The match's rating as shown everywhere: critical|high|medium|low, else ``unknown``."""
    s = (m.severity or "").lower()
    return s if s in _SEVERITY else "unknown"


def image_finding(c: Container, new: Sequence[Match], total: int) -> Finding:
    """The one finding for ``new`` vulnerabilities of ``c``'s image (``total``: all it has)."""
    by_sev: dict[str, int] = {}
    for m in new:
        by_sev[rating(m)] = by_sev.get(rating(m), 0) + 1
    rated = [s for s in _ORDER[:4] if by_sev.get(s)]
    severity = _SEVERITY[rated[0]] if rated else Severity.LOW
    ordered = sorted(new, key=lambda m: (_ORDER.index(rating(m)), m.package, m.vulnerability))
    packages = sorted({m.package for m in new})
    fixable = sum(1 for m in new if m.fixed_version)
    counts = ", ".join(f"{by_sev[s]} {s}" for s in _ORDER if by_sev.get(s))
    top = ordered[0]
    unrated = "" if rated else " (all unrated)"
    summary = (
        f"{len(new)} new vulnerabilit{'y' if len(new) == 1 else 'ies'}{unrated} in {len(packages)} "
        f"package{'' if len(packages) == 1 else 's'} of {c.image or c.image_id[:19]} ({counts}); "
        f"{fixable} fixable; worst {top.vulnerability} in {top.package} {top.version}"
    )
    evidence: dict[str, Any] = {
        "image": c.image,
        "image_id": c.image_id,
        "count": len(new),
        "total": total,
        "by_severity": by_sev,
        "fixable": fixable,
        "packages": packages[:MAX_EVIDENCE_MATCHES],
        "vulnerabilities": [{**m.to_dict(), "severity": rating(m)} for m in ordered[:MAX_EVIDENCE_MATCHES]],
        "truncated": len(ordered) > MAX_EVIDENCE_MATCHES,
    }
    return Finding(
        container=c.ref(),
        source=Source.VULN,
        detector_id="vuln.image",
        severity=severity,
        summary=summary,
        evidence=evidence,
    )
