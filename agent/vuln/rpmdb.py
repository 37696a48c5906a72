# SPDX-License-Identifier: Apache-2.0
"""Installed rpm packages from a container's sqlite rpmdb (rpm ≥ 4.16), read in isolation.

A container's ``rpmdb.sqlite`` is hostile input: ``Packages`` may be a recursive view, the schema
may be corrupt, a blob may be huge. So the file is copied out of the root (at most
``MAX_RPMDB_BYTES``) to a private temp file, and a sandbox child (``agent.vuln.sandbox``:
``RLIMIT_AS``, ``RLIMIT_CPU``, a wall-clock timeout) opens it read-only and immutable
(``file:…?mode=ro&immutable=1``, ``trusted_schema=OFF``, a length limit), checks that
``Packages`` is a real table in ``sqlite_master`` (a view is refused), runs one fixed
``SELECT blob FROM Packages LIMIT n`` under a progress handler that aborts after a time and
instruction budget, parses the header blobs and returns plain rows as JSON. Any failure becomes a
``ReaderFailed`` with its reason; the scan of everything else goes on.
"""

from __future__ import annotations

import re
import sqlite3
import struct
import tempfile
import time
from typing import Any
from urllib.parse import quote

from agent.vuln.limits import MAX_RPM_BLOB_BYTES, MAX_RPM_ROWS, MAX_RPMDB_BYTES, ReaderFailed
from agent.vuln.pkgmodel import OsRelease, Package, purl
from agent.vuln.rootfs import Root, RootError
from agent.vuln.sandbox import SandboxError, SandboxLimits, run_isolated

RPMDB_PATHS = ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite")
RPMTAG_NAME, RPMTAG_VERSION, RPMTAG_RELEASE, RPMTAG_EPOCH = 1000, 1001, 1002, 1003
RPMTAG_ARCH, RPMTAG_SOURCERPM = 1022, 1044
_RPM_STRING, _RPM_INT32, _RPM_I18NSTRING = 6, 4, 9
_SRPM = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<release>[^-]+)\.(?:src|nosrc)\.rpm$")

QUERY_SECONDS = 20.0  # the progress handler aborts the query after this long
QUERY_STEPS = 20_000  # … or after this many progress callbacks (10,000 VM instructions each)
LIMITS = SandboxLimits(timeout=30.0, memory_bytes=768 << 20, cpu_seconds=25, result_bytes=64 << 20)


def parse_rpm_header(blob: bytes) -> dict[int, str | int]:
    """The scalar tags of one rpm header blob as stored in rpmdb.sqlite's ``Packages.blob``.

    Layout (rpm's ``headerExport`` without the 8-byte magic): big-endian ``il`` (index count),
    ``dl`` (data length), ``il`` 16-byte entries ``(tag, type, offset, count)``, then the data.
    """
    if len(blob) < 8:
        raise ValueError("header shorter than its preamble")
    il, dl = struct.unpack_from(">II", blob, 0)
    data_start = 8 + 16 * il
    if il > 100_000 or data_start + dl > len(blob):
        raise ValueError("header index/data lengths exceed the blob")
    data = blob[data_start : data_start + dl]
    tags: dict[int, str | int] = {}
    for i in range(il):
        tag, typ, off, count = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
        if off < 0 or off >= max(dl, 1):
            continue
        if typ in (_RPM_STRING, _RPM_I18NSTRING):
            end = data.find(b"\0", off)
            tags[tag] = data[off : end if end >= 0 else len(data)].decode("utf-8", errors="replace")
        elif typ == _RPM_INT32 and count >= 1 and off + 4 <= len(data):
            tags[tag] = struct.unpack_from(">i", data, off)[0]
    return tags


