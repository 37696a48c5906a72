# SPDX-License-Identifier: Apache-2.0
"""The local vulnerability database: OSV and NVD CVE JSON 2.0 records in an indexed sqlite file.

``import_paths`` loads OSV JSON (a single record, a list, an ecosystem ``all.zip`` export or a
folder of records) and NVD CVE JSON 2.0 feeds. Re-import is incremental: a zip or file whose
mtime and size are unchanged is skipped without being opened, files in a folder older than the
folder's last import are skipped, and a record whose ``modified`` time equals the stored one is
not rewritten. Malformed records are counted and skipped.

OSV ``affected`` entries are stored one row per (ecosystem, package) and indexed, so the matcher
does one indexed lookup per installed package. NVD records carry no ecosystem package names (only
CPE configurations, which are not matched here): they enrich severity through aliases.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agent.vuln.dbimport import (
    RECORD_ERRORS,
    ImportSummary,
    count_files,
    iter_source,
    normalize_name,
    parse_nvd,
    parse_osv,
    split_ecosystem,
    storable,
)

__all__ = ["AffectedRow", "ImportSummary", "VulnDB", "VulnRecord", "normalize_name", "split_ecosystem"]

log = structlog.get_logger("agent.vuln")

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    path TEXT PRIMARY KEY, kind TEXT NOT NULL, mtime REAL NOT NULL, size INTEGER NOT NULL,
    imported_at REAL NOT NULL, records INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vulns (
    origin TEXT NOT NULL,           -- osv | nvd
    id TEXT NOT NULL,
    modified TEXT NOT NULL,
    published TEXT NOT NULL,
    withdrawn INTEGER NOT NULL,
    summary TEXT NOT NULL,
    severity TEXT NOT NULL,         -- critical | high | medium | low | ""
    score REAL,                     -- CVSS base score when a vector was present
    vector TEXT NOT NULL,
    aliases TEXT NOT NULL,          -- JSON list
    upstream TEXT NOT NULL DEFAULT '[]',  -- JSON list: OSV "upstream" (a DSA's CVEs …)
    PRIMARY KEY (origin, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases (alias TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (alias, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS affected (
    vuln_id TEXT NOT NULL,
    eco_base TEXT NOT NULL,         -- Debian, Alpine, PyPI, npm …
    eco_release TEXT NOT NULL,      -- 12, 3.19, 22.04 … ("" for language ecosystems)
    name TEXT NOT NULL,
    ranges TEXT NOT NULL,           -- JSON list of {"type", "events"}
    versions TEXT NOT NULL,         -- JSON list
    severity TEXT NOT NULL          -- ecosystem_specific / database_specific rating
);
CREATE INDEX IF NOT EXISTS affected_pkg ON affected(eco_base, name);
CREATE INDEX IF NOT EXISTS affected_vuln ON affected(vuln_id);
"""


@dataclass(frozen=True, slots=True)
class AffectedRow:
    vuln_id: str
    eco_base: str
    eco_release: str
    name: str
    ranges: list[dict[str, Any]]
    versions: list[str]
    severity: str


@dataclass(frozen=True, slots=True)
class VulnRecord:
    origin: str
    id: str
    modified: str
    withdrawn: bool
    summary: str
    severity: str
    score: float | None
    vector: str
    aliases: list[str]
    upstream: list[str] = field(default_factory=list)


