# SPDX-License-Identifier: Apache-2.0
"""Roots never resolve a path outside themselves: symlink escapes are refused or stay inside."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from agent.vuln.inventory import read_inventory
from agent.vuln.rootfs import DirRoot, LayeredRoot, RootError
from agent.vuln.tarroot import TarImageRoot
from tests.fixtures.vuln.builders import dpkg_status_text, write_dpkg_status, write_os_release

SECRET = "root:$6$HOSTSECRET:19000:0:99999:7:::\n"


@pytest.fixture
def host_secret(tmp_path: Path) -> Path:
    """A file outside the container root standing in for the host's /etc/shadow."""
    p = tmp_path / "host-etc-shadow"
    p.write_text(SECRET)
    return p


@pytest.mark.parametrize("kind", ["absolute", "relative", "parent-dir", "proc-magic"])
def test_dpkg_status_symlink_escape_is_refused(tmp_path: Path, host_secret: Path, kind: str) -> None:
    root = tmp_path / "rootfs"
    write_os_release(root, "debian", "12")
    dpkg = root / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    target = {
        "absolute": str(host_secret),
        "relative": "../../../../" + host_secret.name,
        "parent-dir": "../../../../../../../../../../" + str(host_secret).lstrip("/"),
        "proc-magic": "/proc/self/root" + str(host_secret),
    }[kind]
    (dpkg / "status").symlink_to(target)
    assert host_secret.read_text() == SECRET  # the host path itself is readable
    r = DirRoot(root)
    with pytest.raises(RootError):
        r.read_bytes("/var/lib/dpkg/status")
    inv = read_inventory(r)
    assert inv.packages == []


def test_absolute_symlink_resolves_inside_the_root(tmp_path: Path) -> None:
    """``status -> /etc/shadow`` reads the container's shadow, never the host's."""
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "shadow").write_text(dpkg_status_text([{"name": "inside", "version": "1"}]))
    dpkg = root / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    (dpkg / "status").symlink_to("/etc/shadow")
    inv = read_inventory(DirRoot(root))
    assert [p.name for p in inv.packages] == ["inside"]


def test_fifo_and_directory_are_not_read(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    dpkg = root / "var" / "lib" / "dpkg"
    dpkg.mkdir(parents=True)
    os.mkfifo(dpkg / "status")
    r = DirRoot(root)
    with pytest.raises(RootError, match="not a regular file"):
        r.read_bytes("/var/lib/dpkg/status")
    with pytest.raises(RootError):
        r.read_bytes("/var/lib")


def _layer_tar(files: dict[str, bytes | str | None]) -> bytes:
    """A layer tarball: bytes → regular file, str → symlink target, None → directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif isinstance(content, str):
                info.type = tarfile.SYMTYPE
                info.linkname = content
                tf.addfile(info)
            else:
                info.size = len(content)
                tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _docker_save(path: Path, layers: list[dict[str, bytes | str | None]]) -> Path:
    with tarfile.open(path, "w") as tf:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        names = []
        for i, files in enumerate(layers):
            names.append(f"layer{i}/layer.tar")
            add(names[-1], _layer_tar(files))
        add("abc123.json", json.dumps({"os": "linux"}).encode())
        add("manifest.json", json.dumps([{"Config": "abc123.json", "RepoTags": ["x:1"], "Layers": names}]).encode())
    return path


def test_tar_image_root_layers_whiteouts_and_escapes(tmp_path: Path) -> None:
    status = dpkg_status_text([{"name": "libfoo", "version": "1.0-1"}]).encode()
    base = {
        "etc/": None,
        "etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
        "var/lib/dpkg/status": status,
        "usr/lib/python3.11/site-packages/gone-1.0.dist-info/METADATA": b"Name: gone\nVersion: 1.0\n",
        "evil": "../../../../../../etc/passwd",
    }
    top = {
        "usr/lib/python3.11/site-packages/.wh.gone-1.0.dist-info": b"",
        "usr/lib/python3.11/site-packages/kept-2.0.dist-info/METADATA": b"Name: kept\nVersion: 2.0\n",
        "lib": "usr/lib",
    }
    r = TarImageRoot(_docker_save(tmp_path / "img.tar", [base, top]))
    assert r.image_id == "sha256:abc123"
    inv = read_inventory(r)
    assert sorted((p.kind, p.name) for p in inv.packages) == [("deb", "libfoo"), ("pypi", "kept")]
    assert inv.os.osv_ecosystem == "Debian:12"
    with pytest.raises(RootError):
        r.read_bytes("/evil")  # clamps at the image root: there is no /etc/passwd in the image
    assert r.is_dir("/lib/python3.11/site-packages")  # symlinked dir resolves inside


def test_layered_root_merges_upper_over_lower(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    write_os_release(lower, "debian", "12")
    write_dpkg_status(lower, [{"name": "old", "version": "1.0"}])
    write_dpkg_status(upper, [{"name": "new", "version": "2.0"}])
    (upper / "escape").symlink_to("/../../../../" + str(tmp_path / "lower" / "etc" / "os-release").lstrip("/"))
    r = LayeredRoot([upper, lower])
    inv = read_inventory(r)
    assert [p.name for p in inv.packages] == ["new"]
    assert inv.os.osv_ecosystem == "Debian:12"
    assert sorted(r.listdir("/")) == ["escape", "etc", "var"]
    with pytest.raises(RootError):
        r.read_bytes("/escape")
