# SPDX-License-Identifier: Apache-2.0
"""Matching rootfs trees built here against OSV records written here: every version edge case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.vuln.db import VulnDB
from agent.vuln.inventory import read_inventory
from agent.vuln.matcher import Match, in_range
from agent.vuln.rootfs import DirRoot
from agent.vuln.scanner import scan_root
from tests.fixtures.vuln.builders import (
    CRITICAL,
    MEDIUM,
    nvd_feed,
    osv,
    write_apk_installed,
    write_dist_info,
    write_dpkg_status,
    write_npm_package,
    write_os_release,
    write_records,
    write_rpmdb,
)

D12 = "Debian:12"


def _debian_root(tmp: Path) -> Path:
    root = tmp / "rootfs"
    write_os_release(root, "debian", "12", "bookworm")
    write_dpkg_status(
        root,
        [
            {"name": "libssl3", "version": "3.0.11-1~deb12u2", "source": "openssl"},
            {"name": "bind9-libs", "version": "1:9.18.19-1~deb12u1", "source": "bind9"},
            {"name": "curl", "version": "7.88.1-10+deb12u4"},
            {"name": "libcurl4", "version": "7.88.1-10+deb12u4", "source": "curl"},
            {"name": "zlib1g", "version": "1:1.2.13.dfsg-1", "source": "zlib"},
            {"name": "tar", "version": "1.34+dfsg-1.2"},
            {"name": "gzip", "version": "1.12-1"},
            {"name": "libxml2", "version": "2.9.14+dfsg-1.3~deb12u1"},
            {"name": "sudo", "version": "1.9.13p3-1+deb12u1"},
            {"name": "perl-base", "version": "5.36.0-7+deb12u1", "source": "perl"},
            {"name": "libc6", "version": "2.36-9+deb12u3+b1", "source": "glibc (2.36-9+deb12u3)"},
            {"name": "removed-pkg", "version": "1.0-1", "status": "deinstall ok config-files"},
        ],
    )
    return root


def _debian_records() -> list[dict[str, object]]:
    return [
        # tilde: ~deb12u2 < ~deb12u3 → vulnerable; an advisory fixed exactly at the installed
        # version is not.
        osv("DSA-0001-1", D12, "openssl", fixed="3.0.11-1~deb12u3", aliases=["CVE-2024-0001"]),
        osv("DSA-0002-1", D12, "openssl", fixed="3.0.11-1~deb12u2"),
        # epochs: 1:9.18.19 > 9.18.24 (epoch 0) → not vulnerable; 1:9.18.24-1 → vulnerable.
        osv("DEBIAN-CVE-2024-0003", D12, "bind9", fixed="9.18.24-1"),
        osv("DEBIAN-CVE-2024-0004", D12, "bind9", fixed="1:9.18.24-1~deb12u1"),
        # +debNuM backports: u4 < u5 → vulnerable.
        osv("DSA-0005-1", D12, "curl", fixed="7.88.1-10+deb12u5", aliases=["CVE-2024-0005"]),
        osv("DEBIAN-CVE-2024-0005", D12, "curl", fixed="7.88.1-10+deb12u5", aliases=["CVE-2024-0005"]),
        osv("DSA-0006-1", D12, "curl", fixed="7.88.1-10+deb12u4"),
        # fixed "0": Debian's "this release was never affected".
        osv("DEBIAN-CVE-2024-0007", D12, "zlib", fixed="0"),
        # last_affected: the installed version itself is the last affected one.
        osv("DEBIAN-CVE-2024-0008", D12, "tar", last_affected="1.34+dfsg-1.2"),
        osv("DEBIAN-CVE-2024-0009", D12, "gzip", last_affected="1.11-1"),
        # withdrawn: ignored entirely.
        osv("DSA-0010-1", D12, "curl", fixed="7.88.1-10+deb12u9", withdrawn=True),
        # release scoping: Debian 11 and Alpine advisories never match a Debian 12 root.
        osv("DLA-0011-1", "Debian:11", "curl", fixed="7.88.1-10+deb12u9"),
        osv("ALPINE-CVE-2024-0012", "Alpine:v3.19", "curl", fixed="8.9.0-r0"),
        # unfixed in this release: no fixed event.
        osv("DEBIAN-CVE-2024-0013", D12, "perl"),
        # limit caps the range.
        osv("DEBIAN-CVE-2024-0014", D12, "perl", fixed="5.40.0-1", limit="5.30.0-1"),
        # glibc matched by source version (the binary carries a binNMU +b1 suffix).
        osv("DSA-0015-1", D12, "glibc", fixed="2.36-9+deb12u4", severity_vector=MEDIUM),
        osv("DSA-0016-1", D12, "glibc", fixed="2.36-9+deb12u3"),
        # Upstream: a DSA covering two CVEs folds into the per-CVE rows; an umbrella alone stays.
        osv("DSA-0018-1", D12, "libxml2", fixed="2.9.14+dfsg-1.3~deb12u2", upstream=["CVE-2024-0181", "CVE-2024-0182"]),
        osv("DEBIAN-CVE-2024-0181", D12, "libxml2", fixed="2.9.14+dfsg-1.3~deb12u2", upstream=["CVE-2024-0181"]),
        osv("DEBIAN-CVE-2024-0182", D12, "libxml2", upstream=["CVE-2024-0182"]),
        osv("DSA-0019-1", D12, "sudo", fixed="1.9.13p3-1+deb12u2", upstream=["CVE-2024-0191", "CVE-2024-0192"]),
        # Not installed at all.
        osv("DSA-0017-1", D12, "nginx", fixed="1.99"),
    ]


@pytest.fixture
def debian(tmp_path: Path) -> tuple[Path, VulnDB]:
    root = _debian_root(tmp_path)
    feeds = tmp_path / "feeds"
    write_records(feeds / "osv", _debian_records())
    (feeds / "nvd.json").write_text(json.dumps(nvd_feed([("CVE-2024-0005", CRITICAL)])))
    db = VulnDB(tmp_path / "vulndb.sqlite")
    summary = db.import_paths([feeds / "osv", feeds / "nvd.json"], progress=False)
    assert summary.malformed == 0 and summary.added == len(_debian_records()) + 1
    return root, db


def _by(matches: list[Match]) -> dict[tuple[str, str], Match]:
    return {(m.package, m.vulnerability): m for m in matches}


def test_debian_edge_cases(debian: tuple[Path, VulnDB]) -> None:
    root, db = debian
    result = scan_root(DirRoot(root), db)
    got = _by(result.matches)
    keys = set(got)
    # tilde
    assert ("libssl3", "CVE-2024-0001") in keys
    assert not any(v == "DSA-0002-1" for _, v in keys)
    # epochs
    assert ("bind9-libs", "DEBIAN-CVE-2024-0004") in keys
    assert not any(v == "DEBIAN-CVE-2024-0003" for _, v in keys)
    # backport + binary → source mapping + alias merge: one row per package for CVE-2024-0005
    for pkg in ("curl", "libcurl4"):
        m = got[(pkg, "CVE-2024-0005")]
        assert m.aliases == ["DEBIAN-CVE-2024-0005", "DSA-0005-1"]
        assert m.fixed_version == "7.88.1-10+deb12u5"
        assert m.severity == "critical"  # from the NVD vector via the alias
        assert m.source_package == "curl"
    assert [k for k in keys if k[0] == "curl"] == [("curl", "CVE-2024-0005")]
    # fixed 0, withdrawn, release scoping
    for absent in ("DEBIAN-CVE-2024-0007", "DSA-0010-1", "DLA-0011-1", "ALPINE-CVE-2024-0012", "DSA-0017-1"):
        assert not any(v == absent for _, v in keys), absent
    # last_affected
    assert ("tar", "DEBIAN-CVE-2024-0008") in keys
    assert not any(v == "DEBIAN-CVE-2024-0009" for _, v in keys)
    # unfixed and limit
    assert got[("perl-base", "DEBIAN-CVE-2024-0013")].fixed_version == ""
    assert not any(v == "DEBIAN-CVE-2024-0014" for _, v in keys)
    # source version used for glibc: +deb12u3 < +deb12u4 → vulnerable, = +deb12u3 → not
    g = got[("libc6", "DSA-0015-1")]
    assert g.severity == "medium" and g.version == "2.36-9+deb12u3+b1"
    assert not any(v == "DSA-0016-1" for _, v in keys)
    # upstream folding
    assert sorted(k for k in keys if k[0] == "libxml2") == [("libxml2", "CVE-2024-0181"), ("libxml2", "CVE-2024-0182")]
    assert got[("libxml2", "CVE-2024-0181")].aliases == ["DEBIAN-CVE-2024-0181", "DSA-0018-1"]
    assert got[("libxml2", "CVE-2024-0182")].aliases == ["DEBIAN-CVE-2024-0182", "DSA-0018-1"]
    assert got[("libxml2", "CVE-2024-0182")].fixed_version == "2.9.14+dfsg-1.3~deb12u2"  # from the DSA
    assert [k for k in keys if k[0] == "sudo"] == [("sudo", "DSA-0019-1")]
    # the removed package is not in the inventory
    assert "removed-pkg" not in {p.name for p in result.inventory.packages}


def test_debian_11_root_is_scoped_to_debian_11(debian: tuple[Path, VulnDB], tmp_path: Path) -> None:
    root, db = debian
    write_os_release(root, "debian", "11.9", "bullseye")
    got = {m.vulnerability for m in scan_root(DirRoot(root), db).matches}
    assert got == {"DLA-0011-1"}


def test_report_row_shape(debian: tuple[Path, VulnDB]) -> None:
    root, db = debian
    row = scan_root(DirRoot(root), db).matches[0].report_row()
    assert list(row) == [
        "package",
        "version",
        "ecosystem",
        "source_package",
        "vulnerability",
        "aliases",
        "severity",
        "fixed_version",
        "path",
    ]
    assert row["path"] == "/var/lib/dpkg/status"


def test_alpine_python_npm_rpm(tmp_path: Path) -> None:
    root = tmp_path / "alpine"
    write_os_release(root, "alpine", "3.19.1")
    write_apk_installed(
        root,
        [
            {"name": "musl", "version": "1.2.4_git20230717-r4"},
            {"name": "libcrypto3", "version": "3.1.4-r5", "origin": "openssl"},
        ],
    )
    site = root / "usr" / "lib" / "python3.11" / "site-packages"
    write_dist_info(site, "requests", "2.25.0")
    write_dist_info(site, "Jinja2", "3.1.2")
    write_dist_info(site, "Django", "4.2.0", egg=True)
    write_dist_info(root / "opt" / "venv" / "lib" / "python3.12" / "site-packages", "urllib3", "2.0.0")
    nm = root / "app" / "node_modules"
    write_npm_package(nm, "lodash", "4.17.20")
    write_npm_package(nm, "@babel/traverse", "7.22.0")
    write_npm_package(nm / "lodash" / "node_modules", "minimist", "1.2.5")
    records = [
        osv("ALPINE-CVE-2024-1", "Alpine:v3.19", "musl", fixed="1.2.4_git20230717-r5"),
        osv("ALPINE-CVE-2024-2", "Alpine:v3.18", "musl", fixed="1.2.4_git20230717-r9"),
        osv("ALPINE-CVE-2024-3", "Alpine:v3.19", "openssl", fixed="3.1.4-r6"),
        osv("GHSA-aaaa-bbbb-cccc", "PyPI", "requests", fixed="2.31.0", aliases=["CVE-2023-32681"], rating="MODERATE"),
        osv("PYSEC-2023-74", "PyPI", "requests", fixed="2.31.0", aliases=["CVE-2023-32681", "GHSA-aaaa-bbbb-cccc"]),
        osv("GHSA-jinja-0000-0000", "PyPI", "jinja2", fixed="3.1.3"),
        osv("PYSEC-DJ-1", "PyPI", "django", versions=["4.2.0", "4.2.1"]),
        osv("PYSEC-DJ-2", "PyPI", "django", versions=["4.1.0"]),
        osv("GHSA-urllib3", "PyPI", "urllib3", introduced="2.0.0", fixed="2.0.7"),
        osv("GHSA-lodash", "npm", "lodash", fixed="4.17.21", range_type="SEMVER", severity_vector=CRITICAL),
        osv("GHSA-traverse", "npm", "@babel/traverse", fixed="7.23.2"),
        osv("GHSA-minimist", "npm", "minimist", introduced="1.0.0", fixed="1.2.6"),
    ]
    db = VulnDB(tmp_path / "db.sqlite")
    db.import_paths([write_records(tmp_path / "osv", records)], progress=False)
    res = scan_root(DirRoot(root), db)
    got = _by(res.matches)
    assert set(got) == {
        ("musl", "ALPINE-CVE-2024-1"),
        ("libcrypto3", "ALPINE-CVE-2024-3"),
        ("requests", "CVE-2023-32681"),
        ("jinja2", "GHSA-jinja-0000-0000"),
        ("django", "PYSEC-DJ-1"),
        ("urllib3", "GHSA-urllib3"),
        ("lodash", "GHSA-lodash"),
        ("@babel/traverse", "GHSA-traverse"),
        ("minimist", "GHSA-minimist"),
    }
    req = got[("requests", "CVE-2023-32681")]
    assert req.aliases == ["GHSA-aaaa-bbbb-cccc", "PYSEC-2023-74"] and req.severity == "medium"
    assert got[("lodash", "GHSA-lodash")].severity == "critical"
    assert got[("libcrypto3", "ALPINE-CVE-2024-3")].source_package == "openssl"
    purls = {p.purl for p in res.inventory.packages}
    assert "pkg:npm/%40babel/traverse@7.22.0" in purls
    assert "pkg:pypi/requests@2.25.0" in purls
    assert "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=3.19.1" in purls

    rocky = tmp_path / "rocky"
    write_os_release(rocky, "rocky", "9.3")
    write_rpmdb(
        rocky,
        [
            {
                "name": "openssl-libs",
                "version": "3.0.7",
                "release": "24.el9",
                "epoch": 1,
                "source_rpm": "openssl-3.0.7-24.el9.src.rpm",
            },
            {"name": "bash", "version": "5.1.8", "release": "6.el9_1", "source_rpm": "bash-5.1.8-6.el9_1.src.rpm"},
        ],
    )
    more = [
        osv("RLSA-2024:0001", "Rocky Linux:9", "openssl", fixed="1:3.0.7-25.el9_3"),
        osv("RLSA-2024:0002", "Rocky Linux:9", "bash", fixed="5.1.8-6.el9_1"),
        osv("RLSA-2024:0003", "Rocky Linux:8", "bash", fixed="5.1.8-9.el8"),
    ]
    db.import_paths([write_records(tmp_path / "osv-rocky", more)], progress=False)
    res = scan_root(DirRoot(rocky), db)
    assert {(m.package, m.vulnerability, m.version) for m in res.matches} == {
        ("openssl-libs", "RLSA-2024:0001", "1:3.0.7-24.el9")
    }
    assert "pkg:rpm/rocky/openssl-libs@3.0.7-24.el9?arch=x86_64&distro=rocky-9.3&epoch=1" in {
        p.purl for p in res.inventory.packages
    }


@pytest.mark.parametrize(
    ("scheme", "version", "events", "expected"),
    [
        ("deb", "1.0~rc1-1", [{"introduced": "0"}, {"fixed": "1.0-1"}], (True, "1.0-1")),
        ("deb", "1.0-1", [{"introduced": "0"}, {"fixed": "1.0~rc1-1"}], (False, "")),
        ("deb", "2:0.1-1", [{"introduced": "0"}, {"fixed": "1:9.9-1"}], (False, "")),
        ("deb", "1.0-1", [{"introduced": "0"}, {"fixed": "0"}], (False, "")),
        ("deb", "1.5-1", [{"introduced": "1.0-1"}, {"fixed": "1.2-1"}, {"introduced": "1.4-1"}], (True, "")),
        ("deb", "1.3-1", [{"introduced": "1.0-1"}, {"fixed": "1.2-1"}, {"introduced": "1.4-1"}], (False, "")),
        ("pep440", "2.0.0rc1", [{"introduced": "2.0.0"}], (False, "")),
        ("pep440", "1.0.post1", [{"introduced": "0"}, {"last_affected": "1.0"}], (False, "")),
        ("apk", "1.2.3-r10", [{"introduced": "0"}, {"fixed": "1.2.3-r9"}], (False, "")),
        ("rpm", "1.0-1.el9", [{"introduced": "0"}, {"fixed": "1.0-1.el9_1"}], (True, "1.0-1.el9_1")),
    ],
)
def test_in_range_table(scheme: str, version: str, events: list[dict[str, str]], expected: tuple[bool, str]) -> None:
    assert in_range(scheme, version, {"type": "ECOSYSTEM", "events": events}) == expected


def test_inventory_counts_malformed_entries(tmp_path: Path) -> None:
    root = tmp_path / "r"
    write_os_release(root, "debian", "12")
    status = write_dpkg_status(root, [{"name": "ok", "version": "1.0-1"}])
    status.write_text(status.read_text() + "\nPackage: broken\nStatus: install ok installed\n")
    site = root / "usr" / "lib" / "python3.11" / "site-packages"
    (site / "bad-1.0.dist-info").mkdir(parents=True)
    (site / "bad-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\n")
    (root / "app" / "node_modules" / "x").mkdir(parents=True)
    (root / "app" / "node_modules" / "x" / "package.json").write_text("{not json")
    inv = read_inventory(DirRoot(root))
    assert [p.name for p in inv.packages] == ["ok"]
    assert inv.skipped == {"dpkg": 1, "pypi": 1, "npm": 1}


def test_real_rpm_418_sqlite_database(tmp_path: Path) -> None:
    """tests/fixtures/vuln/rpmdb.sqlite was written by rpm 4.18 itself (make_rpmdb.sh)."""
    import shutil

    root = tmp_path / "rocky"
    write_os_release(root, "rocky", "9.3")
    (root / "var" / "lib" / "rpm").mkdir(parents=True)
    shutil.copy(Path(__file__).parents[2] / "fixtures" / "vuln" / "rpmdb.sqlite", root / "var/lib/rpm/rpmdb.sqlite")
    inv = read_inventory(DirRoot(root))
    assert sorted((p.name, p.version, p.source_name, p.ecosystem) for p in inv.packages) == [
        ("bash", "5.1.8-6.el9_1", "bash", "Rocky Linux:9"),
        ("openssl-libs", "1:3.0.7-24.el9", "openssl-libs", "Rocky Linux:9"),
    ]
