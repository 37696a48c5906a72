# SPDX-License-Identifier: Apache-2.0
"""Lineage questions the anti-forensics rules (RG-0016, RG-0017) ask of a file change.

"Was this done from an interactive shell?" — one of the process's ancestors (or itself) is a
shell reading its commands from stdin (a ``docker exec -i … sh`` session, a reverse shell), not
a shell running a script or ``-c``. "Was this housekeeping?" — a scheduler, a package manager or
a log rotator is in the lineage. A file event may reach the detectors before the exec of its
process (they travel in different kernel buffers): the rule parks it and looks again when that
exec arrives (``Activity.park``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.detectors.activity import activity, lineage_of
from agent.detectors.lineage import ProcInfo
from agent.detectors.pipes import reads_stdin
from agent.detectors.spec import DetectorState, basename, container_key, name_set
from agent.events import AuditEvent, Event, FileChange, FileOpen, ProcessExec
from agent.findings import Finding

HOUSEKEEPING_ROLES = ("scheduler", "package_manager")


def args_of(info: ProcInfo) -> tuple[str, ...]:
    """``info``'s arguments after its program name (``busybox sh -i`` → ``("-i",)``)."""
    argv = info.argv
    if argv and basename(argv[0]) == info.program:
        return argv[1:]
    if len(argv) > 1 and basename(argv[1]) == info.program:
        return argv[2:]
    return argv[1:]


def is_interactive_shell(info: ProcInfo) -> bool:
    """A shell that reads its commands from stdin (no script, no ``-c``)."""
    return info.role == "shell" and not info.script and reads_stdin(args_of(info))


@dataclass(frozen=True, slots=True)
class Lineage:
    """What a rule needs to know of the process behind a file change."""

    chain: list[ProcInfo]  # self first
    interactive: ProcInfo | None  # the nearest interactive shell, if any
    housekeeping: ProcInfo | None  # the nearest scheduler / package manager / log rotator

    @property
    def program(self) -> str:
        return self.chain[0].program if self.chain else ""

    def evidence(self) -> list[dict[str, object]]:
        return [{**p.to_dict(), "argv": list(p.argv[:8])} for p in self.chain[:8]]


def lineage(state: DetectorState, ev: Event) -> Lineage | None:
    """The lineage of ``ev``'s process, or ``None`` when the process is not known yet."""
    ppid = ev.ppid if isinstance(ev, (FileChange, FileOpen, AuditEvent)) else 0
    chain = lineage_of(state, container_key(ev), ev.pid, ppid, getattr(ev, "comm", ""))
    if not chain:
        return None
    rotators = name_set(state.settings.log_rotators)
    interactive = next((p for p in chain if is_interactive_shell(p)), None)
    housekeeping = next(
        (p for p in chain if p.role in HOUSEKEEPING_ROLES or p.program in rotators or basename(p.script) in rotators),
        None,
    )
    return Lineage(chain, interactive, housekeeping)


def evaluate_with_lineage(
    rule: str,
    ev: Event,
    state: DetectorState,
    judge: Callable[[Event, Lineage, DetectorState], Finding | None],
) -> Finding | None:
    """``judge(event, lineage, state)``: now if the process is known, else when its exec arrives."""
    act = activity(state)
    if isinstance(ev, ProcessExec):
        act.observe_exec(ev)
        if not act.pending:
            return None  # nothing waits for an exec
        for parked in act.take_parked(rule, ev):
            found = lineage(state, parked)
            if found is not None:
                f = judge(parked, found, state)
                if f is not None:
                    return f
        return None
    found = lineage(state, ev)
    if found is None:
        act.park(rule, ev)
        return None
    return judge(ev, found, state)
