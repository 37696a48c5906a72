# SPDX-License-Identifier: Apache-2.0
"""Completing kernel records from /proc, best effort (the process may be gone): the exec stdio
the probe could not name, ppid and exe origin; an accepted connection's addresses; the paths of
file changes (relative or directory-fd paths resolved against the task's, or its shell's, cwd;
the watched set applied again)."""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.decoders.ebpf_stdio import STDIO_FROM_PROC
from agent.events import FileChange, NetConnect, ProcessExec
from agent.hostfs import HostPaths
from agent.runtime.cgroups import ProcessGone, cgroup_id_of, read_proc_cgroup
from agent.sources import procnet
from agent.textsafe import no_surrogates


def _read_link(p: Path | str) -> str:
    try:
        # a non-UTF-8 file name: U+FFFD, not surrogates
        return no_surrogates(os.readlink(p))  # noqa: PTH115 - the link text exactly as the kernel wrote it; Path would normalise it
    except OSError:
        return ""


def _ppid_of(paths: HostPaths, pid: int) -> int:
    try:
        for line in (paths.pid_dir(pid) / "status").read_bytes().decode("utf-8", "replace").splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _comm_of(paths: HostPaths, pid: int) -> str:
    try:
        return (paths.pid_dir(pid) / "comm").read_bytes().decode("utf-8", "replace").strip()
    except OSError:
        return ""


def complete_exec(ev: ProcessExec, paths: HostPaths) -> ProcessExec:
    """Fill what the kernel record lacks from /proc, best effort (the process may be gone): the
    stdio targets the probe could not name (a file's path; all three when the probe read none),
    ppid and parent comm when the probe did not see the fork, exe origin (when the probe could
    not read the executable). The event itself when nothing was missing: this runs for every
    exec that reaches Python, and with the probe's stdio, executables and fork parent it reads
    nothing and allocates nothing."""
    stdio = ev.stdio
    if stdio and STDIO_FROM_PROC not in stdio and ev.ppid and ev.parent_comm and ev.exe_name:
        return ev
    changes: dict[str, Any] = {}
    if not stdio or STDIO_FROM_PROC in stdio:
        # Plain strings, not Path joins. Only the fds the kernel could not name (all when the
        # record has none); one gone meanwhile is "".
        fd_dir = f"{paths.pid_dir(ev.pid)}/fd/"
        read = tuple(
            _read_link(fd_dir + str(i)) if not stdio or t == STDIO_FROM_PROC else t
            for i, t in enumerate(stdio or ("", "", ""))
        )
        named = read if any(read) else ()
        if named != stdio:
            changes["stdio"] = named
    ppid = ev.ppid or _ppid_of(paths, ev.pid)
    if ppid != ev.ppid:
        changes["ppid"] = ppid
    if not ev.parent_comm and ppid:
        changes["parent_comm"] = _comm_of(paths, ppid)
    if ev.exe_name:  # the kernel read the executable: exe_origin is already set
        return dataclasses.replace(ev, **changes) if changes else ev
    exe = _read_link(paths.pid_dir(ev.pid) / "exe")
    if exe.startswith("/memfd:") or ev.filename.startswith("/memfd:"):
        changes["exe_origin"] = "memfd"
    elif exe.endswith(" (deleted)"):
        changes["exe_origin"] = "deleted"
    return dataclasses.replace(ev, **changes) if changes else ev


def socket_tuple(paths: HostPaths, pid: int, fd: int, local_port: int = 0) -> tuple[int, str, int, str, int] | None:
    """(family, local addr, local port, remote addr, remote port) of a connected TCP socket of
    ``pid``, read from its own /proc/<pid>/net/tcp{,6} (its network namespace): the socket at
    ``fd``, else (the task may have moved it, e.g. busybox nc dup2s it to stdin) any connected
    socket of the process on ``local_port``. None when the process or socket is gone."""
    inodes: dict[int, int] = {}
    try:
        fds = list((paths.pid_dir(pid) / "fd").iterdir())
    except OSError:
        return None
    for entry in fds:
        m = re.fullmatch(r"socket:\[(\d+)\]", _read_link(entry))
        if m:
            inodes[int(m.group(1))] = int(entry.name) if entry.name.isdigit() else -1
    best: tuple[int, str, int, str, int] | None = None
    for r in procnet.read_tables(paths, pid, ("tcp", "tcp6"), unmap=True):
        if r.inode not in inodes:
            continue
        family = socket.AF_INET6 if r.table == "tcp6" else socket.AF_INET
        t = (family, r.local, r.local_port, r.remote, r.remote_port)
        if inodes[r.inode] == fd:
            return t
        if local_port and r.local_port == local_port and r.remote_port and best is None:
            best = t
    return best


