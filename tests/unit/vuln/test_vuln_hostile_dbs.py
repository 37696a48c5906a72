# SPDX-License-Identifier: Apache-2.0
"""Hostile package databases cost their own reader, bounded in memory and time, never the scan.

Each test builds the hostile file itself (a recursive-view rpmdb, a corrupt one, a huge METADATA,
nested package.json) next to an ordinary dpkg database that must still be read.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from agent.vuln.inventory import read_inventory
from agent.vuln.limits import MAX_METADATA_BYTES
from agent.vuln.rootfs import DirRoot
from agent.vuln.rpmdb import query_rpmdb
from agent.vuln.sandbox import SandboxError, SandboxLimits, run_isolated
from tests.fixtures.vuln.builders import write_dpkg_status, write_os_release, write_rpmdb


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    write_os_release(root, "debian", "12")
    write_dpkg_status(root, [{"name": "libexpat1", "version": "2.5.0-1"}])
    return root


def _rpmdb(root: Path, *sql: str) -> Path:
    d = root / "var" / "lib" / "rpm"
    d.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(d / "rpmdb.sqlite")
    for stmt in sql:
        conn.execute(stmt)
    conn.commit()
    conn.close()
    return d / "rpmdb.sqlite"


def _inventory(root: Path) -> tuple[object, float]:
    t0 = time.monotonic()
    r = DirRoot(root)
    try:
        inv = read_inventory(r)
    finally:
        r.close()
    return inv, time.monotonic() - t0


RECURSIVE_VIEW = (
    "CREATE VIEW Packages AS WITH RECURSIVE r(n, blob) AS (SELECT 1, zeroblob(1000) "
    "UNION ALL SELECT n + 1, zeroblob(1000) FROM r) SELECT n AS hnum, blob FROM r"
)


def test_recursive_view_rpmdb_is_refused_and_dpkg_still_read(tmp_path: Path) -> None:
    root = _root(tmp_path)
    db = _rpmdb(root, RECURSIVE_VIEW)
    assert db.stat().st_size < 16 << 10  # a few KiB that used to grow the agent by gigabytes
    inv, seconds = _inventory(root)
    assert [p.name for p in inv.packages] == ["libexpat1"]  # type: ignore[attr-defined]
    assert "view" in inv.failures["rpm"]  # type: ignore[attr-defined]
    assert inv.skipped["rpm"] == 1  # type: ignore[attr-defined]
    assert seconds < 20


def test_packages_view_is_refused_before_any_query(tmp_path: Path) -> None:
    db = _rpmdb(tmp_path, "CREATE TABLE real(x)", "CREATE VIEW Packages AS SELECT x AS blob FROM real")
    with pytest.raises(Exception, match="not a table"):
        query_rpmdb(str(db))


def test_corrupt_rpmdb_is_a_reader_failure(tmp_path: Path) -> None:
    root = _root(tmp_path)
    d = root / "var" / "lib" / "rpm"
    d.mkdir(parents=True)
    (d / "rpmdb.sqlite").write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    inv, _ = _inventory(root)
    assert [p.name for p in inv.packages] == ["libexpat1"]  # type: ignore[attr-defined]
    assert inv.failures["rpm"]  # type: ignore[attr-defined]


def test_oversized_generated_blob_stops_at_the_length_limit(tmp_path: Path) -> None:
    # A real table whose rows are produced by a generated column over a huge zeroblob: the fixed
    # SELECT must stop at the length limit instead of materialising gigabytes.
    db = _rpmdb(
        tmp_path,
        "CREATE TABLE Packages(hnum INTEGER PRIMARY KEY, n INTEGER)",
        "INSERT INTO Packages(n) VALUES (900000000)",
        "PRAGMA writable_schema=ON",
        "UPDATE sqlite_master SET sql = 'CREATE TABLE Packages(hnum INTEGER PRIMARY KEY, n INTEGER, "
        "blob AS (zeroblob(n)))' WHERE name = 'Packages'",
    )
    with pytest.raises(sqlite3.Error):
        query_rpmdb(str(db))


def test_ordinary_rpmdb_still_reads(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    write_os_release(root, "rocky", "9.3")
    write_rpmdb(root, [{"name": "bash", "version": "5.1.8", "release": "6.el9_1"}])
    inv, _ = _inventory(root)
    assert [(p.kind, p.name, p.version) for p in inv.packages] == [("rpm", "bash", "5.1.8-6.el9_1")]  # type: ignore[attr-defined]
    assert inv.failures == {}  # type: ignore[attr-defined]


def test_huge_python_metadata_is_skipped_and_a_small_one_with_a_big_body_read(tmp_path: Path) -> None:
    root = _root(tmp_path)
    site = root / "usr" / "lib" / "python3.11" / "site-packages"
    (site / "huge-1.0.dist-info").mkdir(parents=True)
    (site / "huge-1.0.dist-info" / "METADATA").write_bytes(
        b"Name: huge\nVersion: 1.0\n" + b"X-Pad: " + b"a" * (MAX_METADATA_BYTES * 8) + b"\n"
    )
    (site / "ok-2.0.dist-info").mkdir()
    (site / "ok-2.0.dist-info" / "METADATA").write_bytes(b"Name: ok\nVersion: 2.0\n\n" + b"description line\n" * 50_000)
    inv, _ = _inventory(root)
    assert sorted(p.name for p in inv.packages) == ["libexpat1", "ok"]  # type: ignore[attr-defined]
    assert inv.skipped["pypi"] == 1  # type: ignore[attr-defined]


def test_nested_package_json_is_skipped(tmp_path: Path) -> None:
    root = _root(tmp_path)
    pkg = root / "app" / "node_modules" / "deep"
    pkg.mkdir(parents=True)
    (pkg / "package.json").write_text('{"name": "deep", "version": "1.0.0", "x": ' + "[" * 50_000 + "]" * 50_000 + "}")
    ok = root / "app" / "node_modules" / "fine"
    ok.mkdir()
    (ok / "package.json").write_text('{"name": "fine", "version": "1.0.0"}')
    inv, _ = _inventory(root)
    assert sorted(p.name for p in inv.packages) == ["fine", "libexpat1"]  # type: ignore[attr-defined]
    assert inv.skipped["npm"] == 1  # type: ignore[attr-defined]


# --- the sandbox itself ----------------------------------------------------------------------
def _allocate(n: int) -> int:
    return len(bytearray(n))


def _sleep(seconds: float) -> int:
    time.sleep(seconds)
    return 0


def _spin() -> int:
    while True:
        pass


def _die() -> int:
    os._exit(3)


def _echo(value: object) -> object:
    return value


def test_sandbox_returns_json_results() -> None:
    assert run_isolated(_echo, {"a": [1, "b"]}) == {"a": [1, "b"]}


@pytest.mark.parametrize(
    ("fn", "args", "limits", "kind"),
    [
        (_allocate, (3 << 30,), SandboxLimits(memory_bytes=512 << 20), "memory"),
        (_sleep, (30.0,), SandboxLimits(timeout=1.0), "timeout"),
        (_spin, (), SandboxLimits(timeout=20.0, cpu_seconds=1), "cpu"),
        (_die, (), SandboxLimits(), "crashed"),
        (_echo, ("x" * 4096,), SandboxLimits(result_bytes=1024), "result"),
    ],
)
def test_sandbox_failures_have_a_kind(fn: object, args: tuple[object, ...], limits: SandboxLimits, kind: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(SandboxError) as err:
        run_isolated(fn, *args, limits=limits)  # type: ignore[arg-type]
    assert err.value.kind == kind, str(err.value)
    assert time.monotonic() - t0 < 15


def test_a_paragraph_python_debian_refuses_costs_only_itself() -> None:
    """Found by the fuzzer: ``Package: \\n : x\\n : `` made Deb822 raise ``ValueError`` (blank
    continuation line) and the whole dpkg reader was lost; a lone surrogate raised
    ``UnicodeEncodeError``. Each is now one skipped paragraph."""
    from agent.vuln.inventory import parse_dpkg_status
    from agent.vuln.pkgmodel import OsRelease

    good = "Package: a\nStatus: install ok installed\nVersion: 1\n"
    text = "\n\n".join([good, "Package: \n : \x1e0\n : ", good.replace(": a", ": b"), "Package: c\udfff\nVersion: 2\n"])
    skipped: dict[str, int] = {}
    pkgs = parse_dpkg_status(text, OsRelease(id="debian", version_id="12"), "/var/lib/dpkg/status", skipped)
    assert [p.name for p in pkgs] == ["a", "b", "c?"]
    assert skipped == {"dpkg": 1}


def _oom_score_adj() -> int:
    return int(Path("/proc/self/oom_score_adj").read_text())


def test_sandbox_child_is_the_oom_killers_first_choice() -> None:
    """Under the service's MemoryMax a hostile parse must be what the kernel kills, not the agent."""
    assert run_isolated(_oom_score_adj) == 1000
    assert _oom_score_adj() < 1000
