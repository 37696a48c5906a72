# SPDX-License-Identifier: Apache-2.0
"""cgroup facts of processes and containers: /proc/<pid>/cgroup, cgroup ids, runtime patterns,
and the one walker of a cgroup's pids (v1 or v2).

All reads go through ``HostPaths``. A pid that exits mid-read is normal: functions return empty
values (``ProcessGone`` is raised only where the caller asked for a specific process).
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.hostfs import HostPaths

if TYPE_CHECKING:
    from agent.runtime.model import Container

# v1 controllers whose hierarchy a container's pids are read from when it has no v2 cgroup.
V1_PID_CONTROLLERS = ("pids", "memory", "cpu", "cpuacct", "freezer", "systemd")


class ProcessGone(Exception):
    """The process exited (or was never there) while we read it."""


@dataclass(frozen=True, slots=True)
class ProcCgroups:
    """A process's cgroup membership: v1 per controller, and its v2 path."""

    v1: dict[str, str]
    v2: str | None  # None: the process is in no v2 hierarchy (pure v1 host)


def parse_proc_cgroup(text: str) -> ProcCgroups:
    """Parse ``/proc/<pid>/cgroup`` (``id:controllers:path`` lines)."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
            continue
        for ctrl in controllers.split(","):
            if ctrl:
                v1[ctrl.removeprefix("name=")] = path
    return ProcCgroups(v1=v1, v2=v2)


def _rebase(path: str, root: str) -> str:
    return posixpath.normpath("/" + root.strip("/") + "/" + path.lstrip("/"))


@functools.cache
def own_cgroupns_root(paths: HostPaths) -> ProcCgroups | None:
    """The host's path of the agent's cgroup-namespace root in each hierarchy, when the agent has
    a namespace of its own (a pod's: Docker and containerd give one by default on cgroup-v2
    nodes); None in the host's. The kernel prints /proc/<pid>/cgroup relative to the reader's
    namespace (another pod's container as ``/../../kubepods/…``): the agent's own cgroup is read
    once from a thread that joined the host's namespace, less the part its own namespace shows."""
    from agent.runtime.netns import CLONE_NEWCGROUP, NetnsError, enter_ns, host_cgroupns

    host_ns = host_cgroupns(paths)
    if host_ns is None:
        return None
    out: list[str] = []

    def read() -> None:
        try:
            enter_ns(host_ns, CLONE_NEWCGROUP)  # this thread only; it ends right after
            out.append((paths.proc / "self" / "cgroup").read_text())
        except (OSError, NetnsError):  # no CAP_SYS_ADMIN: paths stay as the kernel prints them
            pass

    t = threading.Thread(target=read, name="cgroupns", daemon=True)
    t.start()
    t.join(5)
    try:
        own = parse_proc_cgroup((paths.proc / "self" / "cgroup").read_text())
    except OSError:
        return None
    if not out:
        return None
    absolute = parse_proc_cgroup(out[0])

    def root(abs_path: str, own_path: str) -> str:
        rel = own_path.strip("/")
        base = abs_path.rstrip("/")
        return (base[: -len(rel) - 1] if rel and base.endswith("/" + rel) else base) or "/"

    v1 = {c: root(absolute.v1[c], own.v1.get(c, "/")) for c in absolute.v1}
    v2 = root(absolute.v2, own.v2 or "/") if absolute.v2 is not None else None
    return ProcCgroups(v1=v1, v2=v2)


def read_proc_cgroup(paths: HostPaths, pid: int) -> ProcCgroups:
    """``/proc/<pid>/cgroup`` with host paths, also when the agent is in a cgroup namespace of
    its own (``own_cgroupns_root``)."""
    try:
        cg = parse_proc_cgroup((paths.pid_dir(pid) / "cgroup").read_text())
    except (FileNotFoundError, ProcessLookupError) as exc:
        raise ProcessGone(pid) from exc
    except OSError as exc:  # ESRCH while reading a dying task
        raise ProcessGone(pid) from exc
    roots = own_cgroupns_root(paths)
    if roots is None:
        return cg
    return ProcCgroups(
        v1={c: _rebase(p, roots.v1.get(c, "/")) for c, p in cg.v1.items()},
        v2=_rebase(cg.v2, roots.v2 or "/") if cg.v2 is not None else None,
    )


def cgroup_id_of(paths: HostPaths, v2_path: str) -> int:
    """The cgroup id of a v2 cgroup: the inode of its directory (kernfs node id), which is what
    ``bpf_get_current_cgroup_id()`` returns. 0 when the directory does not exist."""
    try:
        return (paths.cgroup_v2 / v2_path.lstrip("/")).stat().st_ino
    except OSError:
        return 0


# Container cgroup path patterns of the common runtimes (cgroupfs and systemd drivers).
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("docker", re.compile(r"/docker/(?P<id>[0-9a-f]{64})(?:/|$)")),
    ("docker", re.compile(r"/docker-(?P<id>[0-9a-f]{64})\.scope(?:/|$)")),
    ("cri-o", re.compile(r"/crio-(?:conmon-)?(?P<id>[0-9a-f]{64})\.scope(?:/|$)")),
    ("cri-o", re.compile(r"/crio/(?P<id>[0-9a-f]{64})(?:/|$)")),
    ("containerd", re.compile(r"/cri-containerd-(?P<id>[0-9a-f]{64})\.scope(?:/|$)")),
    ("containerd", re.compile(r"/kubepods[^:]*/pod[0-9a-f_-]+/(?P<id>[0-9a-f]{64})(?:/|$)")),
    ("podman", re.compile(r"/libpod-(?:conmon-)?(?P<id>[0-9a-f]{64})\.scope(?:/|$)")),
    ("podman", re.compile(r"/machine\.slice/libpod-(?P<id>[0-9a-f]{64})(?:/|$)")),
)


