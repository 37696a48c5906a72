# SPDX-License-Identifier: Apache-2.0
"""``vulndb import`` on hostile sources: every bad entry or record is counted and skipped with a
clear line, the good ones are imported, nothing is read into memory beyond the limits."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from agent.vuln.cli import main
from agent.vuln.db import VulnDB
from agent.vuln.limits import MAX_ZIP_ENTRY_BYTES
from tests.fixtures.vuln.builders import CRITICAL, nvd_feed, osv

GOOD = osv("DSA-9-1", "Debian:12", "expat", fixed="2.5.0-2", severity_vector=CRITICAL)


def _set_flag_bits(data: bytearray, name: bytes, bits: int) -> None:
    """Set general-purpose flag ``bits`` of entry ``name`` in its local and central headers."""
    for sig, flag_off, name_off in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        pos = data.find(sig)
        while pos >= 0:
            if data[pos + name_off : pos + name_off + len(name)] == name:
                data[pos + flag_off] |= bits
                break
            pos = data.find(sig, pos + 4)


def _hostile_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("enc.json", json.dumps(osv("ENC-1", "npm", "x", fixed="1.0.0")))
        zf.writestr("good.json", json.dumps(GOOD))
        zf.writestr("nested.json", "[" * 100_000 + "]" * 100_000)
        zf.writestr("corrupt.json", json.dumps(osv("COR-1", "npm", "y", fixed="1.0.0")) * 50)
        with zf.open("bomb.json", "w", force_zip64=True) as big:  # compresses to ~80 KB
            chunk = b" " * (1 << 20)
            for _ in range((MAX_ZIP_ENTRY_BYTES >> 20) + 16):
                big.write(chunk)
    data = bytearray(path.read_bytes())
    _set_flag_bits(data, b"enc.json", 0x1)  # "encrypted": zipfile needs a password to read it
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("corrupt.json")
    start = info.header_offset + 30 + len(b"corrupt.json") + 20
    data[start : start + 64] = bytes(64)  # damage the deflate stream in the middle
    path.write_bytes(bytes(data))
    assert path.stat().st_size < 1 << 20  # a small zip declaring more than 64 MB inside
    return path


def test_hostile_zip_entries_are_counted_and_the_good_one_imported(tmp_path: Path) -> None:
    z = _hostile_zip(tmp_path / "all.zip")
    db = VulnDB(tmp_path / "db.sqlite")
    s = db.import_paths([z], progress=False)
    assert s.added == 1 and s.malformed == 4, s
    reasons = "\n".join(s.errors)
    assert "bomb.json: entry of" in reasons and "larger than" in reasons
    assert "enc.json: unreadable entry" in reasons and "corrupt.json: unreadable entry" in reasons
    assert "nested.json: JSON nested deeper" in reasons
    assert [r.id for r in db.records(["DSA-9-1", "ENC-1", "COR-1"])] == ["DSA-9-1"]
    db.close()


def test_one_bad_nvd_item_does_not_roll_back_the_feed(tmp_path: Path) -> None:
    feed = nvd_feed([("CVE-2024-1", CRITICAL), ("CVE-2024-2", CRITICAL), ("CVE-2024-3", CRITICAL)])
    items = feed["vulnerabilities"]
    items[0]["cve"]["descriptions"][0]["value"] = "lone surrogate \udfff in the text"
    items[1]["cve"]["metrics"] = {"cvssMetricV31": [{"cvssData": {"baseScore": "x" * 10, "vectorString": 7}}]}
    items.append({"cve": {"id": "CVE-2024-4", "lastModified": ["not", "a", "string"], "descriptions": "?"}})
    items.append({"cve": {"id": {"deep": [[[[1]]]]}}})
    items.append("not an item")
    (tmp_path / "nvd.json").write_text(json.dumps(feed))  # ensure_ascii: the surrogate as \\udfff
    db = VulnDB(tmp_path / "db.sqlite")
    s = db.import_paths([tmp_path / "nvd.json"], progress=False)
    assert (s.added, s.malformed) == (3, 3), s
    recs = {r.id: r for r in db.records(["CVE-2024-1", "CVE-2024-2", "CVE-2024-3"])}
    assert sorted(recs) == ["CVE-2024-1", "CVE-2024-2", "CVE-2024-3"]
    assert recs["CVE-2024-1"].summary == "lone surrogate \ufffd in the text"
    db.close()


def test_cli_nested_json_is_an_error_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "deep.json").write_text("{" + '"a":{' * 50_000 + "}" * 50_001)
    rc = main(["vulndb", "import", str(tmp_path / "deep.json"), "--db", str(tmp_path / "db.sqlite"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "nested deeper than" in err and "Traceback" not in err


def test_cli_big_zip_entry_costs_no_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    z = tmp_path / "big.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("good.json", json.dumps(GOOD))
        with zf.open("huge.json", "w", force_zip64=True) as big:
            for _ in range((MAX_ZIP_ENTRY_BYTES >> 20) + 1):
                big.write(b"0" * (1 << 20))
    rc = main(["vulndb", "import", str(z), "--db", str(tmp_path / "db.sqlite"), "--quiet", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0 and json.loads(out)["malformed"] == 1 and json.loads(out)["added"] == 1
    assert "huge.json: entry of" in err
