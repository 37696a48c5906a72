# SPDX-License-Identifier: Apache-2.0
"""The fixed, named feature vector of one ``BehaviorWindow``.

Every model in this package consumes exactly ``FEATURE_NAMES`` in this order, so every score can
be explained feature by feature. Values are in human units (fractions, per-second rates, counts,
bytes); ``transform`` maps them to the space the models work in (log1p of rates scaled to the
model's reference window, fractions unchanged). Bump ``FEATURE_VERSION`` whenever the list or a
definition changes: stored models of another version are discarded and relearned.

Feature groups:

- ``sc_<group>``: fraction of the window's syscalls in one syscall group (``SYSCALL_GROUPS``,
  x86_64 numbering; everything else is ``sc_other``), the normalised syscall histogram.
- ``syscall_rate``: syscalls per second.
- ``tr_distinct``: distinct syscall transitions (pairs); ``tr_entropy``: Shannon entropy of the
  transition distribution divided by log2(distinct) (0..1); ``tr_self``: fraction of transitions
  that repeat the same syscall; ``tr_into_sensitive``: transitions per second into a sensitive
  syscall (exec, ptrace, mount, setns …); ``tr_exec_after_fd``: transitions per second into
  execve/execveat from accept/dup2/dup3/connect/socket (a reverse-shell or injected-exec shape).
- ``*_rate``: event counts per second (execs, connects, accepts, listens, sensitive opens,
  privilege events, bytes and packets in/out, unanswered SYNs, denied packets, log lines).
- ``new_binaries``, ``binaries``, ``peers``, ``dst_ports``, ``dns_names``: distinct counts.
- ``cpu_cores``: CPU seconds per second; ``rss_mib``, ``fds``, ``processes``, ``threads``: the
  /proc view at the end of the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from agent.events import BehaviorWindow
from agent.syscall_table import X86_64

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

FEATURE_VERSION = 1

# Syscall groups by x86_64 name; numbers are resolved from the table below.
SYSCALL_GROUPS: dict[str, tuple[str, ...]] = {
    "read": ("read", "pread64", "readv", "preadv", "preadv2"),
    "write": ("write", "pwrite64", "writev", "pwritev", "pwritev2", "sendfile", "splice", "tee"),
    "open": ("open", "openat", "openat2", "creat", "open_by_handle_at"),
    "close": ("close", "close_range"),
    "stat": (
        "stat", "fstat", "lstat", "newfstatat", "statx", "access", "faccessat", "faccessat2",
        "readlink", "readlinkat", "getdents", "getdents64", "lseek", "statfs", "fstatfs",
        "getcwd", "chdir", "fchdir",
    ),
    "fs_modify": (
        "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir",
        "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "link", "linkat",
        "symlink", "symlinkat", "truncate", "ftruncate", "mknod", "mknodat", "utimensat",
    ),
    "net_setup": (
        "socket", "socketpair", "bind", "listen", "setsockopt", "getsockopt", "getsockname",
        "getpeername", "shutdown",
    ),
    "net_accept": ("accept", "accept4"),
    "net_connect": ("connect",),
    "net_io": ("sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg"),
    "poll": (
        "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2",
        "epoll_ctl", "epoll_create", "epoll_create1", "eventfd", "eventfd2",
    ),
    "fd": ("dup", "dup2", "dup3", "fcntl", "pipe", "pipe2", "ioctl", "flock"),
    "exec": ("execve", "execveat"),
    "fork": ("clone", "clone3", "fork", "vfork"),
    "exit_wait": ("exit", "exit_group", "wait4", "waitid"),
    "memory": ("mmap", "munmap", "mprotect", "brk", "mremap", "madvise", "mlock", "munlock"),
    "signal": (
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
        "kill", "tkill", "tgkill", "sigaltstack", "pause",
    ),
    "time": (
        "nanosleep", "clock_nanosleep", "clock_gettime", "gettimeofday", "time", "alarm",
        "setitimer", "getitimer", "timer_create", "timer_settime", "timerfd_create",
        "timerfd_settime", "sched_yield",
    ),
    "identity": (
        "getuid", "geteuid", "getgid", "getegid", "getpid", "getppid", "gettid", "getpgrp",
        "getpgid", "getsid", "getgroups", "getresuid", "getresgid", "uname", "sysinfo",
        "getrlimit", "prlimit64", "getrusage", "set_tid_address", "set_robust_list", "futex",
        "arch_prctl", "rseq", "getrandom",
    ),
    "privilege": (
        "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
        "setfsuid", "setfsgid", "capset", "capget", "prctl", "setpgid", "setsid",
    ),
    "namespace": ("mount", "umount2", "setns", "unshare", "pivot_root", "chroot", "move_mount",
                  "fsopen", "fsmount", "open_tree"),
    "debug": ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd"),
    "kernel": ("init_module", "finit_module", "delete_module", "bpf", "perf_event_open",
               "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "iopl", "ioperm"),
    "memfd": ("memfd_create", "userfaultfd"),
}  # fmt: skip

# Syscalls whose appearance in a new chain is itself suspicious (exec, debugging, namespace or
# kernel manipulation).
SENSITIVE_SYSCALLS: frozenset[str] = frozenset(
    SYSCALL_GROUPS["exec"]
    + SYSCALL_GROUPS["namespace"]
    + SYSCALL_GROUPS["debug"]
    + SYSCALL_GROUPS["kernel"]
    + SYSCALL_GROUPS["memfd"]
    + ("setuid", "setresuid", "setreuid", "capset")
)
# Predecessors that turn a following execve into a reverse-shell / injected-exec shape.
FD_SHAPING_SYSCALLS: frozenset[str] = frozenset(("accept", "accept4", "dup", "dup2", "dup3", "connect", "socket"))

_NAME_TO_NR = {name: nr for nr, name in X86_64.items()}
_GROUP_OF_NR: dict[int, int] = {}
for _i, (_g, _names) in enumerate(SYSCALL_GROUPS.items()):
    for _n in _names:
        if _n in _NAME_TO_NR:
            _GROUP_OF_NR[_NAME_TO_NR[_n]] = _i
_OTHER = len(SYSCALL_GROUPS)
SENSITIVE_NRS: frozenset[int] = frozenset(_NAME_TO_NR[n] for n in SENSITIVE_SYSCALLS if n in _NAME_TO_NR)
EXEC_NRS: frozenset[int] = frozenset(_NAME_TO_NR[n] for n in ("execve", "execveat"))
FD_SHAPING_NRS: frozenset[int] = frozenset(_NAME_TO_NR[n] for n in FD_SHAPING_SYSCALLS)

# (name, kind): kind "fraction" stays as is; "rate" and "count" go through log1p in
# ``transform`` (rates first scaled to events per reference window).
_FEATURES: list[tuple[str, str]] = (
    [(f"sc_{g}", "fraction") for g in SYSCALL_GROUPS]
    + [("sc_other", "fraction")]
    + [
        ("syscall_rate", "rate"),
        ("tr_distinct", "count"),
        ("tr_entropy", "fraction"),
        ("tr_self", "fraction"),
        ("tr_into_sensitive", "rate"),
        ("tr_exec_after_fd", "rate"),
        ("exec_rate", "rate"),
        ("new_binaries", "count"),
        ("binaries", "count"),
        ("connect_rate", "rate"),
        ("accept_rate", "rate"),
        ("listen_rate", "rate"),
        ("sensitive_open_rate", "rate"),
        ("privilege_event_rate", "rate"),
        ("peers", "count"),
        ("dst_ports", "count"),
        ("dns_names", "count"),
        ("bytes_in_rate", "rate"),
        ("bytes_out_rate", "rate"),
        ("packets_in_rate", "rate"),
        ("packets_out_rate", "rate"),
        ("syn_unanswered_rate", "rate"),
        ("denied_packet_rate", "rate"),
        ("log_line_rate", "rate"),
        ("cpu_cores", "fraction"),
        ("rss_mib", "count"),
        ("fds", "count"),
        ("processes", "count"),
        ("threads", "count"),
    ]
)
FEATURE_NAMES: tuple[str, ...] = tuple(n for n, _ in _FEATURES)
FEATURE_KINDS: tuple[str, ...] = tuple(k for _, k in _FEATURES)
N_FEATURES = len(FEATURE_NAMES)
FEATURE_INDEX: dict[str, int] = {n: i for i, n in enumerate(FEATURE_NAMES)}

# The smallest spread (in transformed units) a feature's normal range is given, so a feature
# that never moved during learning still has a finite robust z-score: a single new event in a
# window (log1p(1) = 0.69) is then ~14 z for rates and counts, 2 percentage points ~1 z for
# fractions.
SCALE_FLOOR: tuple[float, ...] = tuple(0.05 if k != "fraction" else 0.02 for k in FEATURE_KINDS)


def _entropy(counts: Iterable[int]) -> tuple[float, int]:
    values = [c for c in counts if c > 0]
    total = sum(values)
    if total <= 0 or len(values) < 2:
        return 0.0, len(values)
    h = -sum((c / total) * math.log2(c / total) for c in values)
    return h / math.log2(len(values)), len(values)


def window_vector(w: BehaviorWindow) -> list[float]:
    """The feature values of one window, in the order of ``FEATURE_NAMES`` (human units)."""
    duration = max(w.end - w.start, 1e-3)
    groups = [0.0] * (len(SYSCALL_GROUPS) + 1)
    total = 0
    for nr, count in w.syscalls.items():
        if count <= 0:
            continue
        groups[_GROUP_OF_NR.get(int(nr), _OTHER)] += count
        total += count
    if total:
        groups = [g / total for g in groups]
    entropy, distinct = _entropy(w.transitions.values())
    tr_total = sum(c for c in w.transitions.values() if c > 0)
    tr_self = sum(c for (a, b), c in w.transitions.items() if a == b and c > 0)
    into_sensitive = sum(c for (_a, b), c in w.transitions.items() if b in SENSITIVE_NRS and c > 0)
    exec_after_fd = sum(c for (a, b), c in w.transitions.items() if b in EXEC_NRS and a in FD_SHAPING_NRS and c > 0)
    return [
        *groups,
        total / duration,
        float(distinct),
        entropy,
        tr_self / tr_total if tr_total else 0.0,
        into_sensitive / duration,
        exec_after_fd / duration,
        w.execs / duration,
        float(len(w.new_binaries)),
        float(len(w.binaries)),
        w.connects / duration,
        w.accepts / duration,
        w.listens / duration,
        w.sensitive_opens / duration,
        w.privilege_events / duration,
        float(len(w.peers)),
        float(len(w.dst_ports)),
        float(len(w.dns_names)),
        w.bytes_in / duration,
        w.bytes_out / duration,
        w.packets_in / duration,
        w.packets_out / duration,
        w.syn_unanswered / duration,
        w.denied_packets / duration,
        w.log_lines / duration,
        w.cpu_seconds / duration,
        w.rss_bytes / (1024.0 * 1024.0),
        float(w.fds),
        float(w.processes),
        float(w.threads),
    ]


def feature_matrix(windows: Sequence[BehaviorWindow]) -> npt.NDArray[np.float64]:
    """Stack ``window_vector`` of each window into an (n, N_FEATURES) float64 array."""
    import numpy as np

    if not windows:
        return np.zeros((0, N_FEATURES))
    return np.asarray([window_vector(w) for w in windows], dtype=np.float64)


def transform(x: npt.NDArray[np.float64], ref_seconds: float) -> npt.NDArray[np.float64]:
    """Map human-unit features to model space: log1p of rates per ``ref_seconds`` and of counts."""
    import numpy as np

    out = np.array(x, dtype=np.float64, copy=True)
    out = np.nan_to_num(out, nan=0.0, posinf=1e12, neginf=0.0)
    np.maximum(out, 0.0, out=out)
    rate_cols = _columns("rate")
    count_cols = _columns("count")
    out[..., rate_cols] = np.log1p(out[..., rate_cols] * ref_seconds)
    out[..., count_cols] = np.log1p(out[..., count_cols])
    return out


def _columns(kind: str) -> list[int]:
    return [i for i, k in enumerate(FEATURE_KINDS) if k == kind]


def describe() -> list[Mapping[str, str]]:
    """The feature list as documentation rows (name, kind)."""
    return [{"name": n, "kind": k} for n, k in _FEATURES]
