# SPDX-License-Identifier: Apache-2.0
"""RG-0009: a container tries to load a kernel module (init_module / finit_module).

Containers share the host kernel: a module loaded from a container is code in the host's
kernel (rootkits, escapes). Reported whether or not it succeeded (without CAP_SYS_MODULE it
fails with EPERM; the attempt is the signal).
"""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState, syscall_name
from agent.events import PrivilegeEvent
from agent.findings import Finding, Severity


def evaluate(ev: PrivilegeEvent, state: DetectorState) -> Finding | None:
    call = syscall_name(ev.syscall)
    if call not in ("init_module", "finit_module"):
        return None
    ok = ev.ret >= 0
    return SPEC.finding(
        ev,
        f"{ev.comm} called {call}" + (" and loaded a module" if ok else f" and failed ({ev.ret})"),
        {
            "comm": ev.comm,
            "syscall": call,
            "args": list(ev.args),
            "uid": ev.uid,
            "ret": ev.ret,
            "succeeded": ok,
        },
        subject=f"{call}:{ev.comm}",
        severity=Severity.CRITICAL if ok else SPEC.severity,
    )


SPEC = Detector(
    id="RG-0009",
    name="kernel_module_load",
    events=(PrivilegeEvent,),
    severity=Severity.HIGH,
    mitre="T1547.006",
    description="A containerised process calls init_module or finit_module (insmod/modprobe).",
    false_positives="Privileged infrastructure containers that load drivers (storage/CNI "
    "plugins, GPU drivers); disable RG-0009 for them.",
    evaluate=evaluate,
)
