# SPDX-License-Identifier: Apache-2.0
"""The corpus host: builds the corpus images, starts and removes its containers, opens shell
sessions in them, and reads what the kernel and Docker say about them (freezer, health, logs)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import docker

from tests.e2e.corpus import spec


def build_images(client: Any) -> None:
    """Build every corpus image from images/<name> (layers cached: seconds when unchanged)."""
    for base in spec.BASE_IMAGES:
        try:
            client.images.get(base)
        except docker.errors.ImageNotFound as e:
            raise RuntimeError(f"{base} is missing: run scripts/setup-host.sh") from e
    for name in spec.images():
        with tempfile.TemporaryDirectory() as tmp:
            ctx = Path(tmp) / name
            shutil.copytree(spec.IMAGES_DIR / name, ctx)
            if (ctx / "deb").is_dir():
                _build_deb(ctx / "deb", ctx / spec.DEB_FILE)
            client.images.build(path=str(ctx), tag=spec.IMAGE_PREFIX + name, rm=True, pull=False)


def _build_deb(src: Path, out: Path) -> None:
    for f in (src / "DEBIAN" / "postinst", *(src / "usr" / "local" / "bin").iterdir()):
        f.chmod(0o755)
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(src), str(out)], check=True, capture_output=True)


def cgroup_frozen(pid: int) -> bool:
    """Whether the cgroup of ``pid`` is frozen (v1 freezer.state FROZEN or v2 cgroup.events frozen 1)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        _, controllers, path = line.split(":", 2)
        try:
            if "freezer" in controllers.split(","):
                if Path("/sys/fs/cgroup/freezer", path.lstrip("/"), "freezer.state").read_text().strip() == "FROZEN":
                    return True
            elif controllers == "":
                events = Path("/sys/fs/cgroup/unified", path.lstrip("/"), "cgroup.events").read_text()
                if "frozen 1" in events:
                    return True
        except OSError:
            continue
    return False


