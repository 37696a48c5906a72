# SPDX-License-Identifier: Apache-2.0
"""The probes' program text: which probes exist, their load-time constants, the syscall routing
table, and the one assembled program (``#define`` lines, then the probes with their local
headers inlined once, then the raw-syscall dispatcher). Pure: no kernel, no bcc."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.decoders.ebpf import PRIV_SYSCALLS
from agent.resources import data_dir
from agent.settings.sources import EbpfSettings
from agent.syscall_table import syscall_number

PROBES_DIR = data_dir("probes")

# Event probes and the output map each one declares (RG_OUTPUT in probes/<name>.bpf.c).
OUTPUTS: Mapping[str, str] = {
    "exec": "rg_exec_events",
    "net": "rg_net_events",
    "files": "rg_open_events",
    "priv": "rg_priv_events",
}
# Every probe hooks syscalls through the two raw syscall tracepoints of probes/sysdispatch.h
# (appended after them); rg_sys_kind (probes/task.h) routes x86_64 syscall numbers to the
# loaded probes' handlers. RG_KIND_* values (probes/task.h): files 1-3, 9-16 and 19, priv 4,
# exec 5-6 and 17-18, net 7-8.
SYSDISPATCH = "sysdispatch.h"
_KINDS_BY_NAME: Mapping[str, Mapping[str, int]] = {
    "files": {
        "open": 1,
        "openat": 2,
        "openat2": 3,
        "unlink": 9,
        "unlinkat": 10,
        "rename": 11,
        "renameat": 12,
        "renameat2": 12,
        "utimensat": 13,
        "utimes": 14,
        "futimesat": 15,
        "utime": 16,
        "connect": 19,  # AF_UNIX connects to a runtime socket: reported, and stopped where enforced
    },
    "priv": dict.fromkeys(PRIV_SYSCALLS, 4),
    "exec": {"execve": 5, "execveat": 6, "exit": 17, "exit_group": 18},
    "net": {"listen": 7, "accept": 8, "accept4": 8},
}
SYSCALL_KINDS: Mapping[str, Mapping[int, int]] = {
    probe: {syscall_number(name): kind for name, kind in kinds.items()} for probe, kinds in _KINDS_BY_NAME.items()
}
CONF_ALL, CONF_RATE, CONF_GEN = 0, 1, 2
# The syscall transition cells (probes/syscalls.h): count slots (monitored cgroups that get one),
# groups per slot and generation (1 << TR_GROUP_BITS, at least 64), cells per group.
TR_SLOTS, TR_GROUP_BITS, TR_WAYS = 64, 7, 8
CONF_FILTER = 4  # the filter's generation (probes/common.h): + 1 after every change of rg_cgroups
MATCH_ANY, MATCH_WRITE = 1, 2
# rg_sensitive bits of the in-kernel response (probes/files.h): an open / an AF_UNIX connect of
# the path stops the task where the cgroup enforces the rule.
MATCH_STOP_OPEN, MATCH_STOP_CONNECT = 32, 64
# An AF_UNIX connect to the path is reported (NetConnect), in every mode; an open with O_TRUNC
# below the prefix (a log being cleared) is reported (probes/files.h).
MATCH_CONNECT, MATCH_TRUNC = 128, 256
# The must-act ring buffer (probes/act.h), read before every other buffer.
ACT_OUTPUT = "rg_act_events"
# Syscall numbers the priv probe's namespace-escape rule compares with (probes/priv.bpf.c).
_NS_SYSCALLS = {"RG_NR_UNSHARE": "unshare", "RG_NR_SETNS": "setns", "RG_NR_MOUNT": "mount"}
PREFIX_LEN = 64  # RG_PREFIX_LEN in probes/files.h
_INCLUDE = re.compile(r'^#include "([A-Za-z0-9_.-]+)"\s*$', re.M)


def available_probes(probes_dir: Path = PROBES_DIR) -> list[str]:
    """Names of the probes shipped in ``probes_dir`` (``<name>.bpf.c``)."""
    return sorted(p.name.removesuffix(".bpf.c") for p in probes_dir.glob("*.bpf.c"))


def probe_hooks(name: str, probes_dir: Path = PROBES_DIR) -> str:
    """The header comment of a probe (its purpose, hooks, maps and caveats)."""
    text = (probes_dir / f"{name}.bpf.c").read_text()
    m = re.search(r"/\*(.*?)\*/", text, re.S)
    return m.group(1).strip() if m else ""


def cflags(settings: EbpfSettings, ringbuf: bool, task_storage: bool = False) -> dict[str, str]:
    """Load-time constants of the probes, passed as ``-D`` flags."""
    flags = {
        "RG_RINGBUF_PAGES": str(settings.ring_buffer_pages),
        "RG_MAX_CGROUPS": str(settings.max_cgroups),
        "RG_ARGV_MAX": str(settings.argv_max),
        "RG_TR_SLOTS": str(TR_SLOTS),
        "RG_TR_GROUP_BITS": str(TR_GROUP_BITS),
    }
    if ringbuf:
        flags["RG_RINGBUF"] = "1"
        if settings.poll_interval_ms > 0:
            flags["RG_RB_GAP_NS"] = f"{settings.poll_interval_ms * 1_000_000}ULL"
    if task_storage:
        flags["RG_TASK_STORAGE"] = "1"
    for define, name in _NS_SYSCALLS.items():
        flags[define] = str(syscall_number(name))
    return flags


def _inline(name: str, probes_dir: Path, seen: set[str]) -> str:
    if name in seen:
        return ""
    seen.add(name)
    path = probes_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"probe source {path} does not exist")
    text = path.read_text()
    return _INCLUDE.sub(lambda m: _inline(m.group(1), probes_dir, seen), text)


def program_text(names: Sequence[str], defines: Mapping[str, str], probes_dir: Path = PROBES_DIR) -> str:
    """The final program: ``#define`` lines for the cflags, then the probes with their local
    headers inlined (each once). This is exactly what is compiled and what ``probes --print``
    shows."""
    seen: set[str] = set()
    head = "".join(f"#define {k} {v}\n" for k, v in sorted(defines.items()))
    parts = [_inline(f"{n}.bpf.c", probes_dir, seen) for n in names]
    if names:
        parts.append(_inline(SYSDISPATCH, probes_dir, seen))
    body = "\n".join(parts)
    return f"/* riskguard probes: {' '.join(names)} */\n{head}\n{body}"
