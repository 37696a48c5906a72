# SPDX-License-Identifier: Apache-2.0
"""Reading vulnerability sources for ``VulnDB.import_paths``: OSV JSON (a record, a list, a zip
export, a folder) and NVD CVE JSON 2.0 feeds, parsed into database rows.

Every source is untrusted and bounded: a JSON document is at most ``MAX_JSON_BYTES`` and nested
at most ``MAX_JSON_DEPTH`` deep; a zip entry is read only when its declared size is at most
``MAX_ZIP_ENTRY_BYTES``, and then as a stream capped at that size (a 1 GiB entry in a 1 MB zip is
never decompressed); a corrupt, encrypted or unsupported entry is counted and skipped, and the
rest of the zip goes on. One bad record (or NVD item) is counted ``malformed`` and skipped;
strings are made storable (lone surrogates replaced) so no single record can fail a batch.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from agent.vuln.limits import MAX_JSON_BYTES, MAX_ZIP_ENTRY_BYTES, JsonLimitError, loads_bounded
from agent.vuln.severity import rating_from_nvd, rating_from_osv

log = structlog.get_logger("agent.vuln")

# What parsing one record may raise on hostile content: counted malformed, never propagated.
RECORD_ERRORS = (KeyError, TypeError, ValueError, AttributeError, RecursionError, OverflowError)
# What reading one zip entry may raise on a corrupt, encrypted or unsupported entry.
ZIP_ENTRY_ERRORS = (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, EOFError, OSError)
MAX_ERRORS_LISTED = 50  # error lines kept per import (the counts hold the rest)


_PEP503 = re.compile(r"[-_.]+")


def split_ecosystem(ecosystem: str) -> tuple[str, str]:
    """``Debian:12`` → (``Debian``, ``12``); ``Alpine:v3.19`` → (``Alpine``, ``3.19``);
    ``Ubuntu:Pro:22.04:LTS`` → (``Ubuntu``, ``22.04``); ``PyPI`` → (``PyPI``, ``"")``."""
    base, _, rest = ecosystem.partition(":")
    if not rest:
        return base, ""
    if base == "Ubuntu":
        m = re.search(r"\d+\.\d+", rest)
        return base, m.group(0) if m else rest
    if base == "Alpine":
        return base, rest.lstrip("v")
    return base, rest


def normalize_name(eco_base: str, name: str) -> str:
    """Package names as the ecosystem compares them (PyPI: PEP 503)."""
    if eco_base == "PyPI":
        return _PEP503.sub("-", name).lower()
    return name


@dataclass
class ImportSummary:
    """Counts of one ``import_paths`` run."""

    sources: int = 0
    sources_skipped: int = 0
    records: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    malformed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def add_error(summary: ImportSummary, message: str) -> None:
    """Record one error line (at most ``MAX_ERRORS_LISTED`` are kept)."""
    if len(summary.errors) < MAX_ERRORS_LISTED:
        summary.errors.append(message[:300])


def storable(value: Any) -> Any:
    """``value`` with lone surrogates in its strings replaced (sqlite stores UTF-8 only)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, tuple):
        return tuple(storable(v) for v in value)
    return value


def iter_source(path: Path, kind: str, since: float, summary: ImportSummary, bar: Any) -> Iterator[dict[str, Any]]:
    """The records of one source (a folder, a zip or a JSON file); bad parts counted and skipped."""
    if kind == "folder":
        for f in sorted(path.rglob("*.json")):
            data = read_json_file(f, summary, since)
            if data is None:
                continue
            bar.update(1)
            yield from records_of(data, str(f), summary)
    elif kind == "zip":
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.filename.endswith(".json"):
                        bar.update(1)
                        entry = read_zip_entry(zf, info, f"{path}!{info.filename}", summary)
                        if entry is not None:
                            yield from records_of(entry, f"{path}!{info.filename}", summary)
        except (zipfile.BadZipFile, OSError) as exc:
            add_error(summary, f"{path}: {exc}")
    else:
        data = read_json_file(path, summary)
        if data is None:
            return
        bar.update(1)
        yield from records_of(data, str(path), summary)


def read_json_file(f: Path, summary: ImportSummary, since: float | None = None) -> bytes | None:
    """``f``'s bytes; None when not modified after ``since``, or (an error counted) too large or unreadable."""
    try:
        st = f.stat()
        if since is not None and st.st_mtime <= since:
            return None
        if st.st_size > MAX_JSON_BYTES:
            summary.malformed += 1
            add_error(summary, f"{f}: larger than {MAX_JSON_BYTES} bytes, skipped")
            return None
        return f.read_bytes()
    except OSError as exc:
        add_error(summary, f"{f}: {exc.strerror}")
        return None


