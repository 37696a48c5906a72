# SPDX-License-Identifier: Apache-2.0
"""The vulnerability database (zip/folder/NVD import, incremental re-import, malformed input)
and the ``scan`` / ``vulndb`` command lines."""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import pytest

from agent.vuln.cli import main
from agent.vuln.db import VulnDB
from agent.vuln.inventory import read_inventory
from agent.vuln.matcher import Matcher
from agent.vuln.rootfs import DirRoot
from tests.fixtures.vuln.builders import CRITICAL, nvd_feed, osv, write_dpkg_status, write_os_release, write_records


def _zip(path: Path, records: list[dict[str, object]], extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for r in records:
            zf.writestr(f"{r['id']}.json", json.dumps(r))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def _root(tmp: Path) -> Path:
    root = tmp / "rootfs"
    write_os_release(root, "debian", "12")
    write_dpkg_status(root, [{"name": "libexpat1", "version": "2.5.0-1", "source": "expat"}])
    return root


def test_zip_import_incremental_and_withdrawal(tmp_path: Path) -> None:
    recs = [
        osv(f"DEBIAN-CVE-2024-{i:04d}", "Debian:12", "expat" if i == 1 else f"pkg{i}", fixed="2.5.0-1+deb12u1")
        for i in range(1, 51)
    ]
    z = _zip(tmp_path / "all.zip", recs, {"bad.json": b"{not json", "noid.json": b'{"modified": "x"}'})
    db = VulnDB(tmp_path / "db.sqlite")
    s1 = db.import_paths([z], progress=False)
    assert (s1.added, s1.malformed, s1.records) == (50, 2, 50)
    gen1 = db.generation()
    inv = read_inventory(DirRoot(_root(tmp_path)))
    assert [m.vulnerability for m in Matcher(db).match(inv)] == ["DEBIAN-CVE-2024-0001"]

    # Same file again: skipped without being opened.
    s2 = db.import_paths([z], progress=False)
    assert (s2.sources_skipped, s2.records) == (1, 0)
    assert db.generation() == gen1

    # A new export where one record was withdrawn (newer modified) and the rest unchanged.
    recs[0] = osv(
        "DEBIAN-CVE-2024-0001",
        "Debian:12",
        "expat",
        fixed="2.5.0-1+deb12u1",
        withdrawn=True,
        modified="2024-03-01T00:00:00Z",
    )
    time.sleep(0.01)
    _zip(z, recs)
    s3 = db.import_paths([z], progress=False)
    assert (s3.updated, s3.unchanged, s3.withdrawn) == (1, 49, 1)
    assert db.generation() == gen1 + 1
    assert Matcher(db).match(inv) == []
    st = db.status()
    assert st["vulnerabilities"] == 50 and st["withdrawn"] == 1 and st["ecosystems"] == {"Debian:12": 50}
    assert st["sources"][0]["kind"] == "zip" and st["age_seconds"] is not None


def test_folder_import_only_reads_newer_files(tmp_path: Path) -> None:
    folder = write_records(tmp_path / "osv", [osv("GHSA-1", "PyPI", "a", fixed="1")])
    db = VulnDB(tmp_path / "db.sqlite")
    assert db.import_paths([folder], progress=False).added == 1
    old = time.time() - 3600
    os.utime(folder / "GHSA-1.json", (old, old))
    write_records(folder, [osv("GHSA-2", "PyPI", "b", fixed="1")])
    s = db.import_paths([folder], progress=False)
    assert (s.records, s.added) == (1, 1)  # GHSA-1 was older than the last import: not parsed


def test_nvd_feed_and_list_documents(tmp_path: Path) -> None:
    (tmp_path / "nvd.json").write_text(json.dumps(nvd_feed([("CVE-2024-1", CRITICAL), ("CVE-2024-2", "garbage")])))
    (tmp_path / "list.json").write_text(json.dumps([osv("X-1", "npm", "x", fixed="1.0.0"), 42]))
    db = VulnDB(tmp_path / "db.sqlite")
    s = db.import_paths([tmp_path / "nvd.json", tmp_path / "list.json", tmp_path / "missing.json"], progress=False)
    assert (s.added, s.malformed) == (3, 1)
    assert s.errors == [f"{tmp_path / 'missing.json'}: no such file or directory"]
    recs = {r.id: r for r in db.records(["CVE-2024-1", "CVE-2024-2"])}
    assert recs["CVE-2024-1"].severity == "critical" and recs["CVE-2024-1"].score == 9.8
    assert recs["CVE-2024-2"].severity == ""  # an invalid vector is no rating, not an error


def test_cli_import_status_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "v.sqlite"
    feeds = write_records(
        tmp_path / "osv",
        [
            osv(
                "DSA-1-1",
                "Debian:12",
                "expat",
                fixed="2.5.0-1+deb12u1",
                aliases=["CVE-2024-9"],
                severity_vector=CRITICAL,
            )
        ],
    )
    assert main(["vulndb", "import", str(feeds), "--db", str(db), "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 1
    assert main(["vulndb", "status", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["vulnerabilities"] == 1
    root = _root(tmp_path)
    assert main(["scan", "rootfs", str(root), "--db", str(db), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "package": "libexpat1",
            "version": "2.5.0-1",
            "ecosystem": "Debian:12",
            "source_package": "expat",
            "vulnerability": "CVE-2024-9",
            "aliases": ["DSA-1-1"],
            "severity": "critical",
            "fixed_version": "2.5.0-1+deb12u1",
            "path": "/var/lib/dpkg/status",
        }
    ]
    assert main(["scan", "rootfs", str(root), "--db", str(db), "--format", "table"]) == 0
    out = capsys.readouterr().out
    assert "CVE-2024-9" in out and "libexpat1" in out


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "rootfs", str(tmp_path), "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no vulnerability database" in capsys.readouterr().err
    (tmp_path / "db.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    assert main(["vulndb", "status", "--db", str(tmp_path / "db.sqlite")]) == 2
    assert "cannot open vulnerability database" in capsys.readouterr().err
    assert main(["vulndb", "import", str(tmp_path / "nope"), "--db", str(tmp_path / "ok.sqlite"), "--quiet"]) == 2
    assert main(["scan", "rootfs", str(tmp_path / "nodir"), "--db", str(tmp_path / "ok.sqlite")]) == 2


def test_schema_v1_database_is_upgraded_and_newer_refused(tmp_path: Path) -> None:
    import sqlite3

    p = tmp_path / "old.sqlite"
    c = sqlite3.connect(p)
    c.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema', '1');"
        "CREATE TABLE vulns (origin TEXT NOT NULL, id TEXT NOT NULL, modified TEXT NOT NULL, published TEXT NOT NULL,"
        " withdrawn INTEGER NOT NULL, summary TEXT NOT NULL, severity TEXT NOT NULL, score REAL, vector TEXT NOT NULL,"
        " aliases TEXT NOT NULL, PRIMARY KEY (origin, id)) WITHOUT ROWID;"
    )
    c.close()
    db = VulnDB(p)
    db.import_paths(
        [write_records(tmp_path / "r", [osv("DSA-9-1", "Debian:12", "x", upstream=["CVE-1", "CVE-2"])])], progress=False
    )
    assert db.records(["DSA-9-1"])[0].upstream == ["CVE-1", "CVE-2"]
    db.conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        VulnDB(p)


def test_update_fetches_conditionally_from_a_loopback_mirror(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    from agent.vuln.update import UpdateError, update

    site = tmp_path / "site" / "Debian"
    site.mkdir(parents=True)
    _zip(site / "all.zip", [osv("DSA-5-1", "Debian:12", "expat", fixed="9")])
    old = time.time() - 3600
    os.utime(site / "all.zip", (old, old))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path / "site"))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/Debian/all.zip"
        db = VulnDB(tmp_path / "db.sqlite")
        dl = tmp_path / "downloads"
        s1 = update(db, [url], dl, timeout=10, progress=False)
        assert s1.added == 1 and (dl / "Debian-all.zip").exists()
        s2 = update(db, [url], dl, timeout=10, progress=False)  # 304 Not Modified → source skipped
        assert (s2.records, s2.sources_skipped) == (0, 1)
        with pytest.raises(UpdateError, match="no source reachable"):
            update(db, ["http://127.0.0.1:9/none.zip"], dl, timeout=2, progress=False)
        db.close()
    finally:
        srv.shutdown()
        srv.server_close()


def test_hostile_field_types_are_skipped_not_guessed(tmp_path: Path) -> None:
    from agent.vuln.inventory import Inventory, OsRelease, Package

    pkg = {"ecosystem": "Debian:12", "name": "a"}
    bad = [
        {"id": 5, "modified": "x", "affected": [{"package": "str"}]},
        {"id": "B", "modified": "m", "affected": "nope"},
        {"id": "C", "modified": "m", "severity": "x", "affected": []},
        # a bare-string aliases/versions must not become a list of characters
        {"id": "S", "modified": "m", "aliases": "CVE-1", "affected": [{"package": pkg, "versions": "1.0"}]},
        # an unparsable fixed bound must not turn the range into "affected forever"
        {
            "id": "F",
            "modified": "m",
            "affected": [
                {
                    "package": pkg,
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "not a version !!"}]}],
                }
            ],
        },
        {"id": "N", "modified": "m", "affected": [{"package": pkg, "ranges": [{"events": [{"introduced": None}]}]}]},
    ]
    (tmp_path / "r").mkdir()
    for i, b in enumerate(bad):
        (tmp_path / "r" / f"{i}.json").write_text(json.dumps(b))
    (tmp_path / "r" / "bin.json").write_bytes(b"\xff\xfe\x00garbage")
    db = VulnDB(tmp_path / "db.sqlite")
    s = db.import_paths([tmp_path / "r"], progress=False)
    assert (s.added, s.malformed) == (3, 4)
    assert db.records(["S"])[0].aliases == []
    inv = Inventory(
        os=OsRelease(id="debian", version_id="12"),
        packages=[Package("Debian:12", "a", "1.0", kind="deb"), Package("Debian:12", "a", "~~ !", kind="deb")],
    )
    assert Matcher(db).match(inv) == []
