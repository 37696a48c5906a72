# SPDX-License-Identifier: Apache-2.0
"""RG-0006: a non-root process asks to become root (setuid family with a 0 id), or sets capabilities.

``setuid(0)``, ``setreuid(…, 0)``, ``setresuid(…0…)``, ``setfsuid(0)`` and their gid twins
from a caller whose uid is not 0: a set-uid binary or an exploit turning into root. ``capset``
is reported at low severity (daemons drop capabilities at start; the runtime's own capset in
``runc init`` is not counted). Attempts that failed are reported too, one step lower.
"""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState, comm_matches, syscall_name
from agent.events import PrivilegeEvent
from agent.findings import Finding, Severity

_ID_CALLS = {
    "setuid": 1,
    "setreuid": 2,
    "setresuid": 3,
    "setfsuid": 1,
    "setgid": 1,
    "setregid": 2,
    "setresgid": 3,
    "setfsgid": 1,
}


def _evidence(ev: PrivilegeEvent, call: str, ok: bool) -> dict[str, object]:
    return {"comm": ev.comm, "syscall": call, "args": list(ev.args), "uid": ev.uid, "ret": ev.ret, "succeeded": ok}


def evaluate(ev: PrivilegeEvent, state: DetectorState) -> Finding | None:
    call = syscall_name(ev.syscall)
    if (call not in _ID_CALLS and call != "capset") or comm_matches(ev.comm, state.settings.runtime_comms):
        return None
    ok = ev.ret >= 0
    if call in _ID_CALLS:
        if ev.uid == 0:
            return None
        # -1 (as u32 0xffffffff) means "unchanged" for the multi-id calls.
        ids = [a & 0xFFFFFFFF for a in ev.args[: _ID_CALLS[call]]]
        if 0 not in ids:
            return None
        return SPEC.finding(
            ev,
            f"{ev.comm} (uid {ev.uid}) called {call}({', '.join(map(str, ids))})"
            + ("" if ok else f" and failed ({ev.ret})"),
            _evidence(ev, call, ok),
            subject=f"{call}:{ev.comm}",
            severity=SPEC.severity if ok else Severity.MEDIUM,
        )
    if call == "capset":
        return SPEC.finding(
            ev,
            f"{ev.comm} (uid {ev.uid}) changed its capabilities",
            _evidence(ev, call, ok),
            subject=f"capset:{ev.comm}",
            severity=Severity.LOW,
        )
    return None


SPEC = Detector(
    id="RG-0006",
    name="privilege_change",
    events=(PrivilegeEvent,),
    severity=Severity.HIGH,
    mitre="T1548",
    description="A process whose uid is not 0 calls the setuid/setgid family with a 0 id "
    "(becoming root), or any process calls capset (low).",
    false_positives="Allowed by default: root dropping privileges (su-exec, gosu, crond running a "
    "job as its user, daemons switching to their user: setuid to a non-zero id), the runtime's "
    "own calls (detectors.runtime_comms); capset is low. Learned: nothing (not an exec-pair "
    "shape). Tuned: disable RG-0006 for images whose non-root users run su/sudo/newgrp on "
    "purpose (reported high; a failed attempt medium).",
    evaluate=evaluate,
    syscalls=frozenset([*_ID_CALLS, "capset"]),
)
