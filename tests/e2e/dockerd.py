# SPDX-License-Identifier: Apache-2.0
"""A dockerd of the test's own, to stop and start again as ``systemctl restart docker`` or a
package upgrade would, without touching the host's daemon (other tests' containers run on it).

It has its own data-root, exec-root (and so its own managed containerd), pid file and socket,
a default bridge of its own (``--bridge=none`` would make dockerd delete the host's
``docker0`` at start: every default-network container of the host daemon then fails), no
iptables rules of its own (the host daemon's chains are left alone),
address pools of its own, its containers below their own cgroup parent, and live restore on:
running containers outlive the daemon, and one with restart policy ``always`` whose process died
meanwhile is started again (a new pid and cgroup) when the daemon comes back. ``remove`` undoes
all of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tests.privileged.harness import Session

CGROUP = Path("/sys/fs/cgroup")


class SecondDockerd:
    """``start``, ``restart``, ``remove``; ``client()`` and ``cli(...)`` talk to it."""

    def __init__(self, prefix: str = "rgchaos", pool: str = "10.241.0.0/16") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.run = Path("/run") / self.name
        self.data = Path("/var/lib") / self.name
        self.url = f"unix://{self.run}/docker.sock"
        self.cgroup_parent = f"/{self.name}"
        self.pool = pool
        self.bridge = f"rgcb{self.name[-6:]}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._rule = ["FORWARD", "-s", pool, "-d", pool, "-m", "comment", "--comment", self.name, "-j", "ACCEPT"]
        self._clients: list[Any] = []

    # --- the daemon ----------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        config = self.run / "daemon.json"
        config.write_text("{}\n")  # not the host's /etc/docker/daemon.json (its hosts, its pools)
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True).returncode != 0:
            # The default network's bridge: dockerd uses a named bridge as it finds it.
            gateway = self.pool.split("/")[0].rsplit(".", 2)[0] + ".255.1/24"
            subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True, capture_output=True)
            subprocess.run(["ip", "addr", "add", gateway, "dev", self.bridge], check=True, capture_output=True)
            subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True, capture_output=True)
        self._log = (self.run / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(
            [
                "dockerd",
                f"--config-file={config}",
                f"--data-root={self.data}",
                f"--exec-root={self.run / 'exec'}",
                f"--pidfile={self.run / 'dockerd.pid'}",
                f"--host={self.url}",
                f"--bridge={self.bridge}",
                "--iptables=false",
                "--ip-masq=false",
                "--live-restore",
                f"--cgroup-parent={self.cgroup_parent}",
                f"--default-address-pool=base={self.pool},size=24",
                "--log-level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while self.cli("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the second dockerd did not come up: {self.log_tail()}")
            time.sleep(0.1)
        # Containers on its networks reach each other across its bridges: the host daemon's
        # FORWARD policy (DROP with br_netfilter) knows only its own bridges.
        if subprocess.run(["iptables", "-C", *self._rule], capture_output=True).returncode != 0:
            subprocess.run(["iptables", "-I", *self._rule[:1], "1", *self._rule[1:]], check=True, capture_output=True)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, as systemd stops docker.service; waits until the daemon has exited."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, while_down: Callable[[], None] | None = None) -> float:
        """Stop the daemon, run ``while_down``, start it again; the seconds it was away."""
        t0 = time.monotonic()
        self.stop()
        if while_down is not None:
            while_down()
        self.start()
        return time.monotonic() - t0

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join((self.run / "dockerd.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    # --- talking to it -------------------------------------------------------------------
    def cli(
        self, *args: str, check: bool = True, timeout: float = 120, **kw: Any
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["docker", "-H", self.url, *args], capture_output=True, check=check, timeout=timeout, **kw
        )

    def client(self) -> Any:
        import docker

        c = docker.DockerClient(base_url=self.url, timeout=60)
        self._clients.append(c)
        return c

    def load_from_host(self, *images: str) -> None:
        """``docker save`` from the host's daemon, ``docker load`` into this one (no registry)."""
        with tempfile.TemporaryFile() as tar:
            subprocess.run(["docker", "save", *images], stdout=tar, check=True, timeout=120)
            tar.seek(0)
            self.cli("load", stdin=tar)

    def open_session(self, container_id: str, shell: str = "sh") -> Session:
        """An attacker's interactive shell in a container of this daemon (``docker exec -i``),
        typed into later; see ``tests.privileged.harness.open_session``."""
        out = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by Session.close)
        proc = subprocess.Popen(
            ["docker", "-H", self.url, "exec", "-i", container_id, shell],
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        time.sleep(0.5)  # the shell is up before anything is typed into it
        return Session(proc, out)

    # --- its containers' cgroups ---------------------------------------------------------
    def freezer_state(self, container_id: str) -> str:
        """The v1 freezer state of one of its containers ('' when it has no freezer cgroup)."""
        try:
            return (CGROUP / "freezer" / self.name / container_id / "freezer.state").read_text().strip()
        except OSError:
            return ""

    def thaw_all(self) -> None:
        """Best effort: a frozen container cannot be removed cleanly."""
        for state in (CGROUP / "freezer" / self.name).glob("*/freezer.state"):
            try:
                state.write_text("THAWED")
            except OSError:
                pass
        for state in (CGROUP / "unified" / self.name).glob("*/cgroup.freeze"):
            try:
                state.write_text("0")
            except OSError:
                pass

    # --- undo everything -----------------------------------------------------------------
    def remove(self) -> None:
        """Its containers, networks, the daemon, its containerd, rule, mounts, folders, cgroups."""
        self.thaw_all()
        if self.proc is not None and self.proc.poll() is None:
            ids = self.cli("ps", "-aq", check=False).stdout.decode().split()
            if ids:
                self.cli("rm", "-f", *ids, check=False)
            self.cli("network", "prune", "-f", check=False)
        for c in self._clients:
            try:
                c.close()
            except Exception:
                pass
        self.stop()
        containerd = self.run / "exec" / "containerd" / "containerd.pid"
        try:
            os.kill(int(containerd.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        subprocess.run(["iptables", "-D", *self._rule], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for m in sorted((m for m in mounts if m.startswith((str(self.data), str(self.run)))), reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.data), str(self.run)], capture_output=True)
        for hierarchy in CGROUP.iterdir():
            parent = hierarchy / self.name
            if parent.is_dir():
                for child in parent.iterdir():
                    if child.is_dir():
                        _rmdir(child)
                _rmdir(parent)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
