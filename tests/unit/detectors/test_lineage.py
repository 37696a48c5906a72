# SPDX-License-Identifier: Apache-2.0
"""Process lineage on captured /proc trees: roles from executables and #! interpreters, gaps
filled from /proc, pruning; and RG-0001 on those trees (benign twins and real services)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.detectors.lineage import ProcessTree, parse_shebang, read_head_in_root, role_of
from agent.detectors.registry import BY_ID
from agent.detectors.spec import DetectorState
from agent.events import ContainerRef, ProcessExec, ProcessExit
from agent.findings import Severity
from agent.hostfs import HostPaths
from agent.settings.detectors import DetectorsSettings

C = ContainerRef(id="5c" * 32, name="app", image="riskguard-test/busybox")
INIT = 10
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 57

# Files of the container's root filesystem (path -> first bytes).
ROOTFS: dict[str, bytes] = {
    "/bin/busybox": ELF,
    "/sbin/tini": ELF,
    "/usr/bin/python3.11": ELF,
    "/usr/sbin/httpd": ELF,
    "/docker-entrypoint.sh": b"#!/bin/sh\nset -e\n",
    "/docker-entrypoint.d/20-check.sh": b"#!/bin/sh\nsh -c 'test -r /etc/app.conf'\n",
    "/app/job.sh": b"#!/bin/sh\necho job\n",
    "/app/loop.sh": b"#!/bin/sh\nwhile true; do sh /app/job.sh; sleep 1; done\n",
    "/app/server.py": b"#!/usr/bin/env python3\nimport http.server\n",
    "/app/tool.pl": b"#!/usr/bin/env -S perl -w\n",
    "/usr/bin/supervisord": b"#!/usr/bin/python3.11\n# -*- coding: utf-8 -*-\n",
    "/www/cgi-bin/status.cgi": b"#!/bin/sh\necho Content-Type: text/plain\n",
    "/bin/bb-script": b"#!/bin/busybox ash\n",
}


@dataclass(frozen=True)
class Proc:
    """One process of a captured /proc tree."""

    pid: int
    ppid: int
    exe: str
    cmdline: tuple[str, ...]
    stdio: tuple[str, ...] = ("/dev/null", "pipe:[77]", "pipe:[77]")


def capture(tmp_path: Path, procs: list[Proc]) -> HostPaths:
    """A host tree: /proc/stat, /proc/<pid>/{stat,exe,cmdline,fd,root}; every root is the same
    container filesystem (``ROOTFS``)."""
    paths = HostPaths.under(tmp_path / "host")
    rootfs = tmp_path / "rootfs"
    for path, data in ROOTFS.items():
        f = rootfs / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    (rootfs / "bin" / "sh").symlink_to("busybox")
    paths.proc.mkdir(parents=True)
    (paths.proc / "stat").write_text("cpu  1 2 3\nbtime 1700000000\n")
    for p in procs:
        d = paths.pid_dir(p.pid)
        (d / "fd").mkdir(parents=True)
        comm = Path(p.exe).name[:15]
        rest = ["S", str(p.ppid)] + ["0"] * 17 + ["500"] + ["0"] * 10
        (d / "stat").write_text(f"{p.pid} ({comm}) {' '.join(rest)}\n")
        (d / "exe").symlink_to(p.exe)
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in p.cmdline) + b"\0")
        for i, target in enumerate(p.stdio):
            (d / "fd" / str(i)).symlink_to(target)
        (d / "root").symlink_to(rootfs)
    return paths


def exec_ev(pid: int, ppid: int, filename: str, argv: tuple[str, ...], parent_comm: str = "") -> ProcessExec:
    return ProcessExec(
        ts=1000.0 + pid,
        pid=pid,
        cgroup_id=7,
        container=C,
        ppid=ppid,
        uid=0,
        comm=Path(filename).name[:15],
        filename=filename,
        argv=argv,
        parent_comm=parent_comm,
    )


def tree_on(paths: HostPaths) -> ProcessTree:
    return ProcessTree(settings=DetectorsSettings(), paths=paths, init_pid=lambda _c: INIT)


# --- roles from executables and interpreters ----------------------------------------------
ROLE_CASES = [
    # (case, filename, argv, program, role, interpreter)
    ("entrypoint-script", "/docker-entrypoint.sh", ("/docker-entrypoint.sh", "nginx"), "sh", "shell", "/bin/sh"),
    (
        "hook-script",
        "/docker-entrypoint.d/20-check.sh",
        ("/docker-entrypoint.d/20-check.sh",),
        "sh",
        "shell",
        "/bin/sh",
    ),
    ("sh-runs-script", "/bin/sh", ("sh", "/app/job.sh"), "sh", "shell", ""),
    ("env-python", "/app/server.py", ("/app/server.py",), "python3", "interpreter", "python3"),
    ("env-S-perl", "/app/tool.pl", ("/app/tool.pl",), "perl", "interpreter", "perl"),
    ("python-binary", "/usr/bin/python3.11", ("python3", "/app/server.py"), "python3.11", "interpreter", ""),
    (
        "supervisord-script",
        "/usr/bin/supervisord",
        ("/usr/bin/supervisord", "-n"),
        "python3.11",
        "supervisor",
        "/usr/bin/python3.11",
    ),
    ("busybox-crond", "/bin/busybox", ("crond", "-f", "-l", "8"), "crond", "scheduler", ""),
    ("crond-link", "/usr/sbin/crond", ("crond", "-f"), "crond", "scheduler", ""),
    ("tini", "/sbin/tini", ("tini", "--", "/app/loop.sh"), "tini", "init", ""),
    ("busybox-httpd", "/bin/busybox", ("httpd", "-f", "-p", "8080"), "httpd", "other", ""),
    ("cgi-script", "/www/cgi-bin/status.cgi", ("/www/cgi-bin/status.cgi",), "sh", "shell", "/bin/sh"),
    ("busybox-shebang", "/bin/bb-script", ("/bin/bb-script",), "ash", "shell", "/bin/busybox"),
    ("timeout-wrapper", "/bin/busybox", ("timeout", "5", "sh", "-c", "x"), "timeout", "wrapper", ""),
    ("apk", "/sbin/apk", ("apk", "add", "/tmp/x.apk"), "apk", "package_manager", ""),
]


@pytest.mark.parametrize(
    ("case", "filename", "argv", "program", "role", "interp"), ROLE_CASES, ids=[c[0] for c in ROLE_CASES]
)
def test_roles_come_from_executables_and_interpreters(
    tmp_path: Path, case: str, filename: str, argv: tuple[str, ...], program: str, role: str, interp: str
) -> None:
    paths = capture(tmp_path, [Proc(300, 20, "/bin/busybox", ("sh",))])
    info = tree_on(paths).on_exec(exec_ev(300, 20, filename, argv))
    assert (info.program, info.role, info.interpreter) == (program, role, interp), case
    assert info.exe == filename and info.source == "exec"


def test_a_scripts_comm_never_decides_its_role(tmp_path: Path) -> None:
    # The kernel names a script's process by the script's file name.
    paths = capture(tmp_path, [Proc(301, INIT, "/bin/busybox", ("/bin/sh", "/docker-entrypoint.d/20-check.sh"))])
    ev = exec_ev(301, INIT, "/docker-entrypoint.d/20-check.sh", ("/docker-entrypoint.d/20-check.sh",))
    assert ev.comm == "20-check.sh"
    assert tree_on(paths).on_exec(ev).role == "shell"


def test_script_read_from_the_init_root_when_the_process_is_gone(tmp_path: Path) -> None:
    paths = capture(tmp_path, [Proc(INIT, 1, "/sbin/tini", ("tini",))])
    info = tree_on(paths).on_exec(exec_ev(999, INIT, "/app/job.sh", ("/app/job.sh",)))
    assert (info.program, info.interpreter) == ("sh", "/bin/sh")


def test_relative_script_resolved_from_the_kernel_rewritten_cmdline(tmp_path: Path) -> None:
    # "./job.sh" cannot be read without the cwd; /proc/<pid>/cmdline shows the interpreter.
    paths = capture(tmp_path, [Proc(302, 30, "/bin/busybox", ("/bin/sh", "./job.sh"))])
    info = tree_on(paths).on_exec(exec_ev(302, 30, "./job.sh", ("./job.sh",)))
    assert (info.program, info.role, info.interpreter) == ("sh", "shell", "/bin/sh")


def test_symlinks_never_lead_out_of_the_container_root(tmp_path: Path) -> None:
    paths = capture(tmp_path, [Proc(303, 30, "/bin/busybox", ("sh",))])
    outside = tmp_path / "host-secret.sh"
    outside.write_bytes(b"#!/usr/bin/python3\n")
    rootfs = tmp_path / "rootfs"
    (rootfs / "app" / "escape.sh").symlink_to(f"../../../..{outside}")
    (rootfs / "app" / "abs.sh").symlink_to(str(outside))
    for name in ("escape.sh", "abs.sh"):
        assert read_head_in_root(rootfs, f"/app/{name}") is None
        info = tree_on(paths).on_exec(exec_ev(303, 30, f"/app/{name}", (f"/app/{name}",)))
        assert info.interpreter == "" and info.role == "other", name


def test_fifo_and_directories_are_not_read(tmp_path: Path) -> None:
    rootfs = tmp_path / "r"
    (rootfs / "app").mkdir(parents=True)
    os.mkfifo(rootfs / "app" / "fifo.sh")
    assert read_head_in_root(rootfs, "/app/fifo.sh") is None  # returns at once: O_NONBLOCK
    assert read_head_in_root(rootfs, "/app") is None
    big = rootfs / "app" / "big.sh"
    big.write_bytes(b"#!/bin/sh\n" + b"x" * 10000)
    assert read_head_in_root(rootfs, "/app/big.sh") == (b"#!/bin/sh\n" + b"x" * 10000)[:256]


@pytest.mark.parametrize(
    ("line", "expect"),
    [
        (b"#!/bin/sh\n", ("/bin/sh", "sh")),
        (b"#! /bin/bash -e\n", ("/bin/bash", "bash")),
        (b"#!/usr/bin/env python3\n", ("python3", "python3")),
        (b"#!/usr/bin/env -S FOO=1 node --harmony\n", ("node", "node")),
        (b"#!/bin/busybox sh\n", ("/bin/busybox", "sh")),
        (b"#!\n", ("", "")),
        (ELF, ("", "")),
        (b"#!/usr/bin/\xff\xfe\n", ("/usr/bin/\ufffd\ufffd", "\ufffd\ufffd")),
    ],
)
def test_parse_shebang(line: bytes, expect: tuple[str, str]) -> None:
    assert parse_shebang(line) == expect


def test_versions_and_globs_in_role_names() -> None:
    s = DetectorsSettings()
    assert role_of("perl5.36.0", s) == "interpreter"
    assert role_of("php-fpm8.2", s) == "other"
    assert role_of("s6-supervise", s) == "supervisor"
    assert role_of("containerd-shim-runc-v2", s) == "runtime"
    assert role_of("exe (deleted)", s, exe="/memfd:runc_cloned:/proc/self/exe (deleted)") == "runtime"


# --- gaps from /proc, exits, sweep -----------------------------------------------------------
HOST_TREE = [
    Proc(5, 1, "/usr/bin/containerd-shim-runc-v2", ("/usr/bin/containerd-shim-runc-v2", "-namespace", "moby")),
    Proc(INIT, 5, "/sbin/tini", ("tini", "--", "/app/loop.sh")),
    Proc(29, INIT, "/bin/busybox", ("/bin/sh", "/app/loop.sh")),
    Proc(30, 29, "/bin/busybox", ("/bin/sh", "/app/loop.sh")),  # a forked subshell: no exec
]


def test_fill_from_proc_and_ancestors(tmp_path: Path) -> None:
    tree = tree_on(capture(tmp_path, HOST_TREE))
    info = tree.fill_from_proc(C.id, 29)
    assert info is not None
    assert (info.program, info.role, info.script, info.ppid, info.source) == (
        "sh",
        "shell",
        "/app/loop.sh",
        INIT,
        "proc",
    )
    assert info.stdio == ("/dev/null", "pipe:[77]", "pipe:[77]")
    assert info.start_ts == pytest.approx(1700000000 + 500 / os.sysconf("SC_CLK_TCK"))
    tree.on_exec(exec_ev(31, 30, "/bin/sh", ("sh", "-c", "date")))
    chain = tree.ancestors(C.id, 31)
    assert [(p.pid, p.role) for p in chain] == [(30, "shell"), (29, "shell"), (INIT, "init"), (5, "runtime")]
    assert tree.fill_from_proc(C.id, 4242) is None


def test_exit_and_sweep_prune(tmp_path: Path) -> None:
    paths = capture(tmp_path, HOST_TREE)
    tree = tree_on(paths)
    for pid in (29, 30):
        tree.fill_from_proc(C.id, pid)
    tree.on_exec(exec_ev(31, 30, "/bin/sh", ("sh", "-c", "date")))  # no /proc entry: "exited"
    tree.on_exit(ProcessExit(ts=2000, pid=30, container=C, comm="sh"))
    assert tree.get(C.id, 30) is None and tree.get(C.id, 29) is not None
    assert tree.sweep() == 1
    assert tree.get(C.id, 31) is None and tree.get(C.id, 29) is not None


def test_memory_only_tree_reads_nothing() -> None:
    tree = ProcessTree()
    info = tree.on_exec(exec_ev(os.getpid(), 1, "/app/job.sh", ("/app/job.sh",)))
    assert info.interpreter == "" and tree.fill_from_proc(C.id, os.getpid()) is None and tree.sweep() == 0


# --- RG-0001 on lineage ------------------------------------------------------------------------
@dataclass(frozen=True)
class ShellCase:
    name: str
    procs: list[Proc]  # what /proc shows when the shell's exec is evaluated
    execs: list[ProcessExec]  # exec events, in order; the last one is judged
    parent: str | None  # expected finding's parent program, None: no finding
    severity: Severity = Severity.HIGH


BASE = HOST_TREE[:2]
SHELL_CASES = [
    ShellCase(
        "script-starts-shell",
        BASE,
        [
            exec_ev(29, INIT, "/app/loop.sh", ("/app/loop.sh",)),
            exec_ev(40, 29, "/bin/sh", ("sh", "/app/job.sh")),
            exec_ev(41, 40, "/bin/sh", ("sh", "-c", "echo hook")),
        ],
        None,
    ),
    ShellCase(
        "script-runs-script",
        BASE,
        [exec_ev(29, INIT, "/app/loop.sh", ("/app/loop.sh",)), exec_ev(42, 29, "/app/job.sh", ("/app/job.sh",))],
        None,
    ),
    ShellCase(
        "crond-job",
        BASE,
        [exec_ev(50, INIT, "/bin/busybox", ("crond", "-f")), exec_ev(51, 50, "/bin/sh", ("sh", "-c", "/app/job.sh"))],
        None,
    ),
    ShellCase(
        "entrypoint-hook-sh-c",
        BASE,
        [
            exec_ev(INIT, 5, "/docker-entrypoint.sh", ("/docker-entrypoint.sh", "nginx")),
            exec_ev(60, INIT, "/docker-entrypoint.d/20-check.sh", ("/docker-entrypoint.d/20-check.sh",)),
            exec_ev(61, 60, "/bin/sh", ("sh", "-c", "test -r /etc/app.conf"), parent_comm="20-check.sh"),
        ],
        None,
    ),
    ShellCase(
        "forked-subshell-only-in-proc",
        [*HOST_TREE],
        [exec_ev(62, 30, "/bin/sh", ("sh", "-c", "date"), parent_comm="loop.sh")],
        None,
    ),
    ShellCase(
        "docker-exec-from-shim",
        HOST_TREE[:1],
        [exec_ev(63, 5, "/bin/sh", ("sh",), parent_comm="containerd-shim")],
        None,
    ),
    ShellCase(
        "shell-through-timeout",
        BASE,
        [
            exec_ev(64, INIT, "/app/loop.sh", ("/app/loop.sh",)),
            exec_ev(65, 64, "/bin/busybox", ("timeout", "5", "sh", "-c", "x")),
            exec_ev(66, 65, "/bin/sh", ("sh", "-c", "x")),
        ],
        None,
    ),
    ShellCase(
        "httpd-cgi-script",
        BASE,
        [
            exec_ev(70, INIT, "/bin/busybox", ("httpd", "-f", "-p", "8080", "-h", "/www")),
            exec_ev(71, 70, "/www/cgi-bin/status.cgi", ("/www/cgi-bin/status.cgi",)),
        ],
        "httpd",
    ),
    ShellCase(
        "nc-listener-e-sh",
        BASE,
        [
            exec_ev(72, INIT, "/bin/busybox", ("nc", "-lk", "-p", "9000", "-e", "/bin/sh")),
            exec_ev(73, 72, "/bin/sh", ("/bin/sh",)),
        ],
        "nc",
    ),
    ShellCase(
        "python-server-sh-c",
        BASE,
        [
            exec_ev(74, INIT, "/app/server.py", ("/app/server.py",)),
            exec_ev(75, 74, "/bin/sh", ("sh", "-c", "id")),
        ],
        "python3",
    ),
    ShellCase(
        "python-through-timeout",
        BASE,
        [
            exec_ev(76, INIT, "/usr/bin/python3.11", ("python3", "/app/server.py")),
            exec_ev(77, 76, "/bin/busybox", ("timeout", "5", "sh", "-c", "id")),
            exec_ev(78, 77, "/bin/sh", ("sh", "-c", "id")),
        ],
        "python3.11",
    ),
    ShellCase(
        "wrapper-whose-parent-is-gone",
        BASE,
        [
            exec_ev(82, 4100, "/bin/busybox", ("timeout", "5", "sh", "-c", "x")),
            exec_ev(83, 82, "/bin/sh", ("sh", "-c", "x")),
        ],
        "timeout",
        Severity.LOW,
    ),
    ShellCase(
        "parent-gone-named-by-comm",
        BASE,
        [exec_ev(79, 4000, "/bin/sh", ("sh", "-c", "id"), parent_comm="httpd")],
        "httpd",
        Severity.LOW,
    ),
]


@pytest.mark.parametrize("case", SHELL_CASES, ids=[c.name for c in SHELL_CASES])
def test_rg0001_on_lineage(tmp_path: Path, case: ShellCase) -> None:
    paths = capture(tmp_path, case.procs)
    st = DetectorState()
    st.lineage.paths = paths
    st.init_pid = st.lineage.init_pid = lambda _c: INIT
    rule = BY_ID["RG-0001"]
    for ev in case.execs[:-1]:
        assert rule.evaluate(ev, st) is None, f"{case.name}: earlier exec {ev.argv} reported"
    f = rule.evaluate(case.execs[-1], st)
    if case.parent is None:
        assert f is None, f.summary if f else ""
        return
    assert f is not None, case.name
    assert f.evidence["parent"] == case.parent and f.severity == case.severity
    assert f.evidence["process"]["role"] == "shell"
    assert f.evidence["lineage"][-1] in ("sh", "status.cgi")


def test_relative_script_resolved_against_the_cwd(tmp_path: Path) -> None:
    # busybox httpd chdirs to cgi-bin and execs "status.cgi".
    paths = capture(tmp_path, [Proc(310, 70, "/bin/busybox", ("status.cgi",))])
    (paths.pid_dir(310) / "cwd").symlink_to("/www/cgi-bin")
    info = tree_on(paths).on_exec(exec_ev(310, 70, "status.cgi", ("status.cgi",)))
    assert (info.program, info.role, info.interpreter, info.resolved) == ("sh", "shell", "/bin/sh", True)


def test_unresolved_parent_is_asked_again_from_proc(tmp_path: Path) -> None:
    # The script's exec was seen after the process had moved on (nothing readable then); when
    # its child execs, /proc shows the interpreter running it: a shell, not a service.
    paths = capture(tmp_path, [])
    tree = tree_on(paths)
    info = tree.on_exec(exec_ev(320, 70, "run.sh", ("run.sh",)))
    assert (info.role, info.resolved) == ("other", False)
    d = paths.pid_dir(320)
    (d / "fd").mkdir(parents=True)
    (d / "stat").write_text("320 (run.sh) S 70 " + " ".join(["0"] * 17) + " 500 0\n")
    (d / "exe").symlink_to("/bin/busybox")
    (d / "cmdline").write_bytes(b"/bin/sh\0run.sh\0")
    parent = tree.parent(exec_ev(321, 320, "/bin/sh", ("sh", "-c", "id"), parent_comm="run.sh"))
    assert parent is not None and (parent.program, parent.role, parent.source) == ("sh", "shell", "proc")


def test_gone_fork_known_by_the_file_its_comm_names(tmp_path: Path) -> None:
    # httpd forks a handler per connection (never exec'd) which starts the CGI and exits; when
    # the CGI's exec is handled both are gone. The handler's comm names the file the container
    # ran earlier: httpd (a server), or a hook script (a shell).
    tree = tree_on(capture(tmp_path, [Proc(INIT, 5, "/sbin/tini", ("tini",))]))
    tree.on_exec(exec_ev(80, INIT, "/usr/sbin/httpd", ("httpd", "-f")))
    tree.on_exec(exec_ev(81, INIT, "/docker-entrypoint.d/20-check.sh", ("/docker-entrypoint.d/20-check.sh",)))
    web = tree.parent(exec_ev(90, 85, "/bin/sh", ("sh",), parent_comm="httpd"))
    assert web is not None and (web.program, web.role, web.source, web.pid) == ("httpd", "other", "name", 85)
    hook = tree.parent(exec_ev(91, 86, "/bin/sh", ("sh", "-c", "x"), parent_comm="20-check.sh"))
    assert hook is not None and (hook.program, hook.role, hook.source) == ("sh", "shell", "name")
    other = ContainerRef(id="77" * 32, name="db", image="pg")
    stranger = tree.parent(
        ProcessExec(ts=1, pid=92, container=other, ppid=87, uid=0, comm="sh", filename="/bin/sh", parent_comm="httpd")
    )
    assert stranger is not None and stranger.source == "event"  # names are per container
