# SPDX-License-Identifier: Apache-2.0
"""FileChange completion without a kernel: relative and fd-relative paths resolved from a captured
/proc tree (the task's cwd, else its parent's when in the same cgroup), the watched set applied
again in user space; and the dispatcher's routing table covering every kind."""

from __future__ import annotations

import re

from agent.events import FileChange
from agent.hostfs import HostPaths
from agent.sources.ebpf import PROBES_DIR, change_watched, complete_change, resolve_path

PREFIXES = ("/var/log/", "/root/", "/home/")
CG = 4242


def _pid(host: HostPaths, pid: int, cwd: str = "", cgroup: str = "/docker/abc") -> None:
    d = host.pid_dir(pid)
    (d / "fd").mkdir(parents=True)
    if cwd:
        (d / "cwd").symlink_to(cwd)
    (d / "cgroup").write_text(f"0::{cgroup}\n")


def _cgroup(host: HostPaths, path: str) -> int:
    d = host.cgroup_v2 / path.lstrip("/")
    d.mkdir(parents=True, exist_ok=True)
    return d.stat().st_ino


def _unlink(path: str, pid: int = 10, cg: int = CG, ppid: int = 0) -> FileChange:
    return FileChange(ts=1.0, pid=pid, ppid=ppid, cgroup_id=cg, op="unlink", comm="rm", path=path)


def test_watched_set_is_the_kernel_rule() -> None:
    assert change_watched("/var/log/auth.log", PREFIXES) and change_watched("/root/x", PREFIXES)
    assert change_watched("/tmp/a/.ash_history", PREFIXES) and change_watched("/srv/.history", PREFIXES)
    assert not change_watched("/tmp/x", PREFIXES) and not change_watched("/var/logx", PREFIXES)
    assert not change_watched("/tmp/history", PREFIXES)


def test_relative_path_resolved_against_the_task_cwd(host_tree: HostPaths) -> None:
    _pid(host_tree, 10, cwd="/var/log")
    ev = complete_change(_unlink("../log/./auth.log"), host_tree, PREFIXES)
    assert ev is not None and ev.path == "/var/log/auth.log"
    # Resolved outside the watched set: dropped.
    _pid(host_tree, 11, cwd="/tmp")
    assert complete_change(_unlink("x", pid=11), host_tree, PREFIXES) is None
    # Absolute paths were selected by the kernel: kept as they are.
    ev2 = _unlink("/var/log/y")
    assert complete_change(ev2, host_tree, PREFIXES) is ev2


def test_gone_task_falls_back_to_its_parent_in_the_same_cgroup_only(host_tree: HostPaths) -> None:
    cg = _cgroup(host_tree, "/docker/abc")
    _pid(host_tree, 20, cwd="/root", cgroup="/docker/abc")  # the shell
    ev = complete_change(_unlink(".ash_history", pid=99, cg=cg, ppid=20), host_tree, PREFIXES)
    assert ev is not None and ev.path == "/root/.ash_history"
    # A parent outside the container (the runtime's shim): its cwd is not the task's.
    _pid(host_tree, 21, cwd="/var/log", cgroup="/system.slice/containerd.service")
    _cgroup(host_tree, "/system.slice/containerd.service")
    assert resolve_path("auth.log", 99, host_tree, ppid=21, cgroup_id=cg) is None
    # Unresolvable: kept as the task passed it (a detector may still judge the name).
    kept = complete_change(_unlink("auth.log", pid=99, cg=cg, ppid=21), host_tree, PREFIXES)
    assert kept is not None and kept.path == "auth.log"


def test_fd_relative_paths_and_futimens(host_tree: HostPaths) -> None:
    _pid(host_tree, 30, cwd="/")
    (host_tree.pid_dir(30) / "fd" / "3").symlink_to("/var/log/nginx")
    (host_tree.pid_dir(30) / "fd" / "4").symlink_to("/etc/passwd")
    ev = complete_change(_unlink("/proc/30/fd/3/access.log", pid=30), host_tree, PREFIXES)
    assert ev is not None and ev.path == "/var/log/nginx/access.log"
    t = FileChange(ts=1.0, pid=30, op="utimes", comm="touch", path="/proc/30/fd/4", explicit_times=True)
    done = complete_change(t, host_tree, PREFIXES)
    assert done is not None and done.path == "/etc/passwd"
    # utimes is never filtered by path, even where it cannot be resolved.
    gone = FileChange(ts=1.0, pid=31, op="utimes", comm="touch", path="/proc/31/fd/4", explicit_times=True)
    assert complete_change(gone, host_tree, PREFIXES) is gone


def test_rename_into_a_watched_place_is_kept(host_tree: HostPaths) -> None:
    _pid(host_tree, 40, cwd="/tmp")
    ev = FileChange(ts=1.0, pid=40, cgroup_id=CG, op="rename", comm="mv", path="empty", new_path="/root/.ash_history")
    done = complete_change(ev, host_tree, PREFIXES)
    assert done is not None and (done.path, done.new_path) == ("/tmp/empty", "/root/.ash_history")
    both_tmp = FileChange(ts=1.0, pid=40, cgroup_id=CG, op="rename", comm="mv", path="a", new_path="b")
    assert complete_change(both_tmp, host_tree, PREFIXES) is None


def test_every_routed_kind_has_a_case_in_the_dispatcher() -> None:
    defines = {k: int(v) for k, v in re.findall(r"#define (RG_KIND_\w+) (\d+)", (PROBES_DIR / "task.h").read_text())}
    kinds = set(defines)
    by_value = {v: k for k, v in defines.items()}

    def cases(text: str) -> set[str]:
        """The kinds a switch names: ``case A:`` and GNU case ranges ``case A ... B:``."""
        out: set[str] = set()
        for lo, hi in re.findall(r"case (RG_KIND_\w+)(?: \.\.\. (RG_KIND_\w+))?:", text):
            out.update(by_value[v] for v in range(defines[lo], defines[hi or lo] + 1))
        return out

    dispatch = (PROBES_DIR / "sysdispatch.h").read_text()
    enter, _, exit_ = dispatch.partition("RAW_TRACEPOINT_PROBE(sys_exit)")
    cases_enter = cases(enter)
    cases_exit = cases(exit_)
    assert cases_enter == kinds
    # Kinds that stage an event for the result (all but exec's, which emits at sched hooks; an
    # AF_UNIX connect to a runtime socket is staged as an open record).
    no_result = {"RG_KIND_EXECVE", "RG_KIND_EXECVEAT", "RG_KIND_EXIT", "RG_KIND_EXIT_GROUP"}
    assert cases_exit == kinds - no_result
