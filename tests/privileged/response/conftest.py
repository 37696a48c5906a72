# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the response's privileged tests: clean-up of nft tables and net_cls cgroups, and a
pair of containers on Docker's default bridge (a listener the test made, and a target)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.response.quarantine import TABLE_PREFIX
from tests.privileged.response.response_helpers import Probe, container_ip
from tests.support import need, need_root

NET_CLS = Path("/sys/fs/cgroup/net_cls")


def _netcls_mounted() -> bool:
    return (NET_CLS / "net_cls.classid").exists()


def _host_tables() -> list[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
    return [line.split()[-1] for line in out.splitlines() if TABLE_PREFIX in line]


@pytest.fixture(autouse=True)
def _response_cleanup() -> Iterator[None]:
    """Whatever a test leaves behind is removed: host-netns nft tables of ours, net_cls cgroups
    under docker/, and the net_cls mount when the test created it."""
    need_root()
    need(Path("/usr/sbin/nft").exists() or Path("/sbin/nft").exists(), "This test needs nft (apt nftables).")
    mounted_before = _netcls_mounted()
    yield
    for table in _host_tables():
        subprocess.run(["nft", "delete", "table", "inet", table], check=False)
    if _netcls_mounted():
        docker_dir = NET_CLS / "docker"
        for d in sorted(docker_dir.glob("*"), reverse=True) if docker_dir.exists() else []:
            if d.is_dir():
                with contextlib.suppress(OSError):
                    for pid in (d / "cgroup.procs").read_text().split():
                        (NET_CLS / "cgroup.procs").write_text(pid)
                    d.rmdir()
        if not mounted_before:
            with contextlib.suppress(OSError):
                (docker_dir).rmdir()
            subprocess.run(["umount", str(NET_CLS)], check=False)
            with contextlib.suppress(OSError):
                NET_CLS.rmdir()


@pytest.fixture
def response_ctx(make_ctx: Callable[..., AgentContext]) -> Callable[..., AgentContext]:
    """An ``AgentContext`` on the real host with ``response`` settings from keyword arguments."""

    def _make(**response: Any) -> AgentContext:
        cfg = AgentConfig.model_validate({"response": {"mode": "enforce", **response}})
        return make_ctx(config=cfg, paths=HostPaths())

    return _make


@pytest.fixture
def bridge_probe(run_container: Callable[..., Any]) -> Callable[..., Probe]:
    def _make(network: str = "bridge", **target_kw: Any) -> Probe:
        server = run_container("sh", "-c", "while true; do echo hi | nc -l -p 8080; done", network_mode=network)
        ip = container_ip(server, network)
        loop = (
            "(while true; do echo yo | nc -l -p 9090; done) & "
            "i=0; while true; do i=$((i+1)); "
            # nc's -w bounds the connect only: a connection the quarantine cuts after its
            # handshake would wait for the server forever and stop the loop; timeout bounds it.
            f"if echo x | timeout 3 nc -w 1 {ip} 8080 2>/dev/null | grep -q hi; then r=ok; else r=fail; fi; "
            'echo "$i $r" > /tmp/r.new; mv /tmp/r.new /tmp/r; sleep 0.1; done'
        )
        target = run_container("sh", "-c", loop, network_mode=network, **target_kw)
        probe = Probe(server=server, target=target, server_ip=ip, network=network)
        deadline = time.monotonic() + 10
        while probe.attempt()[1] != "ok":
            assert time.monotonic() < deadline, "the probe never reached the listener"
            time.sleep(0.1)
        return probe

    return _make


@pytest.fixture
def loopback_listener() -> Iterator[int]:
    """A TCP listener on the host's 127.0.0.1 (made by the test) answering 'hi'."""
    import threading

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except (TimeoutError, OSError):
                continue
            with conn, contextlib.suppress(OSError):
                conn.sendall(b"hi\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    srv.close()
