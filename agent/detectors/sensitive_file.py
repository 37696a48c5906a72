# SPDX-License-Identifier: Apache-2.0
"""RG-0002: a secret read, or an identity, persistence or configuration file written.

Sources: ``FileOpen`` from the eBPF probe (already filtered in the kernel by path prefix) and
assembled audit events (``AuditEvent.paths``, from PATH records). Each path falls in one class
(fnmatch patterns of the detectors settings; runtime sockets belong to RG-0011):

- **identity** (``identity_write_paths``, opened for writing): accounts (/etc/passwd, shadow,
  group), privileges (sudoers), keys (~/.ssh), code that runs later (cron, ld.so.preload,
  profile scripts, PAM, init scripts). HIGH; MEDIUM when a package manager or a scheduler is in
  the writer's lineage or it is one of the container's start-up scripts (``startup.py``); a
  write from an interactive shell is never lowered by learning.
- **secret** (``sensitive_read_paths``, any open): /etc/shadow, private keys, another process's
  memory or environment. HIGH and never lowered by learning, except for the programs whose job
  it is (``credential_consumers``: su, sshd, useradd …): MEDIUM, LOW below a package manager,
  a scheduler or start-up; and for any reader below a package manager (the package manager is
  the reader or one of its ancestors: debconf's perl during ``apt-get install``): MEDIUM. An
  interactive shell that ran ``apt-get`` earlier is not below it. The kernel stop's fast path
  (``agent/response/fastpath.py``) judges its stops of the same opens with ``package_manager_in``.
- **config** (``sensitive_write_paths``, opened for writing): any other file below /etc. Not a
  finding from a package manager, a scheduler or start-up scripts (an nginx hook writing
  ``conf.d/default.conf``); MEDIUM from an interactive shell; LOW otherwise (an application
  writing its configuration at run time).

A failed attempt is at most MEDIUM. Findings not marked ``always`` in their evidence are lowered
to LOW by a path the image opened while its baseline learned (``allowance`` ``path``).

Exec and file records travel in different kernel buffers, so a hook's write may arrive before
the hook's exec. When an ancestor of the writer is not known yet (live lineage only) and the
answer could lower the finding, the event waits for that exec, at most ``DEFER_SECONDS`` of
event time, and is judged then (a late finding, reported by the component).
"""

from __future__ import annotations

import os
import posixpath

from agent.detectors.activity import activity
from agent.detectors.anti_forensics import Lineage, lineage
from agent.detectors.lineage import ProcInfo
from agent.detectors.spec import Detector, DetectorState, basename, container_key, derived, name_set, path_matcher
from agent.detectors.startup import startup_entry
from agent.events import AuditEvent, Event, FileOpen, ProcessExec
from agent.findings import Finding, Severity
from agent.settings.detectors import DetectorsSettings

DEFER_SECONDS = 1.0
_CREDENTIALS = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")
# Identity and persistence files by MITRE technique (first match wins; the path is absolute).
_WRITE_TECHNIQUES = (
    (("/etc/passwd", "/etc/group"), "T1136.001"),  # Create Account: Local Account
    (("/etc/sudoers", "/etc/doas.conf"), "T1548.003"),  # Sudo and Sudo Caching
    (("/etc/ld.so.",), "T1574.006"),  # Dynamic Linker Hijacking
    (("/etc/cron", "/var/spool/cron/"), "T1053.003"),  # Scheduled Task: Cron
    (("/etc/pam", "/etc/security/"), "T1556.003"),  # Pluggable Authentication Modules
    (("/etc/systemd/",), "T1543.002"),  # Systemd Service
    (("/etc/rc.local", "/etc/init.d/"), "T1037.004"),  # RC Scripts
)


def _mitre(path: str, klass: str, write: bool) -> str:
    if path.startswith("/proc/") and path.endswith("/mem"):
        return "T1055.009"  # Proc Memory
    if "/.ssh/" in path:
        return "T1098.004" if write else "T1552.004"  # SSH Authorized Keys / Private Keys
    if path.removesuffix("-") in _CREDENTIALS:
        return "T1003.008"  # /etc/passwd and /etc/shadow
    if klass == "identity":
        for prefixes, technique in _WRITE_TECHNIQUES:
            if path.startswith(prefixes):
                return technique
        return "T1546.004"  # Unix Shell Configuration Modification (profile, bashrc, environment)
    if klass == "config":
        return "T1565.001"  # Stored Data Manipulation
    return "T1005"


