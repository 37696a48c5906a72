# SPDX-License-Identifier: Apache-2.0
"""RG-0007: ptrace used to attach to or write into another process (code injection, credential theft).

Requests counted: ATTACH, SEIZE, POKETEXT/POKEDATA/POKEUSER, SETREGS/SETFPREGS, SETREGSET. A
PTRACE_TRACEME (a debugger's child) and reads are not findings. When the source did not record
the request (no args) the call is reported at medium severity.
"""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState, comm_matches, syscall_name
from agent.events import PrivilegeEvent
from agent.findings import Finding, Severity

# linux/ptrace.h request numbers (x86_64 arch-specific ones included).
_REQUESTS = {
    4: "PTRACE_POKETEXT",
    5: "PTRACE_POKEDATA",
    6: "PTRACE_POKEUSER",
    13: "PTRACE_SETREGS",
    15: "PTRACE_SETFPREGS",
    16: "PTRACE_ATTACH",
    0x4205: "PTRACE_SETREGSET",
    0x4206: "PTRACE_SEIZE",
}


def evaluate(ev: PrivilegeEvent, state: DetectorState) -> Finding | None:
    if syscall_name(ev.syscall) != "ptrace" or comm_matches(ev.comm, state.settings.runtime_comms):
        return None
    request = ev.args[0] if ev.args else -1
    target = ev.args[1] if len(ev.args) > 1 else 0
    if request != -1 and request not in _REQUESTS:
        return None
    name = _REQUESTS.get(request, "unknown request")
    return SPEC.finding(
        ev,
        f"{ev.comm} called ptrace({name}) on pid {target}" + ("" if ev.ret >= 0 else f" and failed ({ev.ret})"),
        {
            "comm": ev.comm,
            "syscall": "ptrace",
            "request": name,
            "target_pid": target,
            "uid": ev.uid,
            "ret": ev.ret,
            "succeeded": ev.ret >= 0,
        },
        subject=f"ptrace:{ev.comm}:{target}",
        severity=SPEC.severity if request != -1 else Severity.MEDIUM,
    )


SPEC = Detector(
    id="RG-0007",
    name="ptrace_attach",
    events=(PrivilegeEvent,),
    severity=Severity.HIGH,
    mitre="T1055.008",
    description="A process attaches to or writes into another process with ptrace "
    "(ATTACH/SEIZE/POKE*/SETREGS): process injection or memory scraping.",
    false_positives="Allowed by default: PTRACE_TRACEME and read requests, the runtime's own "
    "calls. Learned: nothing. Tuned: disable RG-0007 for debugging images whose debuggers and "
    "profilers (gdb, strace, py-spy) attach on purpose.",
    evaluate=evaluate,
    syscalls=frozenset({"ptrace"}),
)
