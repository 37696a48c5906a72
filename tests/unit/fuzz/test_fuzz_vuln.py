# SPDX-License-Identifier: Apache-2.0
"""Property-based fuzzing of the OSV/NVD import and the package-database readers: any record is
imported or counted malformed; any database text yields packages or counted skips; nothing
raises past its reader."""

from __future__ import annotations

import io
import json
import sqlite3
import struct
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.vuln.db import VulnDB
from agent.vuln.dbimport import RECORD_ERRORS, ImportSummary, parse_nvd, parse_osv, records_of
from agent.vuln.inventory import parse_apk_installed, parse_dpkg_status, read_inventory
from agent.vuln.limits import JsonLimitError, loads_bounded
from agent.vuln.pkgmodel import Inventory, OsRelease
from agent.vuln.rootfs import DirRoot, RootError
from agent.vuln.rpmdb import parse_rpm_header, query_rpmdb
from agent.vuln.tarroot import TarImageRoot

TEXT = st.text(st.one_of(st.characters(), st.sampled_from(["\udfff", "\x00", "\n", ":", " "])), max_size=40)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(allow_nan=False), TEXT)
JSON = st.recursive(SCALAR, lambda ch: st.lists(ch, max_size=4) | st.dictionaries(TEXT, ch, max_size=4), max_leaves=25)
OSV_KEYS = ["id", "modified", "published", "withdrawn", "summary", "details", "aliases", "upstream", "affected"]
AFFECTED = st.fixed_dictionaries(
    {},
    optional={
        "package": st.one_of(
            JSON, st.fixed_dictionaries({"ecosystem": st.one_of(TEXT, JSON), "name": st.one_of(TEXT, JSON)})
        ),
        "ranges": st.one_of(
            JSON,
            st.lists(
                st.fixed_dictionaries(
                    {
                        "type": JSON,
                        "events": st.one_of(
                            JSON, st.lists(st.dictionaries(st.sampled_from(["introduced", "fixed", "limit"]), SCALAR))
                        ),
                    }
                ),
                max_size=3,
            ),
        ),
        "versions": JSON,
        "database_specific": JSON,
        "ecosystem_specific": JSON,
        "severity": JSON,
    },
)
OSV = st.fixed_dictionaries(
    {"id": st.one_of(TEXT, JSON), "modified": st.one_of(TEXT, JSON)},
    optional={k: JSON for k in OSV_KEYS[2:-1]}
    | {
        "affected": st.one_of(JSON, st.lists(AFFECTED, max_size=3)),
        "severity": st.one_of(
            JSON,
            st.lists(
                st.fixed_dictionaries(
                    {
                        "type": st.sampled_from(["CVSS_V3", "CVSS_V2", "CVSS_V4", "x"]),
                        "score": st.one_of(TEXT, st.just("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")),
                    }
                ),
                max_size=2,
            ),
        ),
    },
)
NVD = st.fixed_dictionaries(
    {"id": st.one_of(st.from_regex(r"CVE-\d{4}-\d{1,7}", fullmatch=True), JSON), "lastModified": st.one_of(TEXT, JSON)},
    optional={
        "descriptions": st.one_of(
            JSON, st.lists(st.fixed_dictionaries({"lang": st.just("en"), "value": st.one_of(TEXT, JSON)}))
        ),
        "metrics": st.one_of(
            JSON,
            st.fixed_dictionaries(
                {
                    "cvssMetricV31": st.lists(
                        st.fixed_dictionaries(
                            {
                                "cvssData": st.one_of(
                                    JSON,
                                    st.fixed_dictionaries({"vectorString": st.one_of(TEXT, JSON), "baseScore": SCALAR}),
                                )
                            }
                        ),
                        max_size=2,
                    )
                }
            ),
        ),
        "vulnStatus": JSON,
    },
)


@given(st.one_of(OSV, JSON))
def test_osv_records_parse_or_are_malformed(rec: Any) -> None:
    if not isinstance(rec, dict):
        return
    try:
        parse_osv(rec)
    except RECORD_ERRORS:
        pass


@given(st.one_of(NVD, JSON))
def test_nvd_items_parse_or_are_malformed(cve: Any) -> None:
    if not isinstance(cve, dict):
        return
    try:
        parse_nvd(cve)
    except RECORD_ERRORS:
        pass


@given(st.one_of(st.binary(max_size=200), JSON.map(lambda v: json.dumps(v).encode())))
def test_documents_yield_records_or_count_malformed(data: bytes) -> None:
    summary = ImportSummary()
    for rec in records_of(data, "fuzz", summary):
        assert isinstance(rec, dict)


