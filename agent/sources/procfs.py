# SPDX-License-Identifier: Apache-2.0
"""The /proc source: per container, per window, one ``ProcSnapshot`` (process tree, process and
thread counts, open fds, CPU and memory, listening sockets of its netns, suspicious executables).

Every read goes through ``HostPaths`` (``paths.proc``), so tests point it at a /proc tree captured
from a real container. We read the few files we need ourselves rather than through psutil,
whose root is the process-global ``psutil.PROCFS_PATH`` (STYLE.md: pass roots in); the error
model is psutil's: a process that exits mid-read is normal and simply left out.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agent.context import AgentContext
from agent.events import ProcSnapshot
from agent.hostfs import HostPaths
from agent.pipeline import Periodic
from agent.runtime.cgroups import container_pids
from agent.runtime.executables import ExeId, is_runtime_process, runtime_executables
from agent.runtime.model import Container, ContainerRegistry
from agent.runtime.netns import NetnsError
from agent.settings.sources import ProcfsSettings
from agent.sources import procnet, sockdiag
from agent.sources.collectors import StatusCollector
from agent.textsafe import no_surrogates

log = structlog.get_logger("agent.sources.procfs")

CLK_TCK = os.sysconf("SC_CLK_TCK")
RUNTIME_EXES_SECONDS = 60.0
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """What one process contributes to a snapshot."""

    pid: int
    ppid: int
    comm: str
    threads: int
    cpu_seconds: float
    rss_bytes: int
    fds: int
    exe: str  # readlink of /proc/<pid>/exe, "" for kernel threads or when unreadable


def _gone(exc: OSError) -> bool:
    """ENOENT / ESRCH: the process exited while we read it (psutil's NoSuchProcess)."""
    return isinstance(exc, FileNotFoundError | ProcessLookupError) or exc.errno in (2, 3)


def stat_fields(text: str) -> tuple[str, list[str]]:
    """(comm, fields from the state on) of ``/proc/<pid>/stat``: ``fields[0]`` is the state,
    ``fields[1]`` the ppid. ``comm`` is in parentheses and may itself hold spaces and ')': split
    at the *last* ')'."""
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()


def parse_stat(text: str) -> tuple[str, int, float, int, int]:
    """(comm, ppid, cpu seconds, threads, rss bytes) from ``/proc/<pid>/stat``."""
    comm, f = stat_fields(text)
    # f starts at field 3 (state): ppid=4, utime=14, stime=15, num_threads=20, rss=24
    ppid = int(f[1])
    cpu = (int(f[11]) + int(f[12])) / CLK_TCK
    threads = int(f[17])
    rss = int(f[21]) * PAGE_SIZE
    return comm, ppid, cpu, threads, rss


def read_process(paths: HostPaths, pid: int) -> ProcInfo | None:
    """One process's facts, or ``None`` if it is gone."""
    d = paths.pid_dir(pid)
    try:
        # comm is whatever bytes the process chose (prctl PR_SET_NAME): never strict UTF-8.
        comm, ppid, cpu, threads, rss = parse_stat((d / "stat").read_bytes().decode("utf-8", "replace"))
    except OSError as exc:
        if _gone(exc):
            return None
        raise
    except (ValueError, IndexError):
        return None  # a torn read of a dying task
    try:
        fds = len(os.listdir(d / "fd"))  # noqa: PTH208 - per-process scan: counts names without a Path per fd
    except OSError:
        fds = 0  # gone, or a kernel thread
    try:
        # a non-UTF-8 file name: U+FFFD, not surrogates
        exe = no_surrogates(os.readlink(d / "exe"))  # noqa: PTH115 - the link text exactly as the kernel wrote it; Path would normalise it
    except OSError:
        exe = ""
    return ProcInfo(pid, ppid, comm, threads, cpu, rss, fds, exe)


def parse_net_table(text: str, protocol: str, v6: bool) -> list[tuple[str, int, str]]:
    """Listening sockets in a /proc/<pid>/net/{tcp,tcp6,udp,udp6} table: (address, port, proto)."""
    table = protocol + ("6" if v6 else "")
    return [(r.local, r.local_port, table) for r in procnet.parse_table(text, table) if procnet.is_listening(r)]


def listening_sockets(paths: HostPaths, pid: int) -> list[tuple[str, int, str]]:
    """Listening TCP and bound UDP sockets of the network namespace ``pid`` lives in
    (``/proc/<pid>/net/*`` shows the tables of that pid's netns)."""
    rows = procnet.read_tables(paths, pid)
    return sorted({(r.local, r.local_port, r.table) for r in rows if procnet.is_listening(r)})


def exe_verdict(exe: str, lower_dirs: Iterable[Path], mounts: Iterable[str] = ()) -> str:
    """Why an executable is suspicious: ``deleted``, ``memfd``, ``not_in_image`` or ``""``.

    ``not_in_image``: the path exists in none of the image's layers (written after start);
    executables under a bind/volume mount are not judged, and without layers we cannot tell.
    """
    if not exe:
        return ""
    if exe.startswith("/memfd:"):
        return "memfd"
    if exe.endswith(" (deleted)"):
        return "deleted"
    layers = list(lower_dirs)
    if not layers:
        return ""
    for m in mounts:
        if m and (exe == m or exe.startswith(m.rstrip("/") + "/")):
            return ""
    rel = exe.lstrip("/")
    if any(os.path.lexists(layer / rel) for layer in layers):
        return ""
    return "not_in_image"


def snapshot(
    paths: HostPaths,
    c: Container,
    max_processes: int = 2000,
    now: float | None = None,
    listening: Callable[[int], list[tuple[str, int, str]]] | None = None,
    runtime_exes: frozenset[ExeId] = frozenset(),
) -> ProcSnapshot | None:
    """The /proc view of container ``c`` now; ``None`` when none of its processes is left.
    ``listening(pid)`` lists the sockets listening in that pid's netns (default: from
    ``/proc/<pid>/net``). A process running one of ``runtime_exes`` (``runc init`` of a
    ``docker exec``: agent.runtime.executables) is the runtime's and left out."""
    pids = container_pids(paths, c)[:max_processes]
    procs = [
        p
        for p in (read_process(paths, pid) for pid in pids)
        if p is not None and not is_runtime_process(paths, p.pid, p.comm, runtime_exes)
    ]
    if not procs:
        return None
    lower = [paths.host(d) for d in c.details.get("lower_dirs", []) if d]
    mounts = [str(m.get("destination", "")) for m in c.details.get("mounts", [])]
    suspicious = []
    for p in procs:
        why = exe_verdict(p.exe, lower, mounts)
        if why:
            suspicious.append((p.pid, p.exe, why))
    netns_pid = c.init_pid if any(p.pid == c.init_pid for p in procs) else procs[0].pid
    return ProcSnapshot(
        ts=time.time() if now is None else now,
        cgroup_id=c.cgroup_id,
        pid=c.init_pid,
        container=c.ref(),
        processes=len(procs),
        threads=sum(p.threads for p in procs),
        fds=sum(p.fds for p in procs),
        cpu_seconds=round(sum(p.cpu_seconds for p in procs), 3),
        rss_bytes=sum(p.rss_bytes for p in procs),
        listening=tuple(listening(netns_pid) if listening else listening_sockets(paths, netns_pid)),
        suspicious_exes=tuple(suspicious),
        tree=tuple((p.pid, p.ppid, p.comm) for p in procs),
    )


class ProcfsSource:
    """Publishes one ``ProcSnapshot`` per registered container every interval."""

    name = "procfs"

    def __init__(
        self,
        settings: ProcfsSettings,
        paths: HostPaths,
        registry: ContainerRegistry,
        publish: Callable[[ProcSnapshot], Any],
        interval: float,
        runtime_names: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.runtime_names = tuple(runtime_names)
        self._runtime_exes: tuple[float, frozenset[ExeId]] = (-RUNTIME_EXES_SECONDS, frozenset())
        self.paths = paths
        self.registry = registry
        self._publish = publish
        self.interval = interval
        self.counters: Counter[str] = Counter()
        # container id -> (netns inode, sock_diag socket bound to that netns)
        self._diag: dict[str, tuple[int, socket.socket]] = {}
        self._timer = Periodic("procfs-snapshots", interval, self.collect)

    def start(self, ctx: AgentContext | None = None) -> None:
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        for _ino, sock in self._diag.values():
            sock.close()
        self._diag.clear()

    def _listening(self, c: Container, pid: int) -> list[tuple[str, int, str]]:
        """Listening sockets of ``pid``'s netns through sock_diag (one socket per container,
        kept while its netns is the same); from /proc when that is not possible (a captured
        tree, a kernel without inet_diag)."""
        netns = self.paths.pid_netns(pid)
        try:
            ino = netns.stat().st_ino
            cached = self._diag.get(c.id)
            if cached is None or cached[0] != ino:
                if cached is not None:
                    cached[1].close()
                    del self._diag[c.id]
                self._diag[c.id] = (ino, sockdiag.open_diag_socket(netns))
            return sockdiag.listening(self._diag[c.id][1])
        except (OSError, NetnsError):
            dropped = self._diag.pop(c.id, None)
            if dropped is not None:
                dropped[1].close()
            self.counters["listening_from_proc"] += 1
            return listening_sockets(self.paths, pid)

    def status(self) -> Mapping[str, Any]:
        return {"interval_seconds": self.interval, **self.counters}

    def runtime_exes(self) -> frozenset[ExeId]:
        """The runtime's executables on the host, looked up again every RUNTIME_EXES_SECONDS
        (a runtime upgrade replaces the file)."""
        at, ids = self._runtime_exes
        now = time.monotonic()
        if now - at >= RUNTIME_EXES_SECONDS:
            ids = runtime_executables(self.paths, self.runtime_names)
            self._runtime_exes = (now, ids)
        return ids

    def collect(self) -> list[ProcSnapshot]:
        """Snapshot every registered container now and publish the snapshots."""
        out = []
        runtime_exes = self.runtime_exes()
        containers = self.registry.all()
        for cid in set(self._diag) - {c.id for c in containers}:
            self._diag.pop(cid)[1].close()
        for c in containers:
            try:
                snap = snapshot(
                    self.paths,
                    c,
                    self.settings.max_processes_per_container,
                    listening=functools.partial(self._listening, c),
                    runtime_exes=runtime_exes,
                )
            except Exception as exc:  # one odd container must not stop the others
                self.counters["errors"] += 1
                log.warning("procfs_snapshot_failed", container_id=c.short_id, error=repr(exc))
                continue
            if snap is None:
                self.counters["container_gone"] += 1
                continue
            self.counters["snapshots"] += 1
            out.append(snap)
            self._publish(snap)
        return out


def build(ctx: AgentContext) -> ProcfsSource | None:
    """The /proc source (``None`` when ``procfs.enabled`` is false)."""
    settings = ctx.config.procfs
    if not settings.enabled:
        return None
    interval = settings.interval_seconds or ctx.config.behavior.window_seconds
    src = ProcfsSource(settings, ctx.paths, ctx.registry, ctx.publish, interval, ctx.config.runtime.executables)
    ctx.control("procfs.status", lambda _params: dict(src.status()))
    ctx.metrics.register(
        StatusCollector(
            "riskguard_procfs",
            src.status,
            [("snapshots", "Container /proc snapshots taken"), ("errors", "Snapshots that failed")],
        )
    )
    return src
