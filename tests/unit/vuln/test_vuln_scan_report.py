# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent scan`` results people can trust: an empty database is refused, a stale one
warned about (configurable age), ``--severity`` / ``--exit-code`` behave as in Trivy, SARIF and
CycloneDX reports carry every match, and an unrated vulnerability stays ``unknown``."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from agent.cli import main
from agent.vuln.db import VulnDB
from tests.fixtures.vuln.builders import CRITICAL, MEDIUM, osv, write_dpkg_status, write_os_release, write_records


def _setup(tmp: Path) -> tuple[Path, Path]:
    root = tmp / "rootfs"
    write_os_release(root, "debian", "12", "bookworm")
    write_dpkg_status(
        root,
        [
            {"name": "libexpat1", "version": "2.5.0-1", "source": "expat"},
            {"name": "gzip", "version": "1.12-1"},
            {"name": "tar", "version": "1.34+dfsg-1.2"},
            {"name": "curl", "version": "7.88.1-10+deb12u4"},
        ],
    )
    (root / "app").mkdir()
    (root / "app" / "requirements.txt").write_text("pyyaml==5.3.1\n")
    records = [
        osv("DSA-1-1", "Debian:12", "expat", fixed="2.5.0-1+deb12u1", severity_vector=CRITICAL),
        osv("DSA-2-1", "Debian:12", "gzip", fixed="1.12-1+deb12u1", severity_vector=MEDIUM),
        osv("DSA-3-1", "Debian:12", "tar", fixed="1.34+dfsg-1.2+deb12u1"),  # no rating: unknown
        osv("GHSA-yaml-1", "PyPI", "pyyaml", fixed="5.4", rating="HIGH"),
        osv("DSA-4-1", "Debian:12", "curl", fixed="7.88.1-10+deb12u1", severity_vector=CRITICAL),  # fixed
    ]
    db = tmp / "v.sqlite"
    v = VulnDB(db)
    v.import_paths([write_records(tmp / "osv", records)], progress=False)
    v.close()
    return root, db


def _scan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # the import's log lines
    rc = main(["scan", "rootfs", *args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_an_empty_database_is_refused_not_reported_as_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = _setup(tmp_path)
    empty = tmp_path / "empty.sqlite"
    VulnDB(empty).close()
    rc, out, err = _scan(capsys, str(root), "--db", str(empty), "--format", "json")
    assert rc == 2 and out == ""
    assert "holds no records" in err and "vulndb import" in err


def test_a_stale_database_warns_with_the_configured_age(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, db = _setup(tmp_path)
    rc, _out, err = _scan(capsys, str(root), "--db", str(db), "--format", "json")
    assert rc == 0 and "warning" not in err  # just imported: fresh
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE sources SET imported_at = ?", (time.time() - 10 * 86400,))
    rc, out, err = _scan(capsys, str(root), "--db", str(db), "--format", "json")
    assert rc == 0 and json.loads(out)  # the report is still printed, on stdout
    assert "last imported 10.0 days ago" in err and "stale_after_seconds = 604800" in err
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"vuln:\n  db:\n    path: {db}\n    stale_after_seconds: 1209600\n")
    monkeypatch.setenv("RISKGUARD_CONFIG", str(cfg))
    rc, out, err = _scan(capsys, str(root), "--format", "json")
    assert rc == 0 and "warning" not in err  # 10 days is within the configured 14


def test_severity_filter_and_exit_code_as_in_trivy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, db = _setup(tmp_path)
    rc, out, _ = _scan(capsys, str(root), "--db", str(db), "--format", "json")
    rows = {r["vulnerability"]: r["severity"] for r in json.loads(out)}
    assert rows == {"DSA-1-1": "critical", "DSA-2-1": "medium", "DSA-3-1": "unknown", "GHSA-yaml-1": "high"}
    assert rc == 0  # --exit-code defaults to 0
    rc, out, _ = _scan(capsys, str(root), "--db", str(db), "--format", "json", "--severity", "CRITICAL,HIGH")
    assert {r["vulnerability"] for r in json.loads(out)} == {"DSA-1-1", "GHSA-yaml-1"}
    assert rc == 0
    rc, out, _ = _scan(
        capsys, str(root), "--db", str(db), "--format", "json", "--severity", "CRITICAL", "--exit-code", "5"
    )
    assert rc == 5 and [r["vulnerability"] for r in json.loads(out)] == ["DSA-1-1"]
    rc, out, _ = _scan(capsys, str(root), "--db", str(db), "--format", "json", "--severity", "LOW", "--exit-code", "5")
    assert rc == 0 and json.loads(out) == []  # nothing at that severity: the gate passes
    rc, _out, err = _scan(capsys, str(root), "--db", str(db), "--severity", "SEVERE")
    assert rc == 2 and "unknown severity severe" in err


def test_sarif_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, db = _setup(tmp_path)
    rc, out, _ = _scan(capsys, str(root), "--db", str(db), "--format", "sarif")
    assert rc == 0
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(rules) == {"DSA-1-1", "DSA-2-1", "DSA-3-1", "GHSA-yaml-1"}
    assert rules["DSA-3-1"]["properties"]["severity"] == "unknown"
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert by_rule["DSA-1-1"]["level"] == "error"
    assert by_rule["DSA-2-1"]["level"] == "warning"
    assert run["tool"]["driver"]["rules"][by_rule["GHSA-yaml-1"]["ruleIndex"]]["id"] == "GHSA-yaml-1"
    assert by_rule["GHSA-yaml-1"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "app/requirements.txt"
    )
    assert "fixed in 5.4" in by_rule["GHSA-yaml-1"]["message"]["text"]


def test_cyclonedx_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, db = _setup(tmp_path)
    rc, out, _ = _scan(capsys, str(root), "--db", str(db), "--format", "cyclonedx", "--severity", "UNKNOWN,CRITICAL")
    assert rc == 0
    bom = json.loads(out)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    refs = {c["bom-ref"] for c in bom["components"]}
    assert (
        len(bom["components"]) == 5
    )  # the four deb packages and the pinned pyyaml: every package, not only vulnerable ones
    assert "pkg:pypi/pyyaml@5.3.1" in refs
    vulns = {v["id"]: v for v in bom["vulnerabilities"]}
    assert set(vulns) == {"DSA-1-1", "DSA-3-1"}
    assert vulns["DSA-3-1"]["ratings"] == [{"severity": "unknown"}]
    for v in vulns.values():
        assert all(a["ref"] in refs for a in v["affects"])  # every affected ref is a component


def test_table_has_a_header_and_fits_80_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    root, db = _setup(tmp_path)
    rc, out, err = _scan(capsys, str(root), "--db", str(db))
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["PACKAGE", "VERSION", "VULNERABILITY", "SEVERITY", "FIXED", "ALIASES"]
    assert max(len(line) for line in lines) <= 80
    assert "4 vulnerabilities" in err


def test_with_db_a_broken_config_does_not_stop_the_scan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, db = _setup(tmp_path)
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("vuln: [not, a, mapping\n")
    monkeypatch.setenv("RISKGUARD_CONFIG", str(cfg))
    rc, out, err = _scan(capsys, str(root), "--db", str(db), "--format", "json")
    assert rc == 0 and len(json.loads(out)) == 4 and "warning" not in err
