# SPDX-License-Identifier: Apache-2.0
"""A hostile container cannot wedge the scanner (issue 16): real busybox containers, one shipping a
4 KiB rpmdb.sqlite whose ``Packages`` is a recursive VIEW and a 56 MB Python METADATA, one with an
ordinary Debian package database. With ``vuln.on_start`` the daemon component scans both: the
hostile one costs its rpm reader (a LOW ``vuln.scan_incomplete`` finding naming the view), the
METADATA is skipped, the agent's own memory does not grow, and the benign container is scanned."""

from __future__ import annotations

import io
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.findings import Finding, Severity
from agent.settings.vuln import VulnDbSettings, VulnSettings
from agent.wiring import attach
from tests.privileged.vuln.test_vuln_containers import OS_RELEASE, _with_packages, vulndb  # noqa: F401
from tests.support import wait_for

RECURSIVE_VIEW = (
    "CREATE VIEW Packages AS WITH RECURSIVE r(n, blob) AS (SELECT 1, zeroblob(1000) "
    "UNION ALL SELECT n + 1, zeroblob(1000) FROM r) SELECT n AS hnum, blob FROM r"
)


def _hostile_files() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "rpmdb.sqlite"
        conn = sqlite3.connect(db)
        conn.execute(RECURSIVE_VIEW)
        conn.close()
        rpmdb = db.read_bytes()
    assert len(rpmdb) <= 8192
    metadata = b"Name: huge\nVersion: 1.0\nX-Pad: " + b"a" * (56 << 20) + b"\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (
            ("etc/os-release", OS_RELEASE.encode()),
            ("var/lib/rpm/rpmdb.sqlite", rpmdb),
            ("usr/lib/python3.11/site-packages/huge-1.0.dist-info/METADATA", metadata),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_hostile_container_costs_only_its_own_reader(
    run_container: Callable[..., Any],
    container_record: Callable[[Any], Any],
    make_ctx: Callable[..., AgentContext],
    vulndb: Path,  # noqa: F811
) -> None:
    from agent.vuln.component import build

    hostile = run_container("sleep", "600")
    assert hostile.put_archive("/", _hostile_files())
    benign = run_container("sleep", "600")
    _with_packages(benign)
    ctx = make_ctx(AgentConfig(vuln=VulnSettings(on_start=True, list_services=False, db=VulnDbSettings(path=vulndb))))
    found: list[Finding] = []
    ctx.findings.subscribe(found.append)
    ctx.findings.start()
    comp = build(ctx)
    assert comp is not None
    rss_before = psutil.Process().memory_info().rss
    attach(ctx, comp)  # started and subscribed to the registry, as the daemon wires it
    try:
        ctx.registry.upsert(container_record(hostile))
        ctx.registry.upsert(container_record(benign))
        wait_for(lambda: comp.results(benign.id), timeout=60, what="the benign container's scan")
        wait_for(lambda: comp.results(hostile.id), timeout=60, what="the hostile container's scan")
        ctx.findings.drain()
        grown = psutil.Process().memory_info().rss - rss_before
        assert grown < 150 << 20, f"the agent grew by {grown >> 20} MiB"
        incomplete = [f for f in found if f.detector_id == "vuln.scan_incomplete"]
        assert [(f.container_id, f.severity) for f in incomplete] == [(hostile.id, Severity.LOW)]
        assert "view" in incomplete[0].summary
        hostile_summary = comp.results(hostile.id)["summary"]  # type: ignore[index]
        assert hostile_summary["skipped_entries"].get("pypi") == 1
        benign_vulns = {v["vulnerability"] for v in comp.results(benign.id)["vulnerabilities"]}  # type: ignore[index]
        assert benign_vulns == {"CVE-2024-1", "DSA-2-1", "CVE-2023-32681"}
    finally:
        comp.stop()
