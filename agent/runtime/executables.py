# SPDX-License-Identifier: Apache-2.0
"""The container runtime's own executables, and whether a process in a container runs one.

`docker exec`, every HEALTHCHECK and `kubectl exec` start ``runc init`` inside the container's
cgroup: for a few milliseconds it drops capabilities, enters namespaces and starts Go threads
(~12 MiB, 5-8 threads, hundreds of ``prctl``) before it execs the command. That is the runtime's
work, not the container's, so the behaviour sources leave it out: the eBPF syscall counts (in the
kernel: ``probes/task.h``, ``rg_runtime_exe``) and the /proc snapshot (``procfs.snapshot``).

A process is the runtime's when its executable *is* one of the runtime's files on the host (same
inode and device as ``runtime.executables`` resolves to), never by its name: a container can
call a process ``runc:[2:INIT]`` but cannot make it run the host's runc.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from agent.hostfs import HostPaths

# Where a runtime named without a path is looked for on the host (Debian: /usr/sbin/runc).
HOST_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# comm prefixes of runc's set-up stages and other runtimes' (the cheap first test in /proc).
SETUP_COMMS = ("runc", "crun", "youki", "runsc")

ExeId = tuple[int, int]  # (st_dev as stat reports it, st_ino)


def runtime_executables(paths: HostPaths, names: Iterable[str]) -> frozenset[ExeId]:
    """(device, inode) of every host file ``names`` resolve to (symlinks followed), seen under
    ``host.root`` or, where that does not hold the host's binaries (a DaemonSet mounts only
    /proc, /sys, sockets … below /host), through the root of the host's pid 1."""
    ids: set[ExeId] = set()
    init_root = paths.pid_root(1)
    for name in names:
        candidates = [name] if name.startswith("/") else [f"{d}/{name}" for d in HOST_DIRS]
        for path in candidates:
            for where in (paths.host(path), init_root / path.lstrip("/")):
                try:
                    st = where.stat()
                except OSError:
                    continue
                ids.add((st.st_dev, st.st_ino))
                break
    return frozenset(ids)


def kernel_dev(st_dev: int) -> int:
    """``st_dev`` as the kernel's ``super_block.s_dev`` holds it (major << 20 | minor)."""
    return os.major(st_dev) << 20 | os.minor(st_dev)


def is_runtime_process(paths: HostPaths, pid: int, comm: str, ids: frozenset[ExeId]) -> bool:
    """``pid`` (comm ``comm``) runs one of the runtime's executables ``ids``. Only a comm of a
    runtime's set-up stage is checked further (one stat of ``/proc/<pid>/exe``)."""
    if not ids or not comm.startswith(SETUP_COMMS):
        return False
    try:
        st = (paths.pid_dir(pid) / "exe").stat()
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in ids
