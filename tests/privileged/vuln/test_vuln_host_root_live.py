# SPDX-License-Identifier: Apache-2.0
"""The DaemonSet's view on a real container: the node's ``/proc`` and ``/var/lib/docker`` bind-
mounted under a ``host.root`` (read-only, as in the manifests); the vuln component scans the
running container through ``<root>/proc/<pid>/root`` and, once it has stopped, through the overlay2
layers Docker's inspect names as ``/var/lib/docker/overlay2/...``, re-rooted below ``host.root``."""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.runtime.docker import details_from_inspect
from agent.runtime.model import Container
from agent.settings.vuln import VulnDbSettings, VulnSettings
from agent.vuln.component import build
from agent.vuln.db import VulnDB
from agent.vuln.rootfs import LayeredRoot
from agent.vuln.scanner import open_container_root
from agent.wiring import attach
from tests.fixtures.vuln.builders import CRITICAL, dpkg_status_text, osv, write_records

OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def host_root(tmp_path: Path) -> Iterator[Path]:
    """``<tmp>/host`` with the node's /proc and /var/lib/docker (read-only) bind-mounted in it."""
    root = tmp_path / "host"
    mounted: list[Path] = []
    try:
        for src, ro in (("/proc", False), ("/var/lib/docker", True)):
            target = root / src.lstrip("/")
            target.mkdir(parents=True)
            subprocess.run(["mount", "--bind", src, str(target)], check=True, timeout=20)
            mounted.append(target)
            if ro:
                subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True, timeout=20)
        yield root
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False, timeout=20)


def test_scan_through_host_root_while_running_and_after_stop(
    run_container: Callable[..., Any], host_root: Path, tmp_path: Path, make_ctx: Callable[..., AgentContext]
) -> None:
    dbpath = tmp_path / "vulndb.sqlite"
    db = VulnDB(dbpath)
    record = osv(
        "DSA-9-1", "Debian:12", "expat", fixed="2.5.0-1+deb12u1", aliases=["CVE-2099-9"], severity_vector=CRITICAL
    )
    db.import_paths([write_records(tmp_path / "feed", [record])], progress=False)
    db.close()
    ctx = make_ctx(
        AgentConfig(vuln=VulnSettings(interval_seconds=3600, db=VulnDbSettings(path=dbpath))),
        HostPaths.under(host_root),
    )
    comp = build(ctx)
    assert comp is not None
    attach(ctx, comp)
    try:
        c = run_container("sleep", "600", name=f"rgtest-h18-{tmp_path.name[-8:]}")
        c.exec_run(["mkdir", "-p", "/var/lib/dpkg"])
        status = dpkg_status_text([{"name": "libexpat1", "version": "2.5.0-1", "source": "expat"}])
        assert c.put_archive("/", _tar({"etc/os-release": OS_RELEASE, "var/lib/dpkg/status": status}))
        c.reload()
        details = details_from_inspect(c.attrs)
        assert details["upper_dir"].startswith("/") and not details["upper_dir"].startswith(str(host_root))
        record_ = Container(
            id=c.id,
            name=c.name,
            image="riskguard-test/busybox",
            image_id="",  # no image cache: every scan reads the filesystem
            runtime="docker",
            init_pid=int(c.attrs["State"]["Pid"]),
            details=details,
        )
        ctx.registry.upsert(record_)
        running = comp.scan_container(c.id, refresh=True)
        assert running is not None
        assert [v["vulnerability"] for v in running["vulnerabilities"]] == ["CVE-2099-9"]

        # The process is gone; Docker keeps the layers the inspect data named.
        c.stop(timeout=1)
        assert not (host_root / "proc" / str(record_.init_pid) / "root").exists()
        # Read through the read-only bind mount, not the agent's own /var/lib/docker (which on a
        # host, unlike in the pod, holds the same directories).
        layers = open_container_root(ctx.paths, record_.init_pid, details)
        try:
            assert isinstance(layers, LayeredRoot)
            assert [layer.path for layer in layers.layers] == [
                host_root / p.lstrip("/") for p in [details["upper_dir"], *details["lower_dirs"]]
            ]
        finally:
            layers.close()
        stopped = comp.scan_container(c.id, refresh=True)
        assert stopped is not None and stopped["summary"]["packages"] == 1
        assert [v["vulnerability"] for v in stopped["vulnerabilities"]] == ["CVE-2099-9"]
    finally:
        comp.stop()