class VulnDB:
    """A handle on one vulnerability database file (created on first use)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        row = self.conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise RuntimeError(f"vulnerability database {path} is newer (schema {row[0]}) than this agent")
        if row is not None and int(row[0]) < 2:
            self.conn.execute("ALTER TABLE vulns ADD COLUMN upstream TEXT NOT NULL DEFAULT '[]'")
        self.conn.execute(
            "INSERT INTO meta VALUES ('schema', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )

    def close(self) -> None:
        self.conn.close()

    # --- metadata ----------------------------------------------------------------------
    def generation(self) -> int:
        """A counter bumped by every import that changed records (the matcher's cache key)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def status(self) -> dict[str, Any]:
        """Sources, counts and age, for ``vulndb status``."""
        c = self.conn
        sources = [
            {
                "path": r[0],
                "kind": r[1],
                "imported_at": r[2],
                "records": r[3],
                "age_seconds": round(time.time() - r[2]),
            }
            for r in c.execute("SELECT path, kind, imported_at, records FROM sources ORDER BY path")
        ]
        by_eco = {
            r[0]: r[1]
            for r in c.execute(
                "SELECT eco_base || CASE WHEN eco_release = '' THEN '' ELSE ':' || eco_release END, "
                "COUNT(DISTINCT vuln_id) FROM affected GROUP BY 1 ORDER BY 1"
            )
        }
        last = c.execute("SELECT MAX(imported_at) FROM sources").fetchone()[0]
        newest = c.execute("SELECT MAX(modified) FROM vulns").fetchone()[0]
        return {
            "path": str(self.path),
            "generation": self.generation(),
            "vulnerabilities": c.execute("SELECT COUNT(*) FROM vulns WHERE origin='osv'").fetchone()[0],
            "nvd_cves": c.execute("SELECT COUNT(*) FROM vulns WHERE origin='nvd'").fetchone()[0],
            "withdrawn": c.execute("SELECT COUNT(*) FROM vulns WHERE withdrawn=1").fetchone()[0],
            "affected_rows": c.execute("SELECT COUNT(*) FROM affected").fetchone()[0],
            "ecosystems": by_eco,
            "sources": sources,
            "last_import": last,
            "age_seconds": round(time.time() - last) if last else None,
            "newest_modified": newest or "",
            "size_bytes": self.path.stat().st_size if self.path.exists() else 0,
        }

    # --- queries -----------------------------------------------------------------------
    def affected_for(self, eco_base: str, name: str, release: str | None = None) -> list[AffectedRow]:
        """Non-withdrawn affected entries for one package name in one ecosystem family; with
        ``release``, only entries of that release (or of no release)."""
        sql = (
            "SELECT a.vuln_id, a.eco_base, a.eco_release, a.name, a.ranges, a.versions, a.severity "
            "FROM affected a JOIN vulns v ON v.origin = 'osv' AND v.id = a.vuln_id "
            "WHERE a.eco_base = ? AND a.name = ? AND v.withdrawn = 0"
        )
        params: tuple[str, ...] = (eco_base, normalize_name(eco_base, name))
        if release is not None:
            sql += " AND a.eco_release IN (?, '')"
            params += (release,)
        rows = self.conn.execute(sql, params)
        return [AffectedRow(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[6]) for r in rows]

    def records(self, ids: Iterable[str]) -> list[VulnRecord]:
        """Every record (OSV and NVD) whose id is in ``ids``."""
        wanted = sorted(set(ids))
        out: list[VulnRecord] = []
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            q = ",".join("?" * len(chunk))
            out.extend(
                VulnRecord(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6], r[7], json.loads(r[8]), json.loads(r[9]))
                for r in self.conn.execute(
                    "SELECT origin, id, modified, withdrawn, summary, severity, score, vector, aliases, upstream "
                    f"FROM vulns WHERE id IN ({q})",
                    chunk,
                )
            )
        return out

    def aliases_of(self, ids: Iterable[str]) -> dict[str, set[str]]:
        """Ids that name ``ids`` as an alias (reverse aliases), keyed by the alias."""
        wanted = sorted(set(ids))
        out: dict[str, set[str]] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            q = ",".join("?" * len(chunk))
            for alias, vid in self.conn.execute(f"SELECT alias, id FROM aliases WHERE alias IN ({q})", chunk):
                out.setdefault(alias, set()).add(vid)
        return out

    # --- import ------------------------------------------------------------------------
    def import_paths(self, paths: Iterable[str | os.PathLike[str]], progress: bool = True) -> ImportSummary:
        """Import every path (file, zip or folder); returns the counts."""
        summary = ImportSummary()
        start = time.monotonic()
        known: dict[str, str] = {
            f"{o}\0{i}": m for o, i, m in self.conn.execute("SELECT origin, id, modified FROM vulns")
        }
        from tqdm import tqdm  # the progress bar of `vulndb import`; the daemon never loads it

        bar = tqdm(desc="import", unit="file", total=0, file=sys.stderr, disable=not progress, mininterval=0.5)
        changed = False
        try:
            for p in paths:
                path = Path(p)
                if not path.exists():
                    summary.errors.append(f"{path}: no such file or directory")
                    continue
                st = path.stat()
                prev = self.conn.execute(
                    "SELECT mtime, size, imported_at FROM sources WHERE path = ?", (str(path.resolve()),)
                ).fetchone()
                kind = "folder" if path.is_dir() else ("zip" if zipfile.is_zipfile(path) else "json")
                if kind != "folder" and prev is not None and prev[0] == st.st_mtime and prev[1] == st.st_size:
                    summary.sources_skipped += 1
                    continue
                since = prev[2] if (kind == "folder" and prev is not None) else 0.0
                summary.sources += 1
                bar.total = (bar.total or 0) + count_files(path, kind, since)
                bar.refresh()
                before = summary.records
                batch: list[dict[str, Any]] = []
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    for rec in iter_source(path, kind, since, summary, bar):
                        batch.append(rec)
                        if len(batch) >= 2000:
                            changed |= self._write(batch, known, summary)
                            batch = []
                    if batch:
                        changed |= self._write(batch, known, summary)
                    self.conn.execute(
                        "INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET "
                        "kind=excluded.kind, mtime=excluded.mtime, size=excluded.size, "
                        "imported_at=excluded.imported_at, "
                        "records=sources.records * (excluded.kind = 'folder') + excluded.records",
                        (
                            str(path.resolve()),
                            kind,
                            st.st_mtime,
                            st.st_size,
                            time.time(),
                            summary.records - before,
                        ),
                    )
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
            if changed:
                self.conn.execute(
                    "INSERT INTO meta VALUES ('generation', '1') "
                    "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                )
        finally:
            bar.close()
        summary.seconds = round(time.monotonic() - start, 3)
        log.info(
            "vulndb_imported",
            db=str(self.path),
            **{k: v for k, v in summary.to_dict().items() if k != "errors"},
        )
        return summary

    def _write(self, batch: list[dict[str, Any]], known: dict[str, str], summary: ImportSummary) -> bool:
        vulns: list[tuple[Any, ...]] = []
        affected: list[tuple[Any, ...]] = []
        aliases: list[tuple[str, str]] = []
        replaced: list[tuple[str]] = []
        for rec in batch:
            # Cheap pre-check: an unchanged record is skipped before any parsing or CVSS scoring.
            nvd = bool(rec.get("__nvd__"))
            quick = known.get(f"{'nvd' if nvd else 'osv'}\0{rec.get('id')}")
            if quick is not None and quick == str(rec.get("lastModified" if nvd else "modified") or ""):
                summary.records += 1
                summary.unchanged += 1
                continue
            try:
                parsed = parse_nvd(rec) if rec.get("__nvd__") else parse_osv(rec)
            except RECORD_ERRORS as exc:
                summary.malformed += 1
                log.debug("vulndb_record_malformed", id=str(rec.get("id", "?"))[:80], reason=str(exc)[:200])
                continue
            summary.records += 1
            row, aff = storable(parsed[0]), [storable(a) for a in parsed[1]]
            origin, vid, modified = row[0], row[1], row[2]
            key = f"{origin}\0{vid}"
            prev = known.get(key)
            if prev == modified:
                summary.unchanged += 1
                continue
            if prev is None:
                summary.added += 1
            else:
                summary.updated += 1
                if origin == "osv":
                    replaced.append((vid,))
            if row[4]:
                summary.withdrawn += 1
            known[key] = modified
            vulns.append(row)
            affected.extend(aff)
            aliases.extend((storable(a), vid) for a in json.loads(row[9]))
        if replaced:
            self.conn.executemany("DELETE FROM affected WHERE vuln_id = ?", replaced)
            self.conn.executemany("DELETE FROM aliases WHERE id = ?", replaced)
        self.conn.executemany("INSERT OR REPLACE INTO vulns VALUES (?,?,?,?,?,?,?,?,?,?,?)", vulns)
        self.conn.executemany("INSERT INTO affected VALUES (?,?,?,?,?,?,?)", affected)
        self.conn.executemany("INSERT OR IGNORE INTO aliases VALUES (?,?)", aliases)
        return bool(vulns)
