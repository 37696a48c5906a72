# SPDX-License-Identifier: Apache-2.0
"""Normalised, frozen event types. Every event carries the container it belongs to.

Sources produce raw records; decoders turn them into these values; the dispatcher fills in
``container`` from ``cgroup_id`` (or ``pid``) before analysers see them. Timestamps are Unix
seconds (float, wall clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """The identity of a container as findings and events name it."""

    id: str
    name: str
    image: str
    image_id: str = ""
    runtime: str = "docker"
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all events: when, which cgroup, which container (filled in by enrichment)."""

    ts: float
    cgroup_id: int = 0
    pid: int = 0
    container: ContainerRef | None = None

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessExec(Event):
    """A successful execve (``sched_process_exec``, audit EXECVE or a /proc scan)."""

    ppid: int
    uid: int
    comm: str
    filename: str
    argv: tuple[str, ...] = ()
    parent_comm: str = ""
    # Where the executable lives: "" (on disk), "memfd", "deleted"; filled when known.
    exe_origin: str = ""
    # Targets of fds 0, 1, 2 read from /proc at exec time when known ("socket:[123]",
    # "/dev/pts/0", "pipe:[9]"): a shell whose stdio is a socket is a reverse-shell shape.
    stdio: tuple[str, ...] = ()
    # The executables the kernel saw (task->mm->exe_file), "" / 0 when not read: the new
    # program's basename (a script's interpreter), and the parent's basename, inode and st_dev
    # (a fork-only parent that exited before /proc could be read is still known by them).
    exe_name: str = ""
    # The first arguments as the new program sees them (read in the kernel): for a script the
    # kernel's rewrite "interpreter [arg] script …"; () when not read.
    exec_argv: tuple[str, ...] = ()
    parent_exe: str = ""
    parent_exe_ino: int = 0
    parent_exe_dev: int = 0
    source: str = "ebpf"


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownActivity(Event):
    """Execs and connects of one cgroup that its image already knew, counted in the kernel
    instead of sent one by one (since the previous one): the window folds them like the events
    they stand for (``agent.sources.ebpf.known``)."""

    execs: int = 0
    connects: int = 0
    binaries: frozenset[str] = frozenset()
    peers: frozenset[str] = frozenset()
    dst_ports: frozenset[int] = frozenset()
    source: str = "ebpf"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessExit(Event):
    comm: str
    exit_code: int = 0
    source: str = "ebpf"


@dataclass(frozen=True, slots=True, kw_only=True)
class NetConnect(Event):
    """A socket-level network event: ``connect``, ``accept``, ``listen`` or a TCP state change."""

    op: str  # connect | accept | listen | state
    comm: str
    family: int  # socket.AF_INET / AF_INET6
    protocol: str  # tcp | udp
    saddr: str
    sport: int
    daddr: str
    dport: int
    state: str = ""  # TCP state name after the change, for op == "state"
    old_state: str = ""
    fd: int = -1
    # For a shell whose stdio is this socket (reverse-shell shape), filled by enrichment.
    source: str = "ebpf"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileOpen(Event):
    """An open of a path in the kernel-filtered sensitive set."""

    comm: str
    path: str
    flags: int
    write: bool
    ret: int = 0
    # The parent's pid (0 unknown), as on ``FileChange``: a shell's fork that opens a file for
    # a redirect (``echo x > /etc/app.conf``) may be gone before /proc can be read.
    ppid: int = 0
    source: str = "ebpf"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileChange(Event):
    """A change to a file's name or times that anti-forensics uses: ``unlink`` (unlinkat),
    ``rename`` (renameat2; ``new_path`` set) or ``utimes`` (utimensat; ``explicit_times`` True when
    the caller passed times other than "now", as ``touch -d``/``touch -r`` do). Paths as the
    caller gave them, resolved against its cwd when relative and the source can."""

    op: str  # unlink | rename | utimes
    comm: str
    path: str
    new_path: str = ""
    explicit_times: bool = False
    ret: int = 0
    # The parent's pid (0 unknown): the only lineage of a process that never exec'd (busybox
    # ash runs rm/mv/touch in its fork without an exec) and is gone before /proc can be read.
    ppid: int = 0
    source: str = "ebpf"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivilegeEvent(Event):
    """A privilege-changing or namespace-escape syscall (setuid family, capset, ptrace, mount,
    unshare/setns, init_module/finit_module, bpf)."""

    comm: str
    syscall: str
    args: tuple[int, ...] = ()
    ret: int = 0
    uid: int = 0
    source: str = "ebpf"


