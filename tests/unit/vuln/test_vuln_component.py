# SPDX-License-Identifier: Apache-2.0
"""The scheduler component on a captured host tree: scan on start, image-id cache, rematch on a
database change, findings once per container, the ``scan`` control method and the GMP path."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.findings import Finding, Severity, Source
from agent.hostfs import HostPaths
from agent.runtime.model import Container
from agent.settings.vuln import GmpSettings, VulnDbSettings, VulnSettings
from agent.vuln.component import VulnComponent, build
from agent.vuln.gmp import GmpScanner
from agent.wiring import attach
from tests.fixtures.vuln.builders import CRITICAL, osv, write_dpkg_status, write_os_release, write_records
from tests.fixtures.vuln.gmp_server import GmpState, gmp_server
from tests.support import wait_for

PID = 4242


@pytest.fixture
def setup(
    tmp_path: Path, make_ctx: Callable[..., AgentContext]
) -> Iterator[tuple[AgentContext, VulnComponent, list[Finding], Path]]:
    paths = HostPaths.under(tmp_path / "host")
    root = paths.pid_root(PID)
    write_os_release(root, "debian", "12")
    write_dpkg_status(root, [{"name": "libexpat1", "version": "2.5.0-1", "source": "expat"}])
    (paths.pid_dir(PID) / "net").mkdir(parents=True)
    (paths.pid_dir(PID) / "net" / "tcp").write_text(
        "  sl  local_address rem_address   st\n"
        "   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1\n"
    )
    dbpath = tmp_path / "vulndb.sqlite"
    cfg = AgentConfig(
        vuln=VulnSettings(interval_seconds=3600, report_min_severity="medium", db=VulnDbSettings(path=dbpath)),
    )
    ctx = make_ctx(cfg, paths)
    found: list[Finding] = []
    ctx.findings.subscribe(found.append)
    ctx.findings.start()
    comp = build(ctx)
    assert comp is not None
    attach(ctx, comp)
    yield ctx, comp, found, dbpath
    comp.stop()


def _container(cid: str = "c" * 64, image_id: str = "sha256:img1") -> Container:
    return Container(
        id=cid,
        name="web",
        image="web:1",
        image_id=image_id,
        runtime="docker",
        init_pid=PID,
        details={"ip_addresses": {"bridge": "10.99.0.2"}},
    )


def _import(dbpath: Path, tmp: Path, records: list[dict[str, object]]) -> None:
    from agent.vuln.db import VulnDB

    db = VulnDB(dbpath)
    db.import_paths([write_records(tmp, records)], progress=False)
    db.close()


def test_disabled_builds_nothing(make_ctx: Callable[..., AgentContext]) -> None:
    assert build(make_ctx(AgentConfig(vuln=VulnSettings(enabled=False)))) is None


def test_scan_on_start_cache_rematch_and_findings(
    setup: tuple[AgentContext, VulnComponent, list[Finding], Path], tmp_path: Path
) -> None:
    ctx, comp, found, dbpath = setup
    _import(
        dbpath,
        tmp_path / "f1",
        [
            osv(
                "DSA-1-1",
                "Debian:12",
                "expat",
                fixed="2.5.0-1+deb12u1",
                aliases=["CVE-2024-1"],
                severity_vector=CRITICAL,
            )
        ],
    )
    c = _container()
    ctx.registry.upsert(c)  # the registry listener queues a scan
    wait_for(lambda: comp.results(c.id), what="scan on container start")
    ctx.findings.drain()
    assert [(f.source, f.detector_id, f.severity, f.container_id) for f in found] == [
        (Source.VULN, "vuln.image", Severity.CRITICAL, c.id)
    ]
    assert [v["vulnerability"] for v in found[0].evidence["vulnerabilities"]] == ["CVE-2024-1"]
    assert comp.vulnerabilities(c.id)[0]["fixed_version"] == "2.5.0-1+deb12u1"
    res = comp.results(c.id)
    assert res is not None and res["services"][0]["port"] == 80
    assert comp.counts["reads"] == 1

    # Nothing changed: a scheduled scan does nothing, reads nothing.
    assert comp.scan_container(c.id) is None
    assert (comp.counts["reads"], comp.counts["skipped"]) == (1, 1)

    # A second container of the same image: cached inventory, no filesystem read.
    c2 = _container("d" * 64)
    with pytest.raises(LookupError):
        comp.scan_container(c2.id)  # not registered yet
    ctx.registry.upsert(c2)
    wait_for(lambda: comp.results(c2.id), what="scan of the second container")
    assert comp.counts["reads"] == 1

    # The database changes: rematch from the cache, the new vulnerability is reported once.
    _import(dbpath, tmp_path / "f2", [osv("DSA-2-1", "Debian:12", "expat", rating="high")])
    r = comp.scan_container(c.id)
    assert r is not None and r["summary"]["inventory_reread"] is False
    assert {v["vulnerability"] for v in r["vulnerabilities"]} == {"CVE-2024-1", "DSA-2-1"}
    assert comp.counts["reads"] == 1 and comp.counts["rematches"] == 2  # second container + db change
    ctx.findings.drain()
    mine = [f for f in found if f.container_id == c.id]
    assert len(mine) == 2  # one finding per scan that found something new, not one per package
    assert sorted(v["vulnerability"] for f in mine for v in f.evidence["vulnerabilities"]) == ["CVE-2024-1", "DSA-2-1"]

    # The container's dpkg database changed (apt-get install at run time): re-read.
    status = ctx.paths.pid_root(PID) / "var/lib/dpkg/status"
    later = time.time() + 5
    os.utime(status, (later, later))
    r = comp.scan_container(c.id)
    assert r is not None and r["summary"]["inventory_reread"] is True

    # Control method: refresh and return the results; unknown ids are clear errors.
    out = ctx.control_methods["scan"]({"id": c.id[:12]})
    assert out["summary"]["packages"] == 1
    with pytest.raises(LookupError):
        ctx.control_methods["scan"]({"id": "nope"})
    with pytest.raises(ValueError):
        ctx.control_methods["scan"]({})


def test_gmp_results_become_findings(
    setup: tuple[AgentContext, VulnComponent, list[Finding], Path], tmp_path: Path
) -> None:
    ctx, comp, found, _ = setup
    c = _container()
    ctx.registry.upsert(c)
    wait_for(lambda: comp.results(c.id), what="first scan")
    d = Path(tempfile.mkdtemp(prefix="gmp-"))
    try:
        sock = d / "gvmd.sock"
        state = GmpState(
            results={"10.99.0.2": [("Apache httpd RCE", "80/tcp", "1.3.6.1.4.1.25623.1.0.9", 9.8, "High", ["CVE-X"])]}
        )
        with gmp_server(sock, state):
            s = GmpSettings(enabled=True, socket_path=sock, poll_seconds=0.01)
            results = GmpScanner(s, password="secret").scan(c.name, "10.99.0.2")
        assert comp.report_gmp(ctx, c, results) == 1
        assert comp.report_gmp(ctx, c, results) == 0  # reported once
    finally:
        shutil.rmtree(d, ignore_errors=True)
    ctx.findings.drain()
    g = [f for f in found if f.detector_id == "vuln.gmp"]
    assert len(g) == 1 and g[0].severity == Severity.CRITICAL and g[0].evidence["cves"] == ["CVE-X"]


def test_riskguardctl_scan_over_the_control_socket(
    setup: tuple[AgentContext, VulnComponent, list[Finding], Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import argparse
    import json

    import structlog.testing

    from agent.control import ControlServer
    from agent.vuln.ctl import register

    ctx, comp, _, dbpath = setup
    c = _container()
    ctx.registry.upsert(c)
    wait_for(lambda: comp.results(c.id), what="scan on start")
    capsys.readouterr()  # drop the background scan's log lines
    d = Path(tempfile.mkdtemp(prefix="ctl-"))
    server = ControlServer(d / "agent.sock", ctx.control_methods)
    server.start()
    try:
        parser = argparse.ArgumentParser()
        register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["scan", c.id[:12], "--json"])
        args.socket = d / "agent.sock"
        with structlog.testing.capture_logs():  # an empty database: refused, never "0 vulnerabilities"
            assert args.func(args) == 1
        cap = capsys.readouterr()
        assert cap.out == "" and "holds no records" in cap.err
        _import(dbpath, tmp_path / "f", [osv("DSA-9-1", "Debian:12", "expat", fixed="2.5.0-1+deb12u1")])
        capsys.readouterr()  # the import's log line
        with structlog.testing.capture_logs():  # the in-process agent's logs, not ctl output
            assert args.func(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["summary"]["container_id"] == c.id and out["services"][0]["port"] == 80
        assert out["db"] == {"records": 1, "age_seconds": out["db"]["age_seconds"], "stale": False}
        args = parser.parse_args(["scan", "web"])
        args.socket = d / "agent.sock"
        assert args.func(args) == 0
        out = capsys.readouterr().out
        assert "1 packages" in out and "DSA-9-1" in out
        assert ["PACKAGE", "VERSION", "VULNERABILITY", "SEVERITY", "FIXED"] in [
            line.split() for line in out.splitlines()
        ], out
        assert "unknown" in out  # an unrated record is shown as unknown
        args = parser.parse_args(["scan", "web", "--severity", "UNKNOWN", "--exit-code", "4"])
        args.socket = d / "agent.sock"
        with structlog.testing.capture_logs():
            assert args.func(args) == 4  # a gate, as riskguard-agent scan
        assert "DSA-9-1" in capsys.readouterr().out
        args = parser.parse_args(["scan", "web", "--severity", "CRITICAL,HIGH", "--exit-code", "4", "--json"])
        args.socket = d / "agent.sock"
        with structlog.testing.capture_logs():
            assert args.func(args) == 0
        assert json.loads(capsys.readouterr().out)["vulnerabilities"] == []
        args = parser.parse_args(["scan", "missing"])
        args.socket = d / "agent.sock"
        assert args.func(args) == 1
        assert "no such container: missing" in capsys.readouterr().err
    finally:
        server.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_interval_rounds_rematch_only_when_the_database_changed(
    tmp_path: Path, make_ctx: Callable[..., AgentContext]
) -> None:
    paths = HostPaths.under(tmp_path / "host")
    root = paths.pid_root(PID)
    write_os_release(root, "debian", "12")
    write_dpkg_status(root, [{"name": "libexpat1", "version": "2.5.0-1", "source": "expat"}])
    dbpath = tmp_path / "vulndb.sqlite"
    cfg = AgentConfig(vuln=VulnSettings(interval_seconds=0.2, list_services=False, db=VulnDbSettings(path=dbpath)))
    ctx = make_ctx(cfg, paths)
    comp = build(ctx)
    assert comp is not None
    attach(ctx, comp)
    try:
        c = _container()
        ctx.registry.upsert(c)
        wait_for(lambda: comp.counts["skipped"] >= 2, what="two idle interval rounds")
        assert comp.counts["reads"] == 1 and comp.counts["rematches"] == 0
        _import(dbpath, tmp_path / "f", [osv("DSA-7-1", "Debian:12", "expat", rating="high")])
        wait_for(lambda: comp.counts["rematches"] >= 1, what="a rematch after the import")
        assert comp.counts["reads"] == 1
        assert [v["vulnerability"] for v in comp.vulnerabilities(c.id)] == ["DSA-7-1"]
        assert comp.status()["db_generation"] == 1
    finally:
        comp.stop()


def test_one_finding_per_image_and_unrated_stays_unknown(
    setup: tuple[AgentContext, VulnComponent, list[Finding], Path], tmp_path: Path
) -> None:
    ctx, comp, found, dbpath = setup
    root = ctx.paths.pid_root(PID)
    write_dpkg_status(
        root,
        [
            {"name": "libexpat1", "version": "2.5.0-1", "source": "expat"},
            {"name": "gzip", "version": "1.12-1"},
            {"name": "tar", "version": "1.34+dfsg-1.2"},
        ],
    )
    # Unrated records only: the finding must not call them "medium".
    _import(
        dbpath,
        tmp_path / "f1",
        [osv(f"DSA-{n}-1", "Debian:12", name, fixed="99:0") for n, name in enumerate(("expat", "gzip", "tar"))],
    )
    c = _container()
    ctx.registry.upsert(c)
    wait_for(lambda: comp.results(c.id), what="scan on start")
    ctx.findings.drain()
    assert len(found) == 1
    f = found[0]
    assert f.detector_id == "vuln.image" and f.severity == Severity.LOW
    assert "3 new vulnerabilities (all unrated) in 3 packages of web:1 (3 unknown)" in f.summary
    assert {v["severity"] for v in f.evidence["vulnerabilities"]} == {"unknown"}
    assert f.evidence["by_severity"] == {"unknown": 3} and f.evidence["packages"] == ["gzip", "libexpat1", "tar"]
    # A rated record arrives: one more finding, for it alone, at its own severity.
    _import(dbpath, tmp_path / "f2", [osv("DSA-9-1", "Debian:12", "gzip", fixed="99:0", severity_vector=CRITICAL)])
    comp.scan_container(c.id)
    ctx.findings.drain()
    assert len(found) == 2 and found[1].severity == Severity.CRITICAL
    assert [v["vulnerability"] for v in found[1].evidence["vulnerabilities"]] == ["DSA-9-1"]