def thaw(pid: int) -> None:
    """Best effort: a frozen container cannot be removed cleanly."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            target, value = Path("/sys/fs/cgroup/freezer", path.lstrip("/"), "freezer.state"), "THAWED"
        elif controllers == "":
            target, value = Path("/sys/fs/cgroup/unified", path.lstrip("/"), "cgroup.freeze"), "0"
        else:
            continue
        try:
            target.write_text(value)
        except OSError:
            pass


class FreezeWatch:
    """Polls a container's freezer every 2 ms from ``start()``; ``frozen_at`` is the first time seen frozen."""

    def __init__(self, pid: int, timeout: float) -> None:
        self.pid = pid
        self.timeout = timeout
        self.frozen_at: float | None = None
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self) -> FreezeWatch:
        self._thread.start()
        return self

    def _poll(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if cgroup_frozen(self.pid):
                self.frozen_at = time.time()
                return
            time.sleep(0.002)

    def join(self) -> float | None:
        self._thread.join()
        return self.frozen_at


class Session:
    """A shell already running in a container (``docker exec -i <c> sh``); lines are written into it."""

    def __init__(self, container_id: str, log: Path) -> None:
        self.log = log
        self.out: IO[bytes] = log.open("wb")
        self.proc = subprocess.Popen(
            ["docker", "exec", "-i", container_id, "sh"],
            stdin=subprocess.PIPE,
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def output(self, last: int = 400) -> str:
        """The tail of what the session printed so far."""
        return self.log.read_bytes()[-last:].decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.out.close()


class Listener:
    """The attacker's listener: host busybox ``nc -l`` inside the container's network namespace
    (it is not a process of the container)."""

    def __init__(self, pid: int, port: int, log: Path) -> None:
        self.out: IO[bytes] = log.open("wb")
        self.proc = subprocess.Popen(
            ["nsenter", "-t", str(pid), "-n", "busybox", "nc", "-l", "-p", str(port)],
            stdin=subprocess.PIPE,
            stdout=self.out,
            stderr=subprocess.STDOUT,
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.out.close()


@dataclass
class CorpusHost:
    """The corpus's containers, by role; all carry ``spec.LABEL=<run_id>``."""

    client: Any
    run_id: str
    workdir: Path
    containers: dict[str, Any] = field(default_factory=dict)  # role -> docker container
    kinds: dict[str, str] = field(default_factory=dict)  # role -> benign | attack
    started: dict[str, float] = field(default_factory=dict)  # role -> time started
    sessions: list[Session | Listener] = field(default_factory=list)

    @property
    def network(self) -> str:
        return f"{spec.NAME_PREFIX}-{self.run_id}"

    def remove_leftovers(self, older_than: float = 900.0) -> None:
        """Remove corpus containers and networks a killed earlier run left behind (created more
        than ``older_than`` seconds ago: a run lasts minutes, a concurrent one is left alone)."""
        stale: set[str] = set()
        for c in self.client.containers.list(all=True, filters={"label": spec.LABEL}):
            created = datetime.fromisoformat(c.attrs["Created"][:26].rstrip("Z")).replace(tzinfo=UTC)
            if time.time() - created.timestamp() > older_than:
                stale.add(c.labels.get(spec.LABEL, ""))
                thaw(int(c.attrs["State"].get("Pid") or 0))
                c.remove(force=True)
        for n in self.client.networks.list(filters={"label": spec.LABEL}):
            if n.attrs.get("Labels", {}).get(spec.LABEL) in stale:
                n.remove()

    def create_network(self) -> None:
        self.client.networks.create(self.network, driver="bridge", labels={spec.LABEL: self.run_id})

    def start(self, role: str, image: str, kind: str, network: bool = False, docker_socket: bool = False) -> Any:
        """Start one corpus container (``--network none`` unless ``network``)."""
        volumes = {"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "ro"}} if docker_socket else None
        c = self.client.containers.run(
            spec.IMAGE_PREFIX + image,
            name=f"{spec.NAME_PREFIX}-{self.run_id}-{role}",
            hostname=role,
            labels={spec.LABEL: self.run_id, "riskguard.corpus.role": role, "riskguard.corpus.kind": kind},
            network=self.network if network else "none",
            volumes=volumes,
            detach=True,
        )
        c.reload()
        self.containers[role] = c
        self.kinds[role] = kind
        self.started[role] = time.time()
        return c

    def pid(self, role: str) -> int:
        c = self.containers[role]
        c.reload()
        return int(c.attrs["State"]["Pid"])

    def ip(self, role: str) -> str:
        c = self.containers[role]
        c.reload()
        return str(c.attrs["NetworkSettings"]["Networks"][self.network]["IPAddress"])

    def session(self, role: str) -> Session:
        s = Session(self.containers[role].id, self.workdir / f"session-{role}.log")
        self.sessions.append(s)
        return s

    def listener(self, role: str, port: int) -> Listener:
        lst = Listener(self.pid(role), port, self.workdir / f"listener-{role}.log")
        self.sessions.append(lst)
        return lst

    def operator_exec(self, role: str, argv: tuple[str, ...]) -> int:
        """An operator's ``docker exec <c> argv`` (returns the exit code; -1 when it hung)."""
        try:
            done = subprocess.run(
                ["docker", "exec", self.containers[role].id, *argv], capture_output=True, timeout=20, check=False
            )
        except subprocess.TimeoutExpired:
            return -1
        return done.returncode

    def logs(self, role: str) -> str:
        return bytes(self.containers[role].logs(stdout=True, stderr=True)).decode(errors="replace")

    def health(self, role: str) -> dict[str, Any]:
        c = self.containers[role]
        c.reload()
        return dict(c.attrs["State"].get("Health") or {})

    def frozen(self, role: str) -> bool:
        return cgroup_frozen(self.pid(role))

    def remove(self) -> None:
        """Close the sessions, thaw and remove every container of this run, then its network."""
        for s in self.sessions:
            s.close()
        for c in self.client.containers.list(all=True, filters={"label": f"{spec.LABEL}={self.run_id}"}):
            thaw(int(c.attrs["State"].get("Pid") or 0))
            c.remove(force=True)
        for n in self.client.networks.list(filters={"label": f"{spec.LABEL}={self.run_id}"}):
            n.remove()
