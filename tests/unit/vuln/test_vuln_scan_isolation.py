# SPDX-License-Identifier: Apache-2.0
"""One container's scan never blocks another's: a scan that runs out of time is killed, becomes a
``vuln.scan_failed`` finding about that container, and the queue moves on to the next one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.findings import Finding, Severity, Source
from agent.hostfs import HostPaths
from agent.runtime.model import Container
from agent.settings.vuln import VulnDbSettings, VulnSettings
from agent.vuln.component import VulnComponent, build
from agent.vuln.db import VulnDB
from agent.vuln.sandbox import SandboxLimits, run_isolated
from agent.vuln.scanner import ScanError
from agent.wiring import attach
from tests.fixtures.vuln.builders import CRITICAL, osv, write_dpkg_status, write_os_release, write_records
from tests.support import wait_for

BENIGN_PID, HOSTILE_PID = 4242, 4343
RECURSIVE_VIEW = (
    "CREATE VIEW Packages AS WITH RECURSIVE r(n, blob) AS (SELECT 1, zeroblob(1000) "
    "UNION ALL SELECT n + 1, zeroblob(1000) FROM r) SELECT n AS hnum, blob FROM r"
)


def _container(cid: str, pid: int, image_id: str, name: str) -> Container:
    return Container(id=cid, name=name, image=f"{name}:1", image_id=image_id, runtime="docker", init_pid=pid)


@pytest.fixture
def env(
    tmp_path: Path, make_ctx: Callable[..., AgentContext]
) -> Iterator[tuple[AgentContext, VulnComponent, list[Finding]]]:
    paths = HostPaths.under(tmp_path / "host")
    for pid in (BENIGN_PID, HOSTILE_PID):
        write_os_release(paths.pid_root(pid), "debian", "12")
        write_dpkg_status(paths.pid_root(pid), [{"name": "libexpat1", "version": "2.5.0-1", "source": "expat"}])
    dbpath = tmp_path / "vulndb.sqlite"
    db = VulnDB(dbpath)
    db.import_paths(
        [
            write_records(
                tmp_path / "osv", [osv("DSA-1-1", "Debian:12", "expat", fixed="2.5.0-2", severity_vector=CRITICAL)]
            )
        ],
        progress=False,
    )
    db.close()
    cfg = AgentConfig(vuln=VulnSettings(interval_seconds=3600, list_services=False, db=VulnDbSettings(path=dbpath)))
    ctx = make_ctx(cfg, paths)
    found: list[Finding] = []
    ctx.findings.subscribe(found.append)
    ctx.findings.start()
    comp = build(ctx)
    assert comp is not None
    attach(ctx, comp)
    yield ctx, comp, found
    comp.stop()


def _hostile_dpkg(root: Path, packages: int) -> None:
    """A dpkg status with so many (tiny) packages that reading it takes seconds (~3 s here)."""
    text = "".join(f"Package: p{i}\nStatus: install ok installed\nVersion: 1.{i}\n\n" for i in range(packages))
    (root / "var/lib/dpkg/status").write_text(text)


def test_a_scan_that_times_out_is_a_finding_and_the_next_container_is_scanned(
    env: tuple[AgentContext, VulnComponent, list[Finding]],
) -> None:
    ctx, comp, found = env
    assert run_isolated(len, "warm") == 4  # the fork server is up: the time limit is the parse's alone
    comp.scan_limits = SandboxLimits(timeout=1.0, memory_bytes=1 << 30, cpu_seconds=30)
    _hostile_dpkg(ctx.paths.pid_root(HOSTILE_PID), 150_000)
    hostile = _container("h" * 64, HOSTILE_PID, "sha256:hostile", "hostile")
    benign = _container("b" * 64, BENIGN_PID, "sha256:benign", "benign")
    t0 = time.monotonic()
    ctx.registry.upsert(hostile)
    ctx.registry.upsert(benign)
    wait_for(lambda: comp.results(benign.id), what="the benign container's scan after the hostile one", timeout=30)
    assert time.monotonic() - t0 < 20
    ctx.findings.drain()
    failed = [f for f in found if f.detector_id == "vuln.scan_failed"]
    assert [(f.container_id, f.severity, f.source, f.evidence["kind"]) for f in failed] == [
        (hostile.id, Severity.MEDIUM, Source.VULN, "timeout")
    ]
    assert failed[0].summary.startswith("scan failed: ")
    vulns = [
        (f.container_id, v["vulnerability"])
        for f in found
        if f.detector_id == "vuln.image"
        for v in f.evidence["vulnerabilities"]
    ]
    assert vulns == [(benign.id, "DSA-1-1")]
    assert comp.results(hostile.id) is None and comp.counts["errors"] == 1
    # Unchanged files are not retried every round; a forced scan retries without a second finding.
    assert comp.scan_container(hostile.id) is None
    with pytest.raises(ScanError, match="scan failed"):
        comp.scan_container(hostile.id, refresh=True)
    ctx.findings.drain()
    assert len([f for f in found if f.detector_id == "vuln.scan_failed"]) == 1


def test_a_reader_that_gives_up_is_a_low_finding_and_the_rest_is_matched(
    env: tuple[AgentContext, VulnComponent, list[Finding]],
) -> None:
    import sqlite3

    ctx, comp, found = env
    rpm = ctx.paths.pid_root(HOSTILE_PID) / "var/lib/rpm"
    rpm.mkdir(parents=True)
    conn = sqlite3.connect(rpm / "rpmdb.sqlite")
    conn.execute(RECURSIVE_VIEW)
    conn.close()
    hostile = _container("h" * 64, HOSTILE_PID, "sha256:hostile", "hostile")
    ctx.registry.upsert(hostile)
    wait_for(lambda: comp.results(hostile.id), what="the scan of the container with a hostile rpmdb", timeout=30)
    ctx.findings.drain()
    by_detector = {f.detector_id: f for f in found}
    assert [v["vulnerability"] for v in by_detector["vuln.image"].evidence["vulnerabilities"]] == ["DSA-1-1"]
    incomplete = by_detector["vuln.scan_incomplete"]
    assert incomplete.severity == Severity.LOW and "rpm" in incomplete.summary and "view" in incomplete.summary