def query_rpmdb(path: str, max_rows: int = MAX_RPM_ROWS) -> dict[str, Any]:
    """Rows ``[name, version, release, epoch|None, arch, sourcerpm]`` of the rpmdb at ``path``.

    Runs in the sandbox child. Raises ``ReaderFailed`` when ``Packages`` is not a table or the
    query exceeds its budget, ``sqlite3.Error`` when the file is not a usable database.
    """
    deadline = time.monotonic() + QUERY_SECONDS
    steps = 0

    def progress() -> int:
        nonlocal steps
        steps += 1
        return 1 if steps > QUERY_STEPS or time.monotonic() > deadline else 0

    conn = sqlite3.connect(f"file:{quote(path)}?mode=ro&immutable=1", uri=True)
    try:
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_RPM_BLOB_BYTES)
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.set_progress_handler(progress, 10_000)
        kind = conn.execute("SELECT type FROM sqlite_master WHERE name = 'Packages'").fetchall()
        if [k for (k,) in kind] != ["table"]:
            raise ReaderFailed(f"rpmdb Packages is {kind[0][0] if kind else 'missing'}, not a table")
        rows: list[list[Any]] = []
        skipped = 0
        try:
            cur = conn.execute("SELECT blob FROM Packages LIMIT ?", (max_rows + 1,))
            for (blob,) in cur:
                if len(rows) + skipped >= max_rows:
                    raise ReaderFailed(f"rpmdb holds more than {max_rows} rows")
                row = _row(blob)
                if row is None:
                    skipped += 1
                else:
                    rows.append(row)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise ReaderFailed(f"rpmdb query exceeded its budget ({QUERY_SECONDS:g} s)") from None
            raise
        return {"rows": rows, "skipped": skipped}
    finally:
        conn.close()


def _row(blob: object) -> list[Any] | None:
    if not isinstance(blob, bytes):
        return None
    try:
        tags = parse_rpm_header(blob)
    except (ValueError, struct.error):
        return None
    name, ver, rel = tags.get(RPMTAG_NAME), tags.get(RPMTAG_VERSION), tags.get(RPMTAG_RELEASE)
    if not (isinstance(name, str) and isinstance(ver, str) and isinstance(rel, str)):
        return None
    epoch = tags.get(RPMTAG_EPOCH)
    return [
        name,
        ver,
        rel,
        epoch if isinstance(epoch, int) else None,
        str(tags.get(RPMTAG_ARCH, "")),
        str(tags.get(RPMTAG_SOURCERPM, "")),
    ]


def read_rpm(root: Root, os_rel: OsRelease, skipped: dict[str, int]) -> list[Package]:
    """Packages from the sqlite rpmdb (rpm ≥ 4.16). BerkeleyDB and ndb databases are not read."""
    for path in RPMDB_PATHS:
        try:
            raw = root.read_bytes(path, limit=MAX_RPMDB_BYTES)
        except RootError as exc:
            if "larger than" in str(exc):
                raise ReaderFailed(str(exc)) from None
            continue
        # sqlite needs a real file: copy the bytes (read inside the root) to a private temp file.
        with tempfile.NamedTemporaryFile(prefix="rg-rpmdb-", suffix=".sqlite") as tmp:
            tmp.write(raw)
            tmp.flush()
            del raw
            try:
                result = run_isolated(query_rpmdb, tmp.name, limits=LIMITS)
            except SandboxError as exc:
                raise ReaderFailed(f"{path}: {exc}") from None
            except sqlite3.Error as exc:  # in-process inside an outer sandbox child
                raise ReaderFailed(f"{path}: {exc}") from None
        skipped["rpm"] = skipped.get("rpm", 0) + int(result["skipped"])
        return [_package(row, os_rel, path) for row in result["rows"] if row[0] != "gpg-pubkey"]
    return []


def _package(row: list[Any], os_rel: OsRelease, path: str) -> Package:
    name, ver, rel, epoch, arch, srpm = (str(row[0]), str(row[1]), str(row[2]), row[3], str(row[4]), str(row[5]))
    has_epoch = isinstance(epoch, int) and epoch > 0
    evr = f"{epoch}:{ver}-{rel}" if has_epoch else f"{ver}-{rel}"
    m = _SRPM.match(srpm)
    return Package(
        ecosystem=os_rel.osv_ecosystem or "rpm",
        name=name,
        version=evr,
        source_name=m.group("name") if m else name,
        source_version=evr,
        purl=purl(
            "rpm",
            os_rel.id,
            name,
            f"{ver}-{rel}",
            arch=arch,
            epoch=str(epoch) if has_epoch else "",
            distro=f"{os_rel.id}-{os_rel.version_id}" if os_rel.version_id else "",
        ),
        path=path,
        kind="rpm",
    )