@dataclass(frozen=True, slots=True, kw_only=True)
class SyscallWindow(Event):
    """In-kernel syscall accounting of one cgroup over one window (x86_64 numbers)."""

    start: float
    end: float
    counts: Mapping[int, int]
    transitions: Mapping[tuple[int, int], int]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """One raw audit record (one line of audit.log / one netlink message)."""

    type: str
    serial: int
    ts: float
    fields: Mapping[str, str]
    raw: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent(Event):
    """Records of one audit serial assembled into one event."""

    serial: int
    record_types: tuple[str, ...]
    syscall: str = ""
    success: bool | None = None
    exit: int | None = None
    exe: str = ""
    comm: str = ""
    ppid: int = 0
    uid: int = -1
    auid: int = -1
    key: str = ""
    argv: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    cwd: str = ""
    proctitle: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEntry(Event):
    """One structured container log line."""

    line: str
    stream: str = "stdout"
    template_id: int = 0
    template: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    pattern: str = ""  # the grok pattern that matched, "" if none


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowWindow(Event):
    """Per-container traffic features over one window, from packet capture."""

    start: float
    end: float
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    peers: frozenset[str] = frozenset()
    dst_ports: frozenset[int] = frozenset()
    syn_sent: int = 0
    syn_unanswered: int = 0
    failed_connects: int = 0
    dns_names: frozenset[str] = frozenset()
    malformed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketsDenied(Event):
    """Packets that reached the deny rule of a container's least-privilege table over
    [start, end): dropped in enforce mode, only counted in observe mode (``enforced`` False)."""

    start: float
    end: float
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    enforced: bool = False
    source: str = "netpolicy"

    @property
    def packets(self) -> int:
        return self.packets_in + self.packets_out


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcSnapshot(Event):
    """Per-container /proc view at the end of a window."""

    processes: int
    threads: int
    fds: int
    cpu_seconds: float
    rss_bytes: int
    listening: tuple[tuple[str, int, str], ...] = ()  # (address, port, protocol)
    suspicious_exes: tuple[tuple[int, str, str], ...] = ()  # (pid, exe, why: deleted|memfd|not_in_image)
    tree: tuple[tuple[int, int, str], ...] = ()  # (pid, ppid, comm)


@dataclass(frozen=True, slots=True, kw_only=True)
class BehaviorWindow(Event):
    """Everything observed of one container over one window: what behaviour analysis consumes.

    ``container`` is always set. Counters are totals over [start, end).
    """

    start: float
    end: float
    syscalls: Mapping[int, int] = field(default_factory=dict)
    transitions: Mapping[tuple[int, int], int] = field(default_factory=dict)
    execs: int = 0
    new_binaries: frozenset[str] = frozenset()
    binaries: frozenset[str] = frozenset()
    connects: int = 0
    accepts: int = 0
    listens: int = 0
    sensitive_opens: int = 0
    privilege_events: int = 0
    peers: frozenset[str] = frozenset()
    dst_ports: frozenset[int] = frozenset()
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    syn_unanswered: int = 0
    dns_names: frozenset[str] = frozenset()
    cpu_seconds: float = 0.0
    rss_bytes: int = 0
    fds: int = 0
    processes: int = 0
    threads: int = 0
    denied_packets: int = 0
    log_lines: int = 0
    sources: frozenset[str] = frozenset()  # which sources contributed


ALL_EVENT_TYPES: tuple[type[Event], ...] = (
    ProcessExec,
    ProcessExit,
    NetConnect,
    FileOpen,
    FileChange,
    PrivilegeEvent,
    SyscallWindow,
    AuditEvent,
    LogEntry,
    FlowWindow,
    PacketsDenied,
    ProcSnapshot,
    BehaviorWindow,
)
