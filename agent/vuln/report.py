# SPDX-License-Identifier: Apache-2.0
"""Scan reports for other tools and gates: severity filters and exit codes as in Trivy, SARIF
2.1.0 (code-scanning dashboards) and CycloneDX 1.5 (an SBOM with its vulnerabilities), and the
database checks that keep "0 vulnerabilities" honest (an empty database, a stale one)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from agent import __version__
from agent.vuln.db import VulnDB
from agent.vuln.matcher import Match
from agent.vuln.scanner import ScanResult

LEVELS = ("unknown", "low", "medium", "high", "critical")  # Trivy's names, lower case
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "unknown": "warning"}
# GitHub code scanning reads "security-severity" as a CVSS-like score.
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0", "unknown": "5.0"}
INFO_URI = "https://github.com/riskguard/riskguard-agent"


def level(m: Match) -> str:
    """The match's severity as one of ``LEVELS`` (an unrated record stays ``unknown``)."""
    s = (m.severity or "").lower()
    return s if s in LEVELS else "unknown"


def parse_severities(text: str) -> frozenset[str]:
    """``--severity CRITICAL,HIGH`` as a set of ``LEVELS``; ``ValueError`` naming a bad one."""
    wanted = {s.strip().lower() for s in text.split(",") if s.strip()}
    bad = sorted(wanted - set(LEVELS))
    if bad or not wanted:
        raise ValueError(f"unknown severity {','.join(bad) or '(none)'}: use {','.join(s.upper() for s in LEVELS)}")
    return frozenset(wanted)


def keep(matches: Iterable[Match], severities: frozenset[str]) -> list[Match]:
    """The matches whose severity is in ``severities``."""
    return [m for m in matches if level(m) in severities]


def db_health(db: VulnDB, now: float | None = None) -> tuple[int, float | None]:
    """(records, seconds since the last import or None) of the database; cheap counts only."""
    records = int(db.conn.execute("SELECT COUNT(*) FROM vulns").fetchone()[0])
    last = db.conn.execute("SELECT MAX(imported_at) FROM sources").fetchone()[0]
    age = None if last is None else max(0.0, (now or time.time()) - float(last))
    return records, age


def stale_warning(age: float | None, stale_after_seconds: float) -> str:
    """The warning line for a database older than ``stale_after_seconds``; ``""`` when fresh."""
    if age is None or age <= stale_after_seconds:
        return ""
    return (
        f"warning: the vulnerability database was last imported {age / 86400:.1f} days ago "
        f"(vuln.db.stale_after_seconds = {stale_after_seconds:g}): vulnerabilities published since "
        "are missing from this report; run `riskguard-agent vulndb update` or `vulndb import`"
    )


def sarif(result: ScanResult, matches: list[Match]) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one rule per vulnerability, one result per vulnerable package, located
    at the file the package was read from."""
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for m in matches:
        sev = level(m)
        if m.vulnerability not in rules:
            rules[m.vulnerability] = {
                "id": m.vulnerability,
                "name": "VulnerablePackage",
                "shortDescription": {"text": (m.summary or m.vulnerability)[:200]},
                "helpUri": f"https://osv.dev/vulnerability/{m.vulnerability}",
                "defaultConfiguration": {"level": _SARIF_LEVEL[sev]},
                "properties": {
                    "security-severity": f"{m.score:.1f}" if m.score is not None else _SECURITY_SEVERITY[sev],
                    "severity": sev,
                    "tags": ["vulnerability", "security", sev],
                    "aliases": list(m.aliases),
                },
            }
        fix = f"fixed in {m.fixed_version}" if m.fixed_version else "no fix yet"
        results.append(
            {
                "ruleId": m.vulnerability,
                "ruleIndex": list(rules).index(m.vulnerability),
                "level": _SARIF_LEVEL[sev],
                "message": {
                    "text": f"{m.package} {m.version} ({m.ecosystem}) is affected by {m.vulnerability} [{sev}], {fix}"
                },
                "locations": [
                    {
                        "physicalLocation": {"artifactLocation": {"uri": (m.path or result.target).lstrip("/")}},
                        "message": {"text": f"{result.target}: {m.path}"},
                    }
                ],
                "properties": {"package": m.package, "version": m.version, "fixed_version": m.fixed_version},
            }
        )
    return {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "riskguard-agent",
                        "version": __version__,
                        "informationUri": INFO_URI,
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
                "properties": {"target": result.target, "os": result.inventory.os.osv_ecosystem},
            }
        ],
    }


def _ref(purl: str, ecosystem: str, name: str, version: str) -> str:
    return purl or f"{ecosystem}/{name}@{version}"


def cyclonedx(result: ScanResult, matches: list[Match]) -> dict[str, Any]:
    """A CycloneDX 1.5 BOM: every inventoried package as a component (by package URL), and the
    matches as ``vulnerabilities`` that reference them."""
    components: dict[str, dict[str, Any]] = {}
    for p in result.inventory.packages:
        ref = _ref(p.purl, p.ecosystem, p.name, p.version)
        if ref in components:
            continue
        comp: dict[str, Any] = {"bom-ref": ref, "type": "library", "name": p.name, "version": p.version}
        if p.purl:
            comp["purl"] = p.purl
        comp["properties"] = [
            {"name": "riskguard:path", "value": p.path},
            {"name": "riskguard:ecosystem", "value": p.ecosystem},
        ]
        components[ref] = comp
    vulns: dict[str, dict[str, Any]] = {}
    for m in matches:
        ref = _ref(m.purl, m.ecosystem, m.package, m.version)
        v = vulns.setdefault(
            m.vulnerability,
            {
                "bom-ref": f"vuln:{m.vulnerability}",
                "id": m.vulnerability,
                "source": {"name": "OSV", "url": f"https://osv.dev/vulnerability/{m.vulnerability}"},
                "ratings": [{"severity": level(m), **({"score": m.score} if m.score is not None else {})}],
                "description": m.summary,
                "references": [{"id": a, "source": {"name": "alias"}} for a in m.aliases],
                "affects": [],
            },
        )
        if m.fixed_version:
            v["recommendation"] = f"upgrade {m.package} to {m.fixed_version}"
        affects: list[dict[str, Any]] = v["affects"]
        if all(a["ref"] != ref for a in affects):
            affects.append({"ref": ref, "versions": [{"version": m.version, "status": "affected"}]})
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.scanned_at)),
            "tools": {"components": [{"type": "application", "name": "riskguard-agent", "version": __version__}]},
            "component": {"bom-ref": "target", "type": "container", "name": result.target},
        },
        "components": list(components.values()),
        "vulnerabilities": list(vulns.values()),
    }
