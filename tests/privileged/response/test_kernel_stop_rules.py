# SPDX-License-Identifier: Apache-2.0
"""The other in-kernel stop rules against real containers (probes/act.h): a connect to a container
runtime's socket, a namespace escape and an exec from /tmp, each typed into a shell session.

Each is stopped at the syscall and its container frozen; proof that nothing after the syscall ran:
the fake Docker socket (a listener this test made, bind-mounted at /var/run/docker.sock)
receives no request byte while frozen; the command after `unshare` never runs; the program
copied to /tmp writes nothing. Release resumes each. Benign twins in the same containers: a
program from /bin, ordinary commands of the same session are not stopped.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.events import NetConnect
from tests.privileged.response.kstop_harness import KStop, running_kstop
from tests.support import need, need_tool, wait_for

HERE = Path(__file__).resolve().parent


class FakeDockerSocket:
    """A unix listener that records what each client sends and answers like dockerd would."""

    def __init__(self, path: Path) -> None:
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        path.chmod(0o666)
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.received = b""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.srv.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(30)
                try:
                    data = conn.recv(4096)
                    self.received += data
                    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n[]")
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.srv.close()


@pytest.fixture(scope="module")
def rules(docker_client: Any) -> Iterator[tuple[KStop, FakeDockerSocket]]:
    gcc = need_tool("gcc")
    tmp = Path(tempfile.mkdtemp(prefix="rg-kstop-rules-"))
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    res = subprocess.run(
        [gcc, "-static", "-O1", "-o", str(bin_dir / "rgdock"), str(HERE / "rgdock.c")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    need(res.returncode == 0, f"This test needs gcc with a static libc (libc6-dev): {res.stderr[-300:]}")
    fake = FakeDockerSocket(tmp / "docker.sock")
    mounts = {
        str(tmp / "docker.sock"): {"bind": "/var/run/docker.sock", "mode": "rw"},
        str(bin_dir): {"bind": "/opt/rg", "mode": "ro"},
    }
    roles: dict[str, dict[str, Any]] = {
        "sock": {"run": {"volumes": mounts}},
        # Docker's default seccomp profile refuses unshare before any tracepoint sees it.
        "ns": {"run": {"security_opt": ["seccomp=unconfined"]}},
        "exec": {},
    }
    try:
        # No learned allowances: the exec rule is enforced at once (no learning period to wait).
        with running_kstop(docker_client, {}, roles, detectors={"learned_allowances": False}) as k:
            yield k, fake
    finally:
        fake.close()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


def _stopped_and_frozen(k: KStop, role: str, detector: str) -> None:
    wait_for(lambda: k.freezer_state(role) == "FROZEN", timeout=10, what=f"the {role} container frozen")
    [rec] = k.response.engine.records.active(k.records[role].id)
    assert rec.actor == f"kernel:{detector}" and rec.phase == "confirmed", rec


def _release(k: KStop, role: str) -> None:
    [released] = k.response.engine.release(k.records[role].id)
    assert released.phase == "released"


def test_a_runtime_socket_connect_is_stopped_before_the_request(rules: tuple[KStop, FakeDockerSocket]) -> None:
    k, fake = rules
    k.type_in("sock", "/opt/rg/rgdock /var/run/docker.sock > /tmp/reply; echo done > /tmp/done")
    _stopped_and_frozen(k, "sock", "RG-0011")
    time.sleep(0.5)
    assert fake.received == b"", "the request reached the runtime socket before the freeze"
    # The ordinary path sees the same connect (for the detector): a NetConnect on AF_UNIX.
    wait_for(
        lambda: [
            e
            for e in k.events
            if isinstance(e, NetConnect) and e.family == socket.AF_UNIX and e.daddr == "/var/run/docker.sock"
        ],
        what="the AF_UNIX connect reported",
    )
    assert not k.file_in("sock", "/tmp/done").exists()
    _release(k, "sock")
    wait_for(lambda: k.file_in("sock", "/tmp/done").exists(), timeout=10, what="the session to resume")
    assert fake.received.startswith(b"GET /containers/json")
    assert "200 OK" in k.file_in("sock", "/tmp/reply").read_text()


def test_a_namespace_escape_is_stopped_when_unshare_works(rules: tuple[KStop, FakeDockerSocket]) -> None:
    k, _fake = rules
    # Benign twin first: the same session runs ordinary commands untouched.
    k.type_in("ns", "echo before > /tmp/before")
    wait_for(lambda: k.file_in("ns", "/tmp/before").exists(), what="the ns session to run")
    assert k.freezer_state("ns") == "THAWED"
    # A failed attempt (a network namespace needs CAP_SYS_ADMIN, which the container lacks) is
    # the detector's MEDIUM, no freeze: the kernel lets it return its EPERM.
    k.type_in("ns", "unshare -n true; echo failed $? > /tmp/failed")
    wait_for(lambda: k.file_in("ns", "/tmp/failed").exists(), what="the failed unshare to return")
    assert k.file_in("ns", "/tmp/failed").read_text().strip() != "failed 0", "unshare -n worked: no failed attempt"
    assert k.freezer_state("ns") == "THAWED" and not k.response.engine.records.active(k.records["ns"].id)
    k.type_in("ns", "unshare -m -U true; echo after > /tmp/after")
    _stopped_and_frozen(k, "ns", "RG-0008")
    time.sleep(0.3)
    assert not k.file_in("ns", "/tmp/after").exists(), "the shell went on past the unshare"
    # Release: busybox unshare goes on to its next namespace call (mount --make-rprivate for
    # -m), which is stopped and frozen again; each release lets it one step further.
    releases = 0
    deadline = time.monotonic() + 20
    while not k.file_in("ns", "/tmp/after").exists():
        assert time.monotonic() < deadline, "the session never resumed"
        if k.freezer_state("ns") == "FROZEN" and k.response.engine.records.active(k.records["ns"].id):
            _release(k, "ns")
            releases += 1
        time.sleep(0.05)
    assert 1 <= releases <= 3, releases


def test_an_exec_from_tmp_is_stopped_before_its_first_instruction(rules: tuple[KStop, FakeDockerSocket]) -> None:
    k, _fake = rules
    # Benign twin: the same program from /bin runs.
    k.type_in("exec", "/bin/busybox echo fine > /tmp/fine")
    wait_for(
        lambda: k.file_in("exec", "/tmp/fine").exists() and k.file_in("exec", "/tmp/fine").read_text(), what="/bin"
    )
    assert k.freezer_state("exec") == "THAWED"
    k.type_in("exec", "cp /bin/busybox /tmp/echo; /tmp/echo pwned > /tmp/x; echo done > /tmp/done")
    _stopped_and_frozen(k, "exec", "RG-0004")
    time.sleep(0.3)
    x = k.file_in("exec", "/tmp/x")
    assert x.exists() and x.read_text() == "", "the program from /tmp ran before the freeze"
    _release(k, "exec")
    wait_for(lambda: k.file_in("exec", "/tmp/done").exists(), timeout=10, what="the session to resume")
    assert x.read_text() == "pwned\n"