def match_container_cgroup(path: str) -> tuple[str, str, str] | None:
    """Recognise a container's cgroup path; return (runtime, container id, container cgroup path).

    The returned path is the container's own cgroup (a process may sit in a child of it).
    """
    for runtime, pattern in _PATTERNS:
        m = pattern.search(path)
        if m:
            return runtime, m.group("id"), path[: m.end()].rstrip("/")
    return None


def container_cgroups(paths: HostPaths, pid: int) -> tuple[dict[str, str], str]:
    """(v1 controller -> path, v2 path) for a container's init pid, trimmed to the container's own
    cgroup. Raises ``ProcessGone``."""
    cg = read_proc_cgroup(paths, pid)
    v1 = {}
    for ctrl, p in cg.v1.items():
        m = match_container_cgroup(p)
        v1[ctrl] = m[2] if m else p
    v2 = ""
    if cg.v2 is not None and cg.v2 not in ("", "/"):
        m = match_container_cgroup(cg.v2)
        v2 = m[2] if m else cg.v2
    return v1, v2


def cgroup_dir_v1(paths: HostPaths, controller: str, path: str) -> Path:
    return paths.cgroup_v1(controller) / path.lstrip("/")


def cgroup_dir_v2(paths: HostPaths, path: str) -> Path:
    return paths.cgroup_v2 / path.lstrip("/")


def cgroup_pids(cgdir: Path) -> set[int]:
    """Pids in a cgroup directory and every descendant: ``cgroup.procs`` (v1 and v2), or
    ``tasks`` in a v1 hierarchy without it. Empty when the directory is gone; a child cgroup
    removed during the walk is skipped. ``os.walk``: pathlib's ``**`` glob costs milliseconds."""
    pids: set[int] = set()
    for top, _dirs, files in os.walk(cgdir):
        name = "cgroup.procs" if "cgroup.procs" in files else "tasks" if "tasks" in files else ""
        if not name:
            continue
        try:
            text = (Path(top) / name).read_text()
        except OSError:
            continue
        pids.update(int(x) for x in text.split() if x.isdigit())
    return pids


def container_pids(paths: HostPaths, c: Container, v1_controllers: tuple[str, ...] = V1_PID_CONTROLLERS) -> list[int]:
    """Pids in the container's cgroup and its children, sorted: from the first of its cgroups
    that exists (v2, then the v1 controllers in order; an existing empty cgroup gives []); the
    init pid only when none can be read."""
    roots: list[Path] = []
    if c.cgroup_v2.strip("/"):
        roots.append(cgroup_dir_v2(paths, c.cgroup_v2))
    roots.extend(
        cgroup_dir_v1(paths, ctrl, c.cgroup_v1[ctrl]) for ctrl in v1_controllers if c.cgroup_v1.get(ctrl, "").strip("/")
    )
    for root in roots:
        if (root / "cgroup.procs").exists() or (root / "tasks").exists():
            return sorted(cgroup_pids(root))
    return [c.init_pid] if c.init_pid > 0 else []