@given(
    st.lists(
        st.one_of(
            OSV,
            st.fixed_dictionaries(
                {"vulnerabilities": st.lists(st.one_of(NVD.map(lambda c: {"cve": c}), JSON), max_size=4)}
            ),
            JSON,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_import_never_raises_and_keeps_good_records(docs: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "feeds"
        folder.mkdir()
        for i, doc in enumerate(docs):
            (folder / f"{i}.json").write_text(json.dumps(doc))
        db = VulnDB(Path(tmp) / "db.sqlite")
        try:
            s = db.import_paths([folder], progress=False)
            assert s.records >= s.added + s.updated
            assert db.status()["vulnerabilities"] + db.status()["nvd_cves"] == s.added
        finally:
            db.close()


@given(st.integers(1, 200), st.booleans())
def test_bounded_json_refuses_deep_nesting(depth: int, objects: bool) -> None:
    doc = ('{"a":' * depth + "1" + "}" * depth) if objects else ("[" * depth + "]" * depth)
    try:
        value = loads_bounded(doc, max_depth=64)
    except JsonLimitError:
        assert depth > 64
    else:
        assert depth <= 64 and value is not None


DPKG_FIELD = st.sampled_from(["Package", "Version", "Status", "Source", "Architecture", "Description", " ", "X"])
DPKG_TEXT = st.lists(st.tuples(DPKG_FIELD, TEXT), max_size=20).map(lambda kv: "\n".join(f"{k}: {v}" for k, v in kv))
APK_TEXT = st.lists(st.tuples(st.sampled_from(list("PVoAxx ")), TEXT), max_size=20).map(
    lambda kv: "\n".join(f"{k}:{v}" for k, v in kv)
)


@given(st.one_of(DPKG_TEXT, TEXT, st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_dpkg_status_text_parses(text: str) -> None:
    skipped: dict[str, int] = {}
    for p in parse_dpkg_status(text, OsRelease(id="debian", version_id="12"), "/s", skipped):
        assert p.name and p.version


@given(st.one_of(APK_TEXT, TEXT))
def test_apk_installed_text_parses(text: str) -> None:
    skipped: dict[str, int] = {}
    for p in parse_apk_installed(text, OsRelease(id="alpine", version_id="3.19"), "/a", skipped):
        assert p.name and p.version


@st.composite
def rpm_headers(draw: st.DrawFn) -> bytes:
    entries = draw(
        st.lists(
            st.tuples(
                st.sampled_from([1000, 1001, 1002, 1003, 1022, 1044, 7]),
                st.sampled_from([4, 6, 9, 8, 0]),
                st.integers(-10, 300),
                st.integers(0, 2**32 - 1),
            ),
            max_size=8,
        )
    )
    data = draw(st.binary(max_size=200))
    il = draw(st.one_of(st.just(len(entries)), st.integers(0, 2**32 - 1)))
    dl = draw(st.one_of(st.just(len(data)), st.integers(0, 2**32 - 1)))
    return struct.pack(">II", il, dl) + b"".join(struct.pack(">iIiI", *e) for e in entries) + data


@given(st.one_of(rpm_headers(), st.binary(max_size=200)))
def test_rpm_headers_parse_or_are_refused(blob: bytes) -> None:
    try:
        parse_rpm_header(blob)
    except (ValueError, struct.error):
        pass


@given(st.lists(st.one_of(rpm_headers(), st.binary(max_size=64), st.integers(-(2**63), 2**63 - 1), TEXT), max_size=8))
def test_rpmdb_rows_of_any_type_are_rows_or_skips(blobs: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rpmdb.sqlite"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)")
        conn.executemany(
            "INSERT INTO Packages(blob) VALUES (?)",
            [(b.encode("utf-8", "surrogatepass") if isinstance(b, str) else b,) for b in blobs],
        )
        conn.commit()
        conn.close()
        out = query_rpmdb(str(path))
        assert len(out["rows"]) + out["skipped"] == len(blobs)


@given(
    st.dictionaries(
        st.sampled_from(["METADATA", "PKG-INFO", "package.json"]),
        st.one_of(TEXT, JSON.map(json.dumps), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))),
        min_size=1,
    )
)
def test_language_metadata_files_are_read_or_skipped(files: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        site = root / "usr/lib/python3.11/site-packages"
        node = root / "app/node_modules/x"
        (site / "x-1.dist-info").mkdir(parents=True)
        (site / "y.egg-info").mkdir()
        node.mkdir(parents=True)
        for name, text in files.items():
            data = text.encode("utf-8", "surrogatepass")
            if name == "package.json":
                (node / name).write_bytes(data)
            elif name == "METADATA":
                (site / "x-1.dist-info" / name).write_bytes(data)
            else:
                (site / "y.egg-info" / name).write_bytes(data)
        r = DirRoot(root)
        try:
            inv = read_inventory(r)
        finally:
            r.close()
        assert Inventory.from_dict(json.loads(json.dumps(inv.to_dict()))).packages == inv.packages


MEMBER = st.one_of(
    st.sampled_from(["a", "a/b", "a/.wh.b", "a/.wh..wh..opq", ".wh.a", "../x", "./a/../../y", "/abs", "a/b/c/d"]),
    st.from_regex(r"[a-c./]{1,12}", fullmatch=True),
)


@given(
    st.lists(
        st.lists(
            st.tuples(
                MEMBER,
                st.sampled_from(["file", "dir", "sym", "link"]),
                st.sampled_from(["a", "/a/b", "../..", "a/b", ""]),
            ),
            max_size=8,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_image_layers_with_any_member_names_merge(layers: list[list[tuple[str, str, str]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        img = Path(tmp) / "img.tar"
        with tarfile.open(img, "w") as tf:
            names = []
            for i, members in enumerate(layers):
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w") as layer:
                    for name, kind, target in members:
                        info = tarfile.TarInfo(name)
                        info.type = {
                            "file": tarfile.REGTYPE,
                            "dir": tarfile.DIRTYPE,
                            "sym": tarfile.SYMTYPE,
                            "link": tarfile.LNKTYPE,
                        }[kind]
                        info.linkname = target
                        layer.addfile(info, io.BytesIO(b"") if kind == "file" else None)
                data = buf.getvalue()
                names.append(f"l{i}.tar")
                info = tarfile.TarInfo(names[-1])
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            manifest = json.dumps([{"Config": "c.json", "Layers": names}]).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(manifest)
            tf.addfile(info, io.BytesIO(manifest))
        root = TarImageRoot(img)
        try:
            read_inventory(root)
            for path in ("/", "/a", "/a/b", "/x", "/y"):
                try:
                    root.listdir(path)
                    root.read_bytes(path)
                except RootError:
                    pass
        finally:
            root.close()
