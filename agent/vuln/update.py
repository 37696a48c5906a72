# SPDX-License-Identifier: Apache-2.0
"""``vulndb update``: fetch the configured public OSV exports, then import them.

Each source is downloaded with a conditional GET (``If-Modified-Since`` from the previous
download), so an unchanged export costs one request and no import. Without network the update
stops with a clear error and leaves the database as it was. Tests never call this.
"""

from __future__ import annotations

import email.utils
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import structlog

from agent.vuln.db import ImportSummary, VulnDB

log = structlog.get_logger("agent.vuln")


class UpdateError(Exception):
    """No source could be fetched (no network, HTTP errors)."""


def _local_name(url: str) -> str:
    parts = [p for p in url.split("/") if p]
    tail = "-".join(parts[-2:]) if len(parts) >= 2 else parts[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "_", tail)


def fetch(url: str, dest_dir: Path, timeout: float) -> tuple[Path, bool]:
    """Download ``url`` into ``dest_dir`` unless unchanged; returns (path, changed)."""
    dest = dest_dir / _local_name(url)
    req = urllib.request.Request(url, headers={"User-Agent": "riskguard-agent vulndb update"})
    if dest.exists():
        req.add_header("If-Modified-Since", email.utils.formatdate(dest.stat().st_mtime, usegmt=True))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # URLs come from trusted config only
            dest_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = dest.with_suffix(dest.suffix + ".part")
            with tmp.open("wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
            tmp.replace(dest)
            stamp = resp.headers.get("Last-Modified")
            if stamp:
                t = email.utils.parsedate_to_datetime(stamp).timestamp()
                os.utime(dest, (t, t))
            return dest, True
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return dest, False
        raise UpdateError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise UpdateError(f"{url}: {getattr(exc, 'reason', exc)}") from None


def update(db: VulnDB, sources: Sequence[str], dest_dir: Path, timeout: float, progress: bool = True) -> ImportSummary:
    """Fetch every source and import what changed; raises ``UpdateError`` if none was reachable."""
    fetched: list[Path] = []
    errors: list[str] = []
    for url in sources:
        try:
            path, changed = fetch(url, dest_dir, timeout)
        except UpdateError as exc:
            errors.append(str(exc))
            log.warning("vulndb_source_failed", url=url, error=str(exc))
            continue
        log.info("vulndb_source_fetched", url=url, changed=changed, path=str(path))
        fetched.append(path)
    if not fetched and errors:
        raise UpdateError("no source reachable (is there network?): " + "; ".join(errors))
    summary = db.import_paths(fetched, progress=progress)
    summary.errors.extend(errors)
    return summary
