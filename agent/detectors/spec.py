# SPDX-License-Identifier: Apache-2.0
"""The declarative shape of a rule detector and the state every detector may consult.

A detector is one ``Detector`` value in its own module: a stable id (``RG-NNNN``, never reused),
a name, the event types it needs, a severity, a MITRE ATT&CK technique and a pure
``evaluate(event, state) -> Finding | None``. ``DetectorState`` carries the settings and the
little memory the component keeps between events (process lineage, container init pids, recent
connects); detectors read it, only the component writes it.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from agent.detectors.connects import RecentConnects
from agent.events import Event, NetConnect, ProcessExec
from agent.findings import Finding, Severity, Source
from agent.settings.detectors import DetectorsSettings

if TYPE_CHECKING:
    from agent.detectors.lineage import ProcessTree, ProcInfo

# The kernel's task comm is TASK_COMM_LEN (16) bytes with the terminating NUL.
COMM_LEN = 15


@dataclass
class DetectorState:
    """What detectors may know beyond the event itself."""

    settings: DetectorsSettings = field(default_factory=DetectorsSettings)
    # Process lineage per container: each process's executable, interpreter, program and role
    # (``agent.detectors.lineage``); every rule that reasons about parents asks it.
    lineage: ProcessTree = field(default_factory=lambda: _new_tree())
    # container id -> host pid of the container's init process (0 when unknown).
    init_pid: Callable[[str], int] = field(default=lambda _cid: 0)
    # container id -> when the container started (epoch seconds, 0 when unknown).
    started_at: Callable[[str], float] = field(default=lambda _cid: 0.0)
    # Findings a rule made about an earlier event it had to wait on (RG-0002 waits for the
    # exec of a missing ancestor): (that event, finding); the component reports them.
    late: list[tuple[Event, Finding]] = field(default_factory=list)
    # container id -> recent connect attempts (ts, daddr, dport), oldest first, bounded, with
    # their per-host and per-port target counts: what the scan rule (RG-0013) counts.
    connects: dict[str, RecentConnects] = field(default_factory=dict)
    max_connects: int = 4096

    def __post_init__(self) -> None:
        self.lineage.settings = self.settings

    def remember_exec(self, ev: ProcessExec) -> ProcInfo:
        """Record the process ``ev`` starts in the lineage (idempotent per event)."""
        return self.lineage.info_for(ev)

    def remember_connect(self, ev: NetConnect, horizon: float) -> None:
        """Record a connect attempt of ``ev``'s container; forget those older than ``horizon`` s."""
        key = container_key(ev)
        recent = self.connects.get(key)
        if recent is None:
            recent = self.connects[key] = RecentConnects(self.max_connects)
        recent.add(ev.ts, ev.daddr, ev.dport)
        recent.expire(ev.ts - horizon)

    def take_late(self) -> list[tuple[Event, Finding]]:
        """The late findings (removed)."""
        out, self.late = self.late, []
        return out

    def forget_container(self, container_id: str) -> None:
        self.connects.pop(container_id, None)
        self.lineage.forget_container(container_id)

    def parent(self, ev: ProcessExec) -> ProcInfo | None:
        """The parent of ``ev``'s process from lineage (then /proc, then the event's comm)."""
        return self.lineage.parent(ev)

    def parent_comm(self, ev: ProcessExec) -> str:
        """The parent's program (from its executable or script interpreter), else ""."""
        p = self.lineage.parent(ev)
        return p.program if p is not None else ""


def _new_tree() -> ProcessTree:
    from agent.detectors.lineage import ProcessTree

    return ProcessTree()


def container_key(ev: Event) -> str:
    return ev.container.id if ev.container is not None else ""


@dataclass(frozen=True)
class Detector:
    """One rule detector: its declarative spec and its pure evaluation function."""

    id: str
    name: str
    events: tuple[type[Event], ...]
    severity: Severity
    mitre: str
    description: str
    evaluate: Callable[[Any, DetectorState], Finding | None]
    # Short false-positive notes, rendered in docs and ``detectors list``.
    false_positives: str = ""
    # True: no learned per-image allowance ever lowers this rule's findings (reading
    # /etc/shadow, namespace escape, the runtime socket are never "normal" for an image).
    always: bool = False
    # What learned per-image allowance lowers its findings: "exec" (the ``PARENT>CHILD`` pair of
    # a ProcessExec), "path" (the evidence's ``path``: a file the image opened while learning)
    # or "" (nothing). A finding whose evidence has ``always: True`` is never lowered.
    learns: str = "exec"
    # The PrivilegeEvent syscalls (named as ``syscall_name`` names them) the rule can judge; ()
    # for all. A dispatch hint: the component hands it no other syscall; it still checks itself.
    syscalls: frozenset[str] = frozenset()

    def finding(
        self,
        ev: Event,
        summary: str,
        evidence: Mapping[str, Any],
        *,
        subject: str,
        severity: Severity | None = None,
        mitre: str = "",
    ) -> Finding:
        """A ``rule`` finding of this detector about ``ev``'s container.

        ``subject`` names what the finding is about (a path, a binary, a peer) and goes into
        the evidence as ``subject``; the component suppresses repeats on it.
        """
        return Finding(
            container=ev.container,
            source=Source.RULE,
            detector_id=self.id,
            severity=self.severity if severity is None else severity,
            summary=summary,
            evidence={
                "event": ev.kind,
                "pid": ev.pid,
                "cgroup_id": ev.cgroup_id,
                **({"program": program_names(ev)[0]} if isinstance(ev, ProcessExec) else {}),
                **evidence,
                "subject": subject,
            },
            mitre=mitre or self.mitre,
            ts=ev.ts or time.time(),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "events": [t.__name__ for t in self.events],
            "severity": str(self.severity),
            "mitre": self.mitre,
            "description": self.description,
            "false_positives": self.false_positives,
            "always": self.always,
            "learns": "" if self.always else self.learns,
        }