def package_manager_in(chain: list[ProcInfo]) -> ProcInfo | None:
    """The package manager a process runs below (itself or an ancestor, by role), else ``None``."""
    return next((p for p in chain if p.role == "package_manager"), None)


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


CLASS_CACHE_ENTRIES = 8192


def _class_caches(_s: DetectorsSettings) -> tuple[dict[str, str], dict[str, str]]:
    return {}, {}


def classify(path: str, write: bool, state: DetectorState) -> str:
    """``"identity"``, ``"secret"``, ``"config"`` or "" (not sensitive) for an open of ``path``
    (remembered per settings: a container opens the same few paths again and again)."""
    s = state.settings
    cache = derived(s, "file_classes", _class_caches)[1 if write else 0]
    klass = cache.get(path)
    if klass is None:
        if len(cache) >= CLASS_CACHE_ENTRIES:
            cache.clear()
        klass = cache[path] = _classify(path, write, s)
    return klass


def _classify(path: str, write: bool, s: DetectorsSettings) -> str:
    name = basename(path)
    if name in name_set(s.runtime_sockets):
        return ""
    if write and path_matcher(s.identity_write_paths)(path):
        return "identity"
    if path_matcher(s.sensitive_read_paths)(path) and not path_matcher(s.sensitive_read_ignore)(name):
        return "secret"
    if write and path_matcher(s.sensitive_write_paths)(path):
        return "config"
    return ""


def _candidates(ev: FileOpen | AuditEvent) -> tuple[list[tuple[str, bool, int]], dict[str, object]]:
    if isinstance(ev, FileOpen):
        return [(ev.path, ev.write, ev.ret)], {"flags": ev.flags, "source": ev.source}
    write = _audit_write(ev)
    ret = ev.exit if ev.exit is not None else (0 if ev.success is not False else -1)
    # PATH items: a create lists the parent directory first (nametype=PARENT) and the file after
    # it, so look at the last items first and skip directories; relative names are relative to
    # the CWD record.
    paths = [
        (p if p.startswith("/") else posixpath.normpath(posixpath.join(ev.cwd, p)), write, ret)
        for p in reversed(ev.paths)
        if p and not p.endswith("/") and (p.startswith("/") or ev.cwd.startswith("/"))
    ]
    return paths, {"syscall": ev.syscall, "exe": ev.exe, "serial": ev.serial, "source": "audit"}


def evaluate(ev: FileOpen | AuditEvent | ProcessExec, state: DetectorState) -> Finding | None:
    act = activity(state)
    if isinstance(ev, ProcessExec):
        act.observe_exec(ev)  # its parent's comm names a parent gone before lineage saw it
        if act.deferred:  # events waiting for an ancestor's exec: due now, or released by this one
            _judge_late(act.overdue(SPEC.id, ev.ts, DEFER_SECONDS) + act.release(SPEC.id, ev), state)
        return None
    if act.deferred:
        _judge_late(act.overdue(SPEC.id, ev.ts, DEFER_SECONDS), state)
    return _evaluate(ev, state, final=False)


def _judge_late(waited: list[Event], state: DetectorState) -> None:
    for earlier in waited:
        assert isinstance(earlier, (FileOpen, AuditEvent))
        f = _evaluate(earlier, state, final=True)
        if f is not None:
            state.late.append((earlier, f))


def _evaluate(ev: FileOpen | AuditEvent, state: DetectorState, *, final: bool) -> Finding | None:
    if isinstance(ev, FileOpen) and not classify(ev.path, ev.write, state):
        return None  # the common case, decided without building the candidates
    candidates, extra = _candidates(ev)
    for path, write, ret in candidates:
        klass = classify(path, write, state)
        if not klass:
            continue
        lin = lineage(state, ev)
        if not final:
            wait = _missing(state, ev, lin, klass)
            if wait:
                for pushed in activity(state).defer(SPEC.id, ev, wait):
                    assert isinstance(pushed, (FileOpen, AuditEvent))
                    f = _evaluate(pushed, state, final=True)
                    if f is not None:
                        state.late.append((pushed, f))
                return None
        return _judge(ev, state, lin, path, write, ret, klass, extra)
    return None


