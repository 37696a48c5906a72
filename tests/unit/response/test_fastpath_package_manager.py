# SPDX-License-Identifier: Apache-2.0
"""The kernel stop's fast path judges a stopped /etc/shadow open like RG-0002: below a package
manager (debconf's perl under ``apt-get install``) the task is continued and the finding is
MEDIUM; the same open from a shell session (one that ran ``apt-get`` before, or a shell script
merely named ``dpkg``) stays critical and freezes. The process tree is a captured /proc."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.decoders.ebpf import KernelStop
from agent.findings import Severity
from agent.hostfs import HostPaths
from agent.response.engine import ResponseEngine
from agent.response.fastpath import ActionWorker, FastPath
from agent.runtime.model import Container

CID = "e" * 64
CGROUP_ID = 9911
# High pids (pid_max is 4194304 at most): the fast path's SIGCONT finds no such process.
BASE = 4_190_000


def proc(paths: HostPaths, pid: int, ppid: int, comm: str, exe: str, argv: list[str]) -> None:
    d = paths.pid_dir(pid)
    (d / "fd").mkdir(parents=True)
    (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n")
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (d / "cgroup").write_text(f"0::/docker/{CID}\n")
    (d / "exe").symlink_to(exe)


@pytest.fixture
def fast(tmp_path: Path, make_ctx: Callable[..., AgentContext]) -> tuple[FastPath, AgentContext, Container]:
    paths = HostPaths.under(tmp_path / "host")
    cg = paths.cgroup / "freezer" / "docker" / CID
    cg.mkdir(parents=True)
    (cg / "freezer.state").write_text("THAWED\n")
    (cg / "cgroup.procs").write_text(f"{BASE}\n")
    # The container's init (a shell), then two lineages below it.
    proc(paths, BASE, 1, "sh", "/bin/sh", ["/bin/sh", "/entry.sh"])
    # apt-get install ./local.deb -> dpkg-preconfigure (a perl script) opening /etc/shadow
    proc(paths, BASE + 1, BASE, "apt-get", "/usr/bin/apt-get", ["apt-get", "install", "-y", "./local.deb"])
    proc(
        paths,
        BASE + 2,
        BASE + 1,
        "dpkg-preconfigu",
        "/usr/bin/perl",
        ["/usr/bin/perl", "-w", "/usr/sbin/dpkg-preconfigure", "--apt"],
    )
    # an operator's shell session: it ran apt-get earlier (gone), now cat /etc/shadow
    proc(paths, BASE + 3, BASE, "sh", "/bin/busybox", ["sh"])
    proc(paths, BASE + 4, BASE + 3, "cat", "/bin/busybox", ["cat", "/etc/shadow"])
    # a shell script named dpkg: its program is sh, not a package manager
    proc(paths, BASE + 5, BASE + 3, "dpkg", "/bin/busybox", ["/bin/sh", "/usr/local/bin/dpkg"])
    proc(paths, BASE + 6, BASE + 5, "cat", "/bin/busybox", ["cat", "/etc/shadow"])
    cfg = AgentConfig.model_validate({"response": {"mode": "enforce"}})
    ctx = make_ctx(config=cfg, paths=paths)
    c = Container(
        id=CID,
        name="pkg",
        image="debian:12",
        image_id="",
        runtime="docker",
        init_pid=BASE,
        cgroup_v1={"freezer": f"/docker/{CID}"},
        cgroup_v2="",
        labels={},
        cgroup_id=CGROUP_ID,
    )
    ctx.registry.upsert(c)
    worker = ActionWorker("test-worker")
    worker.start()
    yield FastPath(ResponseEngine(ctx), worker), ctx, c  # type: ignore[misc]
    worker.stop()


def stop(pid: int, comm: str) -> KernelStop:
    return KernelStop("open", pid, pid, CGROUP_ID, 1, 1000.0, comm, 0, "openat", 0, "/etc/shadow", True)


def freezer(ctx: AgentContext) -> str:
    return (ctx.paths.cgroup / "freezer" / "docker" / CID / "freezer.state").read_text().strip()


def test_shadow_open_below_apt_get_is_continued_and_medium(fast: tuple[FastPath, AgentContext, Container]) -> None:
    fp, ctx, _c = fast
    fp.on_stop(stop(BASE + 2, "dpkg-preconfigu"))
    assert fp.worker.drain()
    assert freezer(ctx) == "THAWED" and not fp.engine.records.actions()
    assert fp.counters["continued_below_package_manager"] == 1 and fp.counters["frozen"] == 0
    [f] = fp.engine.records.findings(container="pkg")
    assert f.severity == Severity.MEDIUM and f.detector_id == "RG-0002"
    assert "below the package manager apt-get" in f.summary
    assert f.evidence["must_act"] is False and f.verdict is not None and f.verdict.action == "alert"


@pytest.mark.parametrize(("pid", "why"), [(BASE + 4, "shell that ran apt-get before"), (BASE + 6, "script named dpkg")])
def test_shadow_open_from_a_shell_stays_critical_and_frozen(
    fast: tuple[FastPath, AgentContext, Container], pid: int, why: str
) -> None:
    fp, ctx, _c = fast
    fp.on_stop(stop(pid, "cat"))
    assert fp.worker.drain()
    assert freezer(ctx) == "FROZEN", why
    assert fp.counters["frozen"] == 1 and not fp.counters["continued_below_package_manager"]
    [f] = fp.engine.records.findings(container="pkg")
    assert f.severity == Severity.CRITICAL and f.evidence["must_act"] is True
