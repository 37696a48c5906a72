# SPDX-License-Identifier: Apache-2.0
"""RG-0009: a container tries to load a kernel module (init_module / finit_module, insmod/modprobe).

Containers share the host kernel: a module loaded from a container is code in the host's
kernel (rootkits, escapes). The syscalls are reported whether or not they succeeded (without
CAP_SYS_MODULE they fail with EPERM; the attempt is the signal). The exec of a module loader
(``insmod``, ``modprobe`` with a module name) is reported too, at medium severity: on kernels
built without module support the syscalls do not even have tracepoints, and the exec is the
only trace of the attempt.
"""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState, argv_text, is_named, program_names, syscall_name
from agent.events import PrivilegeEvent, ProcessExec
from agent.findings import Finding, Severity

# modprobe options that only query (no load): -n/--dry-run, -c/--showconfig, -D/--show-depends,
# -r/--remove (unloading is not loading).
_QUERY_FLAGS = {"-n", "--dry-run", "-c", "--showconfig", "-D", "--show-depends", "-r", "--remove", "--help", "-h"}


def evaluate(ev: PrivilegeEvent | ProcessExec, state: DetectorState) -> Finding | None:
    if isinstance(ev, ProcessExec):
        if not is_named(ev, state.settings.module_loaders):
            return None
        prog, args = program_names(ev)
        if not [a for a in args if not a.startswith("-")] or _QUERY_FLAGS & set(args):
            return None
        return SPEC.finding(
            ev,
            f"{prog} started to load a kernel module: {argv_text(ev)}",
            {"comm": ev.comm, "filename": ev.filename, "argv": list(ev.argv), "uid": ev.uid, "ppid": ev.ppid},
            subject=f"exec:{argv_text(ev)}",
            severity=Severity.MEDIUM,
        )
    call = syscall_name(ev.syscall)
    if call not in ("init_module", "finit_module"):
        return None
    ok = ev.ret >= 0
    return SPEC.finding(
        ev,
        f"{ev.comm} called {call}" + (" and loaded a module" if ok else f" and failed ({ev.ret})"),
        {"comm": ev.comm, "syscall": call, "args": list(ev.args), "uid": ev.uid, "ret": ev.ret, "succeeded": ok},
        subject=f"{call}:{ev.comm}",
        severity=Severity.CRITICAL if ok else SPEC.severity,
    )


SPEC = Detector(
    id="RG-0009",
    name="kernel_module_load",
    events=(PrivilegeEvent, ProcessExec),
    severity=Severity.HIGH,
    mitre="T1547.006",
    description="A containerised process calls init_module or finit_module (high; critical if it "
    "succeeded), or runs insmod/modprobe with a module to load (medium).",
    false_positives="Allowed by default: modprobe queries and removals (-n, -c, -D, -r), loaders "
    "without a module argument. Learned: an exec pair (sh>modprobe) seen while learning lowers "
    "the exec finding to LOW; the syscalls never. Tuned: detectors.module_loaders; disable "
    "RG-0009 for infrastructure containers that load drivers (storage/CNI plugins, GPU drivers).",
    evaluate=evaluate,
    syscalls=frozenset({"init_module", "finit_module"}),
)
