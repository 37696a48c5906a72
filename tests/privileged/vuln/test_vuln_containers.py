# SPDX-License-Identifier: Apache-2.0
"""Real containers from the local busybox image: packages added at run time are found through
/proc/<pid>/root, symlink escapes out of the container are refused, overlay2 layers are merged
with their whiteouts, a committed image is scanned from ``docker save``, listening services come
from the container's netns, and ``scan`` works through the daemon component's control method."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.settings.vuln import VulnDbSettings, VulnSettings
from agent.vuln.cli import main as vuln_cli
from agent.vuln.db import VulnDB
from agent.vuln.inventory import read_inventory
from agent.vuln.rootfs import DirRoot, LayeredRoot, RootError
from agent.vuln.scanner import open_container_root
from agent.vuln.services import listening_services
from tests.fixtures.vuln.builders import CRITICAL, dpkg_status_text, osv, write_records
from tests.support import wait_for

STATUS = dpkg_status_text(
    [
        {"name": "libexpat1", "version": "2.5.0-1", "source": "expat"},
        {"name": "openssl", "version": "3.0.11-1~deb12u2"},
    ]
)
OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
METADATA = "Metadata-Version: 2.1\nName: requests\nVersion: 2.25.0\n"


def _tar(files: dict[str, str], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def _with_packages(c: Any) -> None:
    """Give a running busybox container a Debian 12 dpkg database and a Python dist-info."""
    c.exec_run(["mkdir", "-p", "/var/lib/dpkg", "/usr/lib/python3.11/site-packages/requests-2.25.0.dist-info"])
    ok = c.put_archive(
        "/",
        _tar(
            {
                "etc/os-release": OS_RELEASE,
                "var/lib/dpkg/status": STATUS,
                "usr/lib/python3.11/site-packages/requests-2.25.0.dist-info/METADATA": METADATA,
            }
        ),
    )
    assert ok


@pytest.fixture
def vulndb(tmp_path: Path) -> Path:
    path = tmp_path / "vulndb.sqlite"
    db = VulnDB(path)
    db.import_paths(
        [
            write_records(
                tmp_path / "osv",
                [
                    osv(
                        "DSA-1-1",
                        "Debian:12",
                        "expat",
                        fixed="2.5.0-1+deb12u1",
                        aliases=["CVE-2024-1"],
                        severity_vector=CRITICAL,
                    ),
                    osv("DSA-2-1", "Debian:12", "openssl", fixed="3.0.11-1~deb12u3"),
                    osv("DLA-3-1", "Debian:11", "openssl", fixed="9.9"),
                    osv("GHSA-r", "PyPI", "requests", fixed="2.31.0", aliases=["CVE-2023-32681"], rating="MODERATE"),
                ],
            )
        ],
        progress=False,
    )
    db.close()
    return path


def _pid(c: Any) -> int:
    c.reload()
    return int(c.attrs["State"]["Pid"])


def test_scan_running_container_through_proc_root(run_container: Callable[..., Any], vulndb: Path) -> None:
    c = run_container("sleep", "600")
    _with_packages(c)
    root = open_container_root(HostPaths(), _pid(c))
    assert isinstance(root, DirRoot) and str(root.path).endswith(f"/{_pid(c)}/root")
    inv = read_inventory(root)
    assert sorted((p.kind, p.name, p.version) for p in inv.packages) == [
        ("deb", "libexpat1", "2.5.0-1"),
        ("deb", "openssl", "3.0.11-1~deb12u2"),
        ("pypi", "requests", "2.25.0"),
    ]
    db = VulnDB(vulndb)
    from agent.vuln.matcher import Matcher

    got = {(m.package, m.vulnerability, m.severity) for m in Matcher(db).match(inv)}
    assert got == {
        ("libexpat1", "CVE-2024-1", "critical"),
        ("openssl", "DSA-2-1", "unknown"),
        ("requests", "CVE-2023-32681", "medium"),
    }
    db.close()


def test_cli_scan_container_and_committed_image(
    run_container: Callable[..., Any], docker_client: Any, vulndb: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = run_container("sleep", "600")
    _with_packages(c)
    assert vuln_cli(["scan", "container", c.name, "--db", str(vulndb), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["package"], r["vulnerability"]) for r in rows} == {
        ("libexpat1", "CVE-2024-1"),
        ("openssl", "DSA-2-1"),
        ("requests", "CVE-2023-32681"),
    }
    tag = f"rgtest-vuln-{uuid.uuid4().hex[:8]}"
    image = c.commit(repository=tag, tag="1")
    try:
        assert vuln_cli(["scan", "image", f"{tag}:1", "--db", str(vulndb), "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert {(r["package"], r["vulnerability"]) for r in rows} == {
            ("libexpat1", "CVE-2024-1"),
            ("openssl", "DSA-2-1"),
            ("requests", "CVE-2023-32681"),
        }
    finally:
        docker_client.images.remove(image.id, force=True)
    assert vuln_cli(["scan", "container", "rgtest-does-not-exist", "--db", str(vulndb)]) == 2


@pytest.fixture
def host_secret() -> Iterator[Path]:
    """A host file the container does not have, holding a dpkg status the scan must never see."""
    p = Path(f"/tmp/rg-host-secret-{uuid.uuid4().hex[:8]}")
    p.write_text(dpkg_status_text([{"name": "HOST-ONLY", "version": "1"}]))
    yield p
    p.unlink(missing_ok=True)


@pytest.mark.parametrize("via", ["absolute", "dotdot", "proc-self-root", "proc-1-root"])
def test_symlink_escape_from_container_is_refused(
    run_container: Callable[..., Any], host_secret: Path, via: str
) -> None:
    c = run_container("sleep", "600")
    target = {
        "absolute": str(host_secret),
        "dotdot": "../../../../../../.." + str(host_secret),
        # /proc/self inside the container's procfs is the *reader* (the agent, on the host):
        # following it would reach the host root. RESOLVE_NO_MAGICLINKS refuses it.
        "proc-self-root": "/proc/self/root" + str(host_secret),
        "proc-1-root": "/proc/1/root/etc/shadow",
    }[via]
    c.exec_run(["mkdir", "-p", "/var/lib/dpkg"])
    assert c.put_archive("/", _tar({"etc/os-release": OS_RELEASE}, {"var/lib/dpkg/status": target}))
    root = open_container_root(HostPaths(), _pid(c))
    with pytest.raises(RootError):
        root.read_bytes("/var/lib/dpkg/status")
    assert read_inventory(root).packages == []
    # The same symlink followed by an ordinary open() reaches the host file: an absolute target
    # restarts at the *reader's* root (the host's /), not at the container's.
    if via == "absolute":
        assert "HOST-ONLY" in Path(f"/proc/{_pid(c)}/root/var/lib/dpkg/status").read_text()


def test_container_shadow_symlink_reads_the_containers_own_file(run_container: Callable[..., Any]) -> None:
    c = run_container("sleep", "600")
    c.exec_run(["mkdir", "-p", "/var/lib/dpkg"])
    assert c.put_archive("/", _tar({}, {"var/lib/dpkg/status": "/etc/shadow"}))
    root = open_container_root(HostPaths(), _pid(c))
    inside = root.read_text("/var/lib/dpkg/status")
    assert inside == c.exec_run(["cat", "/etc/shadow"]).output.decode()
    assert inside != Path("/etc/shadow").read_text()


def test_overlay_layers_merge_with_whiteouts(run_container: Callable[..., Any]) -> None:
    c = run_container("sleep", "600")
    _with_packages(c)
    assert c.exec_run(["rm", "/etc/passwd"]).exit_code == 0
    c.reload()
    graph = c.attrs["GraphDriver"]["Data"]
    layers = [graph["UpperDir"], *graph["LowerDir"].split(":")]
    root = LayeredRoot(layers)
    assert not root.is_file("/etc/passwd")  # whited out in the upper layer
    assert root.is_file("/etc/shadow")  # from the image layer
    assert "passwd" not in root.listdir("/etc")
    inv = read_inventory(root)
    assert {p.name for p in inv.packages} == {"libexpat1", "openssl", "requests"}


def test_listening_services_from_container_netns(run_container: Callable[..., Any]) -> None:
    c = run_container("sleep", "600")
    c.exec_run(["httpd", "-p", "127.0.0.1:8080", "-h", "/var/www"], detach=True)
    c.exec_run(["nc", "-l", "-p", "9090"], detach=True)
    pid = _pid(c)
    found = wait_for(
        lambda: (
            {(s.port, s.loopback_only) for s in listening_services(HostPaths(), pid)} >= {(8080, True), (9090, False)}
        ),
        what="httpd and nc listening",
    )
    assert found
    # The host's own listeners are not the container's.
    host_ports = {s.port for s in listening_services(HostPaths(), 1)}
    assert 8080 not in host_ports or 9090 not in host_ports


def test_component_scan_control_method(
    run_container: Callable[..., Any],
    container_record: Callable[[Any], Any],
    make_ctx: Callable[..., AgentContext],
    vulndb: Path,
) -> None:
    from agent.vuln.component import build

    c = run_container("sleep", "600")
    ctx = make_ctx(AgentConfig(vuln=VulnSettings(on_start=False, db=VulnDbSettings(path=vulndb))))
    comp = build(ctx)
    assert comp is not None
    comp.start(ctx)
    try:
        ctx.registry.upsert(container_record(c))
        before = ctx.control_methods["scan"]({"id": c.name})
        assert before["summary"]["packages"] == 0
        _with_packages(c)  # packages installed at run time
        after = ctx.control_methods["scan"]({"id": c.id})
        assert after["summary"]["packages"] == 3 and after["summary"]["ecosystem"] == "Debian:12"
        assert {v["vulnerability"] for v in after["vulnerabilities"]} == {"CVE-2024-1", "DSA-2-1", "CVE-2023-32681"}
        assert comp.vulnerabilities(c.id)[0]["severity"] == "critical"
    finally:
        comp.stop()


def test_symlink_into_a_host_bind_mount_is_refused(run_container: Callable[..., Any], tmp_path: Path) -> None:
    """``-v /some/host/dir:/mnt/host``: a symlink into the bind mount would hand the scanner a host
    file; lookups never cross a mount (RESOLVE_NO_XDEV)."""
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    (hostdir / "status").write_text(dpkg_status_text([{"name": "HOST-ONLY", "version": "1"}]))
    c = run_container("sleep", "600", volumes={str(hostdir): {"bind": "/mnt/host", "mode": "ro"}})
    c.exec_run(["mkdir", "-p", "/var/lib/dpkg"])
    assert c.put_archive("/", _tar({"etc/os-release": OS_RELEASE}, {"var/lib/dpkg/status": "/mnt/host/status"}))
    assert "HOST-ONLY" in c.exec_run(["cat", "/var/lib/dpkg/status"]).output.decode()  # the container sees it
    root = open_container_root(HostPaths(), _pid(c))
    with pytest.raises(RootError):
        root.read_bytes("/var/lib/dpkg/status")
    assert read_inventory(root).packages == []
