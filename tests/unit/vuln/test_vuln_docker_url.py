# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent scan container|image`` asks the dockerd of ``runtime.docker_url`` (in the
agent's image: the node's socket at ``/host/var/run/docker.sock``), not ``DOCKER_HOST`` or the
pod's own ``/var/run/docker.sock``. The daemon here is a local one speaking the Engine API on a
socket of the test's own; ``DOCKER_HOST`` points at a path where nothing listens, so a client
that ignored the configured URL could not find the container."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import main
from agent.hostfs import HostPaths
from agent.runtime.docker import docker_client
from tests.fakes.dockerd import fake_dockerd
from tests.fixtures.vuln.builders import CRITICAL, dpkg_status_text, osv, write_records
from tests.unit.vuln.test_vuln_host_root import overlay2_inspect


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a unix socket path must fit in 108 bytes."""
    d = Path(tempfile.mkdtemp(prefix="rgdock-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    from agent.vuln.db import VulnDB

    path = tmp_path / "vulndb.sqlite"
    record = osv(
        "DSA-9-1", "Debian:12", "expat", fixed="2.5.0-1+deb12u1", aliases=["CVE-2099-9"], severity_vector=CRITICAL
    )
    vdb = VulnDB(path)
    vdb.import_paths([write_records(tmp_path / "feed", [record])], progress=False)
    vdb.close()
    return path


def _config(tmp_path: Path, host_root: Path, docker_url: str) -> Path:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"host:\n  root: {host_root}\nruntime:\n  docker_url: {docker_url}\n")
    return cfg


def test_docker_client_talks_to_the_url_it_is_given(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{short_dir}/nothing.sock")
    with fake_dockerd(short_dir / "d.sock") as dockerd:
        client = docker_client(dockerd.url, timeout=5)
        try:
            assert client.ping() is True
            assert client.containers.list() == []
        finally:
            client.close()
    assert dockerd.requests[0] == "/version"  # the SDK's version negotiation, on our socket
    assert {"/_ping", "/containers/json"} <= set(dockerd.requests)


def test_scan_container_asks_the_configured_dockerd(
    tmp_path: Path,
    short_dir: Path,
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host = tmp_path / "host"
    attrs = overlay2_inspect(HostPaths.under(host))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{short_dir}/nothing.sock")
    sock = short_dir / "docker.sock"
    cfg = _config(tmp_path, host, f"unix://{sock}")
    with fake_dockerd(sock, {attrs["Id"]: attrs}) as dockerd:
        rc = main(["scan", "container", attrs["Id"][:12], "--config", str(cfg), "--db", str(db), "--format", "json"])
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        assert f"/containers/{attrs['Id'][:12]}/json" in dockerd.requests
    assert [r["vulnerability"] for r in json.loads(captured.out)] == ["CVE-2099-9"]

    # The same configuration with no daemon on the configured socket: a clear error, and no
    # fallback to another daemon.
    rc = main(["scan", "container", attrs["Id"][:12], "--config", str(cfg), "--db", str(db)])
    assert rc == 2
    assert "cannot reach Docker" in capsys.readouterr().err


def _docker_save(files: dict[str, bytes]) -> bytes:
    """A one-layer ``docker save`` tarball holding ``files``."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        for name, data in (
            ("l0/layer.tar", layer.getvalue()),
            ("cfg.json", json.dumps({"os": "linux"}).encode()),
            (
                "manifest.json",
                json.dumps([{"Config": "cfg.json", "RepoTags": ["web:1"], "Layers": ["l0/layer.tar"]}]).encode(),
            ),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_scan_image_asks_the_configured_dockerd(
    tmp_path: Path,
    short_dir: Path,
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    saved = _docker_save(
        {
            "etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
            "var/lib/dpkg/status": dpkg_status_text(
                [{"name": "libexpat1", "version": "2.5.0-1", "source": "expat"}]
            ).encode(),
        }
    )
    monkeypatch.setenv("DOCKER_HOST", f"unix://{short_dir}/nothing.sock")
    sock = short_dir / "docker.sock"
    cfg = _config(tmp_path, tmp_path / "host", f"unix://{sock}")
    images = {"web:1": ({"Id": "sha256:" + "ab" * 32, "RepoTags": ["web:1"]}, saved)}
    with fake_dockerd(sock, images=images) as dockerd:
        rc = main(["scan", "image", "web:1", "--config", str(cfg), "--db", str(db), "--format", "json"])
        captured = capsys.readouterr()
        assert rc == 0, captured.err
    assert "/images/web:1/get" in dockerd.requests
    assert [r["vulnerability"] for r in json.loads(captured.out)] == ["CVE-2099-9"]