def read_zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, summary: ImportSummary) -> bytes | None:
    """One entry's bytes, or ``None`` (counted malformed) when it is too big, corrupt or encrypted."""
    if info.file_size > MAX_ZIP_ENTRY_BYTES:
        summary.malformed += 1
        add_error(summary, f"{where}: entry of {info.file_size} bytes is larger than {MAX_ZIP_ENTRY_BYTES}, skipped")
        return None
    try:
        with zf.open(info) as f:
            data = f.read(MAX_ZIP_ENTRY_BYTES + 1)  # the declared size may lie: the read is capped
    except ZIP_ENTRY_ERRORS as exc:
        summary.malformed += 1
        add_error(summary, f"{where}: unreadable entry ({type(exc).__name__}: {exc}), skipped")
        return None
    if len(data) > MAX_ZIP_ENTRY_BYTES:
        summary.malformed += 1
        add_error(summary, f"{where}: entry larger than {MAX_ZIP_ENTRY_BYTES} bytes, skipped")
        return None
    return data


def records_of(data: bytes, where: str, summary: ImportSummary) -> Iterator[dict[str, Any]]:
    """The record dicts of one JSON document (NVD items tagged ``__nvd__``)."""
    try:
        doc = loads_bounded(data)
    except JsonLimitError as exc:
        summary.malformed += 1
        add_error(summary, f"{where}: {exc}, skipped")
        return
    except ValueError:
        summary.malformed += 1
        log.debug("vulndb_record_malformed", where=where, reason="not JSON")
        return
    if isinstance(doc, dict) and isinstance(doc.get("vulnerabilities"), list):  # NVD CVE JSON 2.0
        for item in doc["vulnerabilities"]:
            cve = item.get("cve") if isinstance(item, dict) else None
            if isinstance(cve, dict):
                yield {**cve, "__nvd__": True}
            else:
                summary.malformed += 1
    elif isinstance(doc, list):
        for item in doc:
            if isinstance(item, dict):
                yield item
            else:
                summary.malformed += 1
    elif isinstance(doc, dict):
        yield doc
    else:
        summary.malformed += 1


def str_list(value: Any) -> list[str]:
    """The strings of a JSON list (anything else, e.g. a bare string, counts as empty)."""
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def count_files(path: Path, kind: str, since: float) -> int:
    """How many JSON files a source holds (the progress bar's total; NVD feeds count as one)."""
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                return sum(1 for i in zf.infolist() if i.filename.endswith(".json"))
        if kind == "folder":
            return sum(1 for f in path.rglob("*.json") if f.stat().st_mtime > since)
    except (OSError, zipfile.BadZipFile):
        return 0
    return 1


def parse_osv(rec: dict[str, Any]) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    vid = str(rec["id"])
    if not vid or not isinstance(rec.get("affected", []), list):
        raise ValueError("OSV record without id or with a malformed affected list")
    modified = str(rec.get("modified") or "")
    if not modified:
        raise ValueError("OSV record without modified")
    severity, score, vector = rating_from_osv(rec)
    aliases = sorted(set(str_list(rec.get("aliases"))) - {vid})
    upstream = sorted(set(str_list(rec.get("upstream"))) - {vid})
    row = (
        "osv",
        vid,
        modified,
        str(rec.get("published") or ""),
        1 if rec.get("withdrawn") else 0,
        str(rec.get("summary") or rec.get("details") or "")[:300],
        severity,
        score,
        vector,
        json.dumps(aliases),
        json.dumps(upstream),
    )
    affected = []
    for a in rec.get("affected") or []:
        pkg = a.get("package") or {}
        eco, name = str(pkg.get("ecosystem") or ""), str(pkg.get("name") or "")
        if not eco or not name:
            continue  # affected by commit ranges only (GIT): nothing to match packages against
        base, release = split_ecosystem(eco)
        ranges = []
        for r in a.get("ranges") or []:
            events = [
                {
                    k: str(v)
                    for k, v in e.items()
                    if k in ("introduced", "fixed", "last_affected", "limit") and isinstance(v, (str, int))
                }
                for e in r.get("events") or []
                if isinstance(e, dict)
            ]
            ranges.append({"type": str(r.get("type") or ""), "events": [e for e in events if e]})
        versions = str_list(a.get("versions"))
        spec = {**(a.get("database_specific") or {}), **(a.get("ecosystem_specific") or {})}
        aff_sev = str(spec.get("severity") or spec.get("urgency") or "")
        affected.append(
            (
                vid,
                base,
                release,
                normalize_name(base, name),
                json.dumps(ranges, separators=(",", ":")),
                json.dumps(versions),
                aff_sev,
            )
        )
    return row, affected


def parse_nvd(cve: dict[str, Any]) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    vid = str(cve["id"])
    modified = str(cve.get("lastModified") or "")
    if not vid.startswith("CVE-") or not modified:
        raise ValueError("NVD item without a CVE id or lastModified")
    severity, score, vector = rating_from_nvd(cve.get("metrics") or {})
    desc = next((d.get("value", "") for d in cve.get("descriptions") or [] if d.get("lang") == "en"), "")
    row = (
        "nvd",
        vid,
        modified,
        str(cve.get("published") or ""),
        1 if str(cve.get("vulnStatus", "")).lower() == "rejected" else 0,
        str(desc)[:300],
        severity,
        score,
        vector,
        "[]",
        "[]",
    )
    return row, []