def _missing(state: DetectorState, ev: Event, lin: Lineage | None, klass: str) -> int:
    """The pid whose exec would complete ``ev``'s lineage when waiting for it could lower the
    finding; 0 to judge now (complete lineage, memory-only lineage, a secret read by an
    ordinary program, judged with what /proc shows of it)."""
    if ev.container is None or state.lineage.paths is None:
        return 0
    comm = getattr(ev, "comm", "")
    if klass == "secret" and comm not in name_set(state.settings.credential_consumers):
        # Judged now (a thief is not kept waiting): /proc gives a live reader's ancestors, so
        # a package manager above it (apt-get waiting for debconf) is known without waiting.
        return 0
    if lin is None or not lin.chain:
        return ev.pid
    last = lin.chain[-1]
    if last.role == "runtime" or last.ppid <= 0:
        return 0
    # A parent's exec comes before its child's: if the oldest process known started well before
    # the event, its parent's exec record (if any) was handled long ago; nothing is on its way.
    if last.start_ts and last.start_ts < ev.ts - DEFER_SECONDS:
        return 0
    return last.ppid


def _judge(
    ev: FileOpen | AuditEvent,
    state: DetectorState,
    lin: Lineage | None,
    path: str,
    write: bool,
    ret: int,
    klass: str,
    extra: dict[str, object],
) -> Finding | None:
    chain = lin.chain if lin is not None else []
    program = chain[0].program if chain and chain[0].program else ev.comm
    house = lin.housekeeping if lin is not None else None
    start = startup_entry(state, container_key(ev), chain, ev.ts)
    interactive = lin.interactive if lin is not None else None
    context = house.role if house is not None else "startup" if start is not None else ""
    if not context and interactive is not None:
        context = "interactive"
    always = False
    if klass == "identity":
        severity = Severity.MEDIUM if house or start else Severity.HIGH
        always = context == "interactive"
    elif klass == "secret":
        if program in name_set(state.settings.credential_consumers):
            severity = Severity.LOW if house or start else Severity.MEDIUM
        elif package_manager_in(chain) is not None:
            severity = Severity.MEDIUM  # a maintainer script or debconf reading it, not a thief
        else:
            severity, always = Severity.HIGH, True
    else:
        if house or start:
            return None  # a package, a cron job or the entrypoint configuring the container
        severity = Severity.MEDIUM if interactive is not None else Severity.LOW
    ok = ret >= 0
    if not ok:
        if klass == "config":
            return None
        severity = min(severity, Severity.MEDIUM)
    what = {"identity": "an identity/persistence file", "secret": "a secret", "config": "a configuration file"}[klass]
    summary = f"{program or 'process'} opened {path} ({what}) for {'writing' if write else 'reading'}"
    if context:
        summary += {
            "interactive": " from an interactive shell",
            "startup": " during the container's start-up",
        }.get(context, f" below a {context.replace('_', ' ')}")
    return SPEC.finding(
        ev,
        summary if ok else f"{summary} (failed: {ret})",
        {
            "comm": ev.comm,
            "program": program,
            "path": path,
            "write": write,
            "class": klass,
            "context": context,
            "ret": ret,
            "succeeded": ok,
            **({"always": True} if always else {}),
            **({"lineage": lin.evidence()} if lin is not None else {}),
            **extra,
        },
        subject=f"{'w' if write else 'r'}:{path}",
        severity=severity,
        mitre=_mitre(path, klass, write),
    )


SPEC = Detector(
    id="RG-0002",
    name="sensitive_file_access",
    events=(FileOpen, AuditEvent, ProcessExec),
    severity=Severity.HIGH,
    mitre="T1003.008",
    description="A process opens a secret (/etc/shadow, private SSH keys, /proc/<pid>/mem or "
    "environ), writes an identity or persistence file (passwd, sudoers, authorized_keys, cron, "
    "ld.so.preload, profile scripts) or, at low severity, another file below /etc.",
    false_positives="Allowed by default: configuration written below /etc by a package manager, "
    "a scheduler or the container's start-up scripts (entrypoint and hooks within "
    "detectors.startup_seconds); identity files written by them are MEDIUM; su, sshd, useradd "
    "and the other credential_consumers reading secrets are MEDIUM; any secret read below a package "
    "manager (the reader or an ancestor is apt-get, dpkg, apk …: debconf during apt-get install) "
    "is MEDIUM, and the kernel stop continues it. Learned per image: a path "
    "written while the baseline learned is LOW afterwards, except from an interactive shell. "
    "Never lowered: a secret read by any other program. Tuned: detectors.sensitive_read_paths, "
    "identity_write_paths, sensitive_write_paths, credential_consumers, startup_seconds; "
    "`riskguardctl baseline allow IMAGE path PATH`.",
    learns="path",
    evaluate=evaluate,
)