# --- helpers shared by detectors ---------------------------------------------------------
def basename(path: str) -> str:
    if not path:
        return ""
    if path[-1] == "/":
        path = path.rstrip("/")
    return path[path.rfind("/") + 1 :]


_S = TypeVar("_S")
_T = TypeVar("_T")
# Derived values of settings tuples (name sets, compiled patterns): kind -> id of the tuple ->
# (the tuple, its value). Settings are frozen, so a tuple object never changes; the tuple is kept
# alive with its value so its id cannot be reused. Keyed in two steps: a lookup allocates nothing.
_DERIVED: dict[str, dict[int, tuple[object, object]]] = {}
_NAME_SETS: dict[int, tuple[object, frozenset[str]]] = {}


def derived(source: _S, kind: str, build: Callable[[_S], _T]) -> _T:
    """``build(source)`` computed once per ``(source object, kind)`` (``build`` is best a
    module-level function: a lambda made at each call costs an allocation)."""
    values = _DERIVED.get(kind)
    if values is None:
        values = _DERIVED[kind] = {}
    hit = values.get(id(source))
    if hit is not None and hit[0] is source:
        return hit[1]  # type: ignore[return-value]
    value = build(source)
    if len(values) > 4096:  # many short-lived settings objects (tests): start over
        values.clear()
    values[id(source)] = (source, value)
    return value


def name_set(names: Iterable[str]) -> frozenset[str]:
    """``names`` plus their kernel-truncated forms (comm is TASK_COMM_LEN - 1 characters)."""
    hit = _NAME_SETS.get(id(names))
    if hit is not None and hit[0] is names:
        return hit[1]
    value = frozenset(names) | frozenset(n[:COMM_LEN] for n in names)
    if len(_NAME_SETS) > 4096:
        _NAME_SETS.clear()
    _NAME_SETS[id(names)] = (names, value)
    return value


def comm_matches(comm: str, names: Iterable[str]) -> bool:
    """``comm`` equals one of ``names`` as the kernel would truncate it."""
    return bool(comm) and comm in name_set(names)


def path_matcher(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    """One compiled regex for a tuple of fnmatch patterns (case-sensitive, like paths)."""
    return derived(patterns, "fnmatch", _compile_patterns)


def _compile_patterns(patterns: tuple[str, ...]) -> Callable[[str], bool]:
    if not patterns:
        return lambda _p: False
    rx = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
    return lambda path: rx.match(path) is not None


# Busybox ash built with FEATURE_SH_STANDALONE (Debian's busybox-static) runs its applets by
# exec'ing /proc/self/exe with argv[0] set to the applet: the kernel then names the process
# "exe" (comm is the basename of the exec'd path) and the program is only known from argv[0].
# fexecve() of a memfd shows the filename "/dev/fd/<n>", equally uninformative.
_SELF_EXE = re.compile(r"/proc/(self|\d+)/exe|/(dev|proc/self|proc/\d+)/fd/\d+")
REEXEC_COMMS = ("exe",)
# The last event's program (several detectors look at the same exec in a row).
_last_program: tuple[object, tuple[str, list[str]]] = (None, ("", []))


def program_names(ev: ProcessExec) -> tuple[str, list[str]]:
    """The program a process runs and its arguments, seeing through busybox applets.

    Busybox dispatches on ``argv[0]`` (``/bin/sh`` → ``sh``) or on ``argv[1]`` when run as
    ``busybox sh``; an exec of ``/proc/self/exe`` (busybox ash running an applet) or of
    ``/dev/fd/<n>`` (fexecve) is named by ``argv[0]``. Callers must not modify the result.
    """
    global _last_program
    last = _last_program
    if last[0] is ev:
        return last[1]
    result = _program_names(ev)
    _last_program = (ev, result)
    return result


def _program_names(ev: ProcessExec) -> tuple[str, list[str]]:
    argv = ev.argv
    name = basename(ev.filename) or ev.comm
    if argv and ev.filename.startswith(("/proc/", "/dev/fd/")) and _SELF_EXE.fullmatch(ev.filename):
        name = basename(argv[0])
    if name == "busybox" or ev.comm == "busybox":
        if argv and basename(argv[0]) != "busybox":
            return basename(argv[0]), list(argv[1:])
        if len(argv) > 1:
            return basename(argv[1]), list(argv[2:])
    return name, list(argv[1:])


def is_named(ev: ProcessExec, names: Iterable[str]) -> bool:
    """The process is one of ``names`` by comm, executable basename or busybox applet."""
    known = name_set(names)
    if ev.comm in known:
        return True
    global _last_names
    last = _last_names
    if last[0] is not ev:
        last = _last_names = (ev, program_names(ev)[0], basename(ev.filename))
    return last[1] in known or last[2] in known


# The last event's program and executable basename (several detectors name the same exec).
_last_names: tuple[object, str, str] = (None, "", "")


def argv_text(ev: ProcessExec) -> str:
    return " ".join(ev.argv)


def syscall_name(name: str) -> str:
    """``sys_setuid`` / ``__x64_sys_setuid`` / ``setuid`` → ``setuid``."""
    for prefix in ("__x64_sys_", "__ia32_sys_", "sys_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
