# SPDX-License-Identifier: Apache-2.0
"""RG-0002: a read or write of a sensitive file (credentials, SSH keys, /etc, process memory).

Sources: ``FileOpen`` from the eBPF probe (already filtered in the kernel by path prefix) and
assembled audit events (``AuditEvent.paths``, from PATH records). Paths are matched with
``fnmatch`` against ``detectors.sensitive_read_paths`` (any open) and
``detectors.sensitive_write_paths`` (opens for writing). Runtime sockets belong to RG-0011.
"""

from __future__ import annotations

import os
import posixpath

from agent.detectors.spec import Detector, DetectorState, basename, name_set, path_matcher
from agent.events import AuditEvent, FileOpen
from agent.findings import Finding, Severity

_CREDENTIALS = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")


def _mitre(path: str, write: bool) -> str:
    if path.startswith("/proc/") and path.endswith("/mem"):
        return "T1055.009"  # Proc Memory
    if "/.ssh/" in path:
        return "T1098.004" if write else "T1552.004"  # SSH Authorized Keys / Private Keys
    if path in _CREDENTIALS:
        return "T1003.008"  # /etc/passwd and /etc/shadow
    if write:
        return "T1543"  # Create or Modify System Process (config under /etc)
    return "T1005"


def _audit_write(ev: AuditEvent) -> bool:
    """Whether an audit open/openat asked for write access (flags are hex a1 / a2)."""
    arg = {"open": "a1", "openat": "a2", "openat2": ""}.get(ev.syscall, "")
    if ev.syscall in ("creat", "truncate", "rename", "renameat", "renameat2", "unlink", "unlinkat"):
        return True
    raw = ev.fields.get(arg, "") if arg else ""
    try:
        flags = int(raw, 16)
    except ValueError:
        return False
    return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))


def evaluate(ev: FileOpen | AuditEvent, state: DetectorState) -> Finding | None:
    s = state.settings
    if isinstance(ev, FileOpen):
        candidates = [(ev.path, ev.write, ev.ret)]
        comm = ev.comm
        extra: dict[str, object] = {"flags": ev.flags, "source": ev.source}
    else:
        write = _audit_write(ev)
        ret = ev.exit if ev.exit is not None else (0 if ev.success is not False else -1)
        # PATH items: a create lists the parent directory first (nametype=PARENT) and the file
        # after it, so look at the last items first and skip directories; relative names are
        # relative to the CWD record.
        candidates = [
            (p if p.startswith("/") else posixpath.normpath(posixpath.join(ev.cwd, p)), write, ret)
            for p in reversed(ev.paths)
            if p and not p.endswith("/") and (p.startswith("/") or ev.cwd.startswith("/"))
        ]
        comm = ev.comm
        extra = {"syscall": ev.syscall, "exe": ev.exe, "serial": ev.serial, "source": "audit"}
    readable, writable = path_matcher(s.sensitive_read_paths), path_matcher(s.sensitive_write_paths)
    sockets = name_set(s.runtime_sockets)
    for path, write, ret in candidates:
        if basename(path) in sockets:
            continue
        if readable(path) or (write and writable(path)):
            ok = ret >= 0
            summary = f"{comm or 'process'} opened {path} for {'writing' if write else 'reading'}"
            return SPEC.finding(
                ev,
                summary if ok else f"{summary} (failed: {ret})",
                {"comm": comm, "path": path, "write": write, "ret": ret, "succeeded": ok, **extra},
                subject=f"{'w' if write else 'r'}:{path}",
                severity=SPEC.severity if ok else Severity.MEDIUM,
                mitre=_mitre(path, write),
            )
    return None


SPEC = Detector(
    id="RG-0002",
    name="sensitive_file_access",
    events=(FileOpen, AuditEvent),
    severity=Severity.HIGH,
    mitre="T1003.008",
    description="A process opens a credential or key file (/etc/shadow, /etc/sudoers, ~/.ssh, "
    "/proc/<pid>/mem) or opens a file below /etc or in ~/.ssh for writing.",
    false_positives="Password changes (passwd, chpasswd), user management and package "
    "installs write below /etc; config-management agents do too. Failed attempts are reported "
    "at medium severity.",
    always=True,
    evaluate=evaluate,
)
