# SPDX-License-Identifier: Apache-2.0
"""Severity of a vulnerability record: CVSS vectors through the ``cvss`` library, else the
source's own rating (GHSA ``MODERATE``, Red Hat ``Important``, Debian urgency …)."""

from __future__ import annotations

from typing import Any

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

from agent.findings import Severity

RATINGS = ("", "low", "medium", "high", "critical")
_ALIASES = {
    "moderate": "medium",
    "important": "high",
    "negligible": "low",
    "unimportant": "low",
    "not yet assigned": "",
    "end-of-life": "",
    "none": "",
    "unknown": "",
}


def normalize_rating(text: str) -> str:
    """Map a source's rating word to ``critical|high|medium|low`` (``""`` when it says nothing)."""
    t = text.strip().lower()
    t = _ALIASES.get(t, t)
    return t if t in RATINGS else ""


def rank(rating: str) -> int:
    return RATINGS.index(rating) if rating in RATINGS else 0


def to_severity(rating: str) -> Severity:
    """The finding severity of a rating (an unrated vulnerability is ``MEDIUM``: unknown ≠ safe)."""
    return {
        "critical": Severity.CRITICAL,
        "high": Severity.HIGH,
        "medium": Severity.MEDIUM,
        "low": Severity.LOW,
    }.get(rating, Severity.MEDIUM)


def rating_from_vector(kind: str, vector: str) -> tuple[str, float | None]:
    """(rating, base score) of a CVSS vector; ``("", None)`` when the library rejects it."""
    try:
        if kind.endswith("V4") or vector.startswith("CVSS:4"):
            c4 = CVSS4(vector)
            return normalize_rating(str(c4.severity)), float(c4.base_score)
        if kind.endswith("V3") or vector.startswith("CVSS:3"):
            c3 = CVSS3(vector)
            return normalize_rating(str(c3.severities()[0])), float(c3.scores()[0])
        c2 = CVSS2(vector)
        score = float(c2.scores()[0])
        # CVSS v2 has no qualitative scale in the spec; NVD's v2 bands are used.
        return ("high" if score >= 7 else "medium" if score >= 4 else "low"), score
    except (CVSSError, ValueError, KeyError, IndexError, TypeError):
        return "", None


def rating_from_osv(rec: dict[str, Any]) -> tuple[str, float | None, str]:
    """(rating, score, vector) of an OSV record: the highest CVSS vector, else a stated rating."""
    best: tuple[str, float | None, str] = ("", None, "")
    for s in rec.get("severity") or []:
        kind, vector = str(s.get("type", "")), str(s.get("score", ""))
        if not kind.startswith("CVSS"):
            continue
        rating, score = rating_from_vector(kind, vector)
        if (score or 0) > (best[1] or -1):
            best = (rating, score, vector)
    if best[0]:
        return best
    stated = normalize_rating(str((rec.get("database_specific") or {}).get("severity") or ""))
    if not stated:
        for a in rec.get("affected") or []:
            spec = {**(a.get("database_specific") or {}), **(a.get("ecosystem_specific") or {})}
            r = normalize_rating(str(spec.get("severity") or spec.get("urgency") or ""))
            if rank(r) > rank(stated):
                stated = r
    return stated, None, ""


def rating_from_nvd(metrics: dict[str, Any]) -> tuple[str, float | None, str]:
    """(rating, score, vector) of NVD CVE 2.0 ``metrics``: v4.0, v3.1, v3.0, then v2, primary first."""
    for key in ("cvssMetricV40", "cvssMetricV31", "cvssMetricV30", "cvssMetricV2"):
        entries = sorted(metrics.get(key) or [], key=lambda m: m.get("type") != "Primary")
        for m in entries:
            data = m.get("cvssData") or {}
            vector = str(data.get("vectorString") or "")
            rating, score = rating_from_vector(key, vector)
            if rating:
                return rating, score, vector
            stated = normalize_rating(str(data.get("baseSeverity") or m.get("baseSeverity") or ""))
            if stated:
                return stated, data.get("baseScore"), vector
    return "", None, ""
