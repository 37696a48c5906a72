# SPDX-License-Identifier: Apache-2.0
"""Container discovery against real dockerd and real cgroups."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.hostfs import HostPaths
from agent.runtime.discovery import CgroupScanner, Discovery
from agent.runtime.enrich import container_of_pid
from agent.runtime.model import ContainerRegistry
from agent.settings.core import RuntimeSettings
from tests.support import need, need_root, wait_for

DOCKER_SOCK = "/var/run/docker.sock"


@pytest.fixture
def discovery(docker_client: Any) -> Iterator[tuple[Discovery, ContainerRegistry]]:
    reg = ContainerRegistry()
    d = Discovery(HostPaths(), RuntimeSettings(), reg)
    d.start()
    assert d.docker is not None
    wait_for(lambda: d.docker.connected, 10, what="docker watcher connected")  # type: ignore[union-attr]
    yield d, reg
    d.stop()


def test_container_appears_and_disappears_within_a_second(discovery: Any, run_container: Any) -> None:
    _d, reg = discovery
    t0 = time.monotonic()
    c = run_container("sleep", "600", labels={"app": "web"})
    wait_for(lambda: reg.get(c.id), 1.0 + (time.monotonic() - t0), what="container discovered")
    rec = reg.get(c.id)
    assert rec.name == c.name and rec.image == "riskguard-test/busybox" and rec.labels["app"] == "web"
    pid = c.attrs["State"]["Pid"]
    assert rec.init_pid == pid
    v2dir = HostPaths().cgroup_v2 / rec.cgroup_v2.lstrip("/")
    assert rec.cgroup_id == v2dir.stat().st_ino != 0
    assert rec.netns_inode == Path(f"/proc/{pid}/ns/net").stat().st_ino
    assert rec.cgroup_v1["freezer"].endswith(c.id)
    assert reg.by_cgroup_id(rec.cgroup_id) == rec
    # a process started later inside the container resolves to it by pid
    c.exec_run(["sh", "-c", "sleep 30 &"], detach=True)
    child = wait_for(lambda: [p for p in _pids_in(v2dir) if p != pid], 5, what="exec'd process")
    assert container_of_pid(HostPaths(), reg, child[0]) == rec  # type: ignore[index]
    assert container_of_pid(HostPaths(), reg, os.getpid()) is None  # the host is not a container
    c.kill()
    t0 = time.monotonic()
    wait_for(lambda: reg.get(c.id) is None, 1.0, what="container removed")
    assert time.monotonic() - t0 < 1.0


def test_signals_do_not_remove_a_running_container(discovery: Any, run_container: Any) -> None:
    _d, reg = discovery
    c = run_container("sh", "-c", "trap '' HUP; sleep 600")
    wait_for(lambda: reg.get(c.id), 2, what="discovered")
    c.kill(signal="HUP")
    time.sleep(0.5)
    assert reg.get(c.id) is not None


def test_event_for_a_vanished_container_is_harmless(discovery: Any, docker_client: Any) -> None:
    d, reg = discovery
    c = docker_client.containers.create("riskguard-test/busybox", ["true"], network_mode="none")
    cid = c.id
    c.remove(force=True)
    d.docker._apply({"Action": "start", "id": cid})  # inspect → 404: ignored
    assert reg.get(cid) is None and d.docker.connected


def _pids_in(cgdir: Path) -> list[int]:
    return [int(x) for x in (cgdir / "cgroup.procs").read_text().split()]


class SocketProxy:
    """A Unix-socket proxy in front of dockerd that the test can take down (a dockerd restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._srv: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()

    def start(self) -> None:
        self._stop.clear()
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(str(self.path))
        self._srv.listen(8)
        threading.Thread(target=self._accept, args=(self._srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = srv.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(DOCKER_SOCK)
            self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def stop(self) -> None:
        self._stop.set()
        if self._srv is not None:
            self._srv.close()
        for s in self._conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self._conns.clear()
        self.path.unlink(missing_ok=True)


def test_reconnects_and_resyncs_after_dockerd_goes_away(tmp_path: Path, docker_client: Any, run_container: Any) -> None:
    proxy = SocketProxy(tmp_path / "docker.sock")
    proxy.start()
    reg = ContainerRegistry()
    settings = RuntimeSettings(docker_url=f"unix://{proxy.path}", reconnect_seconds=0.2, cgroup_scan=False)
    d = Discovery(HostPaths(), settings, reg)
    d.start()
    try:
        assert d.docker is not None
        wait_for(lambda: d.docker.connected, 10, what="connected through the proxy")  # type: ignore[union-attr]
        before = run_container("sleep", "600")
        wait_for(lambda: reg.get(before.id), 2, what="first container")
        proxy.stop()  # dockerd "restarts"
        wait_for(lambda: not d.docker.connected, 5, what="disconnect noticed")  # type: ignore[union-attr]
        during = run_container("sleep", "600")
        before.remove(force=True)
        time.sleep(0.5)
        proxy.start()
        wait_for(lambda: d.docker.connected, 10, what="reconnected")  # type: ignore[union-attr]
        wait_for(lambda: reg.get(during.id), 2, what="container started while disconnected")
        wait_for(lambda: reg.get(before.id) is None, 2, what="container removed while disconnected")
        assert d.docker.reconnects >= 1 and d.docker.last_error
    finally:
        d.stop()
        proxy.stop()


@pytest.fixture
def fake_runtime_cgroups() -> Iterator[list[tuple[str, Path, subprocess.Popen[bytes]]]]:
    """Real cgroups named like containerd (v2) and podman (v1 pids) containers, each holding a
    real process, as those runtimes lay them out."""
    need_root()
    paths = HostPaths()
    need(paths.cgroup_mode() in ("hybrid", "v2"), "This test needs a cgroup2 hierarchy.")
    made: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    dirs: list[Path] = []
    try:
        cid = uuid.uuid4().hex * 2
        pod = paths.cgroup_v2 / "kubepods.slice" / f"kubepods-pod{uuid.uuid4().hex[:8]}.slice"
        scope = pod / f"cri-containerd-{cid}.scope"
        scope.mkdir(parents=True)
        dirs += [scope, pod, pod.parent]
        made.append((cid, scope, _sleeper_in(scope)))
        if paths.cgroup_mode() == "hybrid" and paths.cgroup_v1("pids").is_dir():
            cid2 = uuid.uuid4().hex * 2
            lib = paths.cgroup_v1("pids") / "machine.slice" / f"libpod-{cid2}.scope"
            lib.mkdir(parents=True)
            dirs += [lib, lib.parent]
            made.append((cid2, lib, _sleeper_in(lib)))
        yield made
    finally:
        for _cid, _d, proc in made:
            proc.kill()
            proc.wait()
        for d in dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def _sleeper_in(cgdir: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["sleep", "600"])
    (cgdir / "cgroup.procs").write_text(str(proc.pid))
    return proc


def test_cgroup_scan_finds_runtimes_without_an_api(fake_runtime_cgroups: Any) -> None:
    reg = ContainerRegistry()
    scanner = CgroupScanner(HostPaths(), RuntimeSettings(cgroup_scan_seconds=0.2), reg, frozenset({"docker"}))
    scanner.start()
    try:
        for cid, cgdir, proc in fake_runtime_cgroups:
            c = wait_for(lambda cid=cid: reg.get(cid), 1.0, what=f"container {cid[:12]} discovered")
            assert c.init_pid == proc.pid  # type: ignore[attr-defined]
            if "unified" in str(cgdir) or HostPaths().cgroup_v2 in cgdir.parents:
                assert c.runtime == "containerd"  # type: ignore[attr-defined]
                assert c.cgroup_id == cgdir.stat().st_ino  # type: ignore[attr-defined]
            else:
                assert c.runtime == "podman"  # type: ignore[attr-defined]
        for cid, _cgdir, proc in fake_runtime_cgroups:
            proc.kill()
            proc.wait()
            wait_for(lambda cid=cid: reg.get(cid) is None, 1.5, what=f"container {cid[:12]} removed")
    finally:
        scanner.stop()