def complete_accept(ev: NetConnect, paths: HostPaths) -> NetConnect:
    """Fill an accepted connection's addresses from /proc when the probe could not read them
    (the task passed no sockaddr to accept(), or the listener predates the probe)."""
    t = socket_tuple(paths, ev.pid, ev.fd, ev.sport)
    if t is None:
        return ev
    family, la, lp, ra, rp = t
    return dataclasses.replace(ev, family=family, saddr=la, sport=lp, daddr=ra, dport=rp)


_FD_PATH = re.compile(r"/proc/(\d+)/fd/(\d+)(?:/(.*))?")


def _same_cgroup(paths: HostPaths, pid: int, cgroup_id: int) -> bool:
    try:
        v2 = read_proc_cgroup(paths, pid).v2
    except ProcessGone:
        return False
    return v2 is not None and cgroup_id_of(paths, v2) == cgroup_id


def resolve_path(path: str, pid: int, paths: HostPaths, ppid: int = 0, cgroup_id: int = 0) -> str | None:
    """The absolute path (as the container sees it) of a path a task passed: relative ones
    against /proc/<pid>/cwd, else the cwd of its parent ``ppid`` when that is in the same cgroup
    (the task may be gone: ``rm`` is short-lived, its shell is not); ``/proc/<pid>/fd/<n>[/rest]``
    (from a directory fd) through the fd's link. None when it cannot be resolved any more."""
    if not path:
        return None
    if path.startswith("/proc/"):
        m = _FD_PATH.fullmatch(path)
        if m is None or int(m.group(1)) != pid:
            return path
        target = _read_link(paths.pid_dir(pid) / "fd" / m.group(2))
        if not target.startswith("/"):
            return None
        return posixpath.normpath(posixpath.join(target, m.group(3))) if m.group(3) else target
    if path.startswith("/"):
        return path
    cwd = _read_link(paths.pid_dir(pid) / "cwd")
    if not cwd.startswith("/") and ppid and _same_cgroup(paths, ppid, cgroup_id):
        cwd = _read_link(paths.pid_dir(ppid) / "cwd")
    return posixpath.normpath(posixpath.join(cwd, path)) if cwd.startswith("/") else None


def change_watched(path: str, prefixes: Sequence[str]) -> bool:
    """Is an absolute path one whose unlink/rename is reported (the kernel's rule: below a
    prefix, or a basename ending in ``_history``/``.history``)?"""
    return any(path.startswith(p) for p in prefixes) or path.endswith(("_history", ".history"))


def complete_change(ev: FileChange, paths: HostPaths, prefixes: Sequence[str]) -> FileChange | None:
    """Resolve a change's relative or fd-relative paths; None when an unlink/rename the kernel
    let through only because it was relative turns out to be outside the watched set."""
    path = resolve_path(ev.path, ev.pid, paths, ev.ppid, ev.cgroup_id)
    new = resolve_path(ev.new_path, ev.pid, paths, ev.ppid, ev.cgroup_id) if ev.new_path else ""
    if ev.op != "utimes":
        sides = [p for p in (path, new) if p is not None and p != ""]
        unresolved = path is None or (ev.new_path != "" and new is None)
        if not unresolved and not any(change_watched(p, prefixes) for p in sides):
            return None
    path, new = path or ev.path, new or ev.new_path
    if (path, new) == (ev.path, ev.new_path):
        return ev
    return dataclasses.replace(ev, path=path, new_path=new)
