# SPDX-License-Identifier: Apache-2.0
"""RG-0008: mount, unshare or setns from inside a container: a namespace or mount escape attempt.

Containers start with their namespaces and mounts made by the runtime (whose own calls in
``runc init`` are excluded by comm); a workload that mounts filesystems or enters/creates
namespaces is trying to reach the host (mounting the host disk, ``nsenter -t 1``, user
namespaces for kernel exploits). Failed attempts are reported one step lower.
"""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState, comm_matches, syscall_name
from agent.events import PrivilegeEvent
from agent.findings import Finding, Severity

_CALLS = (
    "mount",
    "umount",
    "umount2",
    "unshare",
    "setns",
    "pivot_root",
    "fsmount",
    "move_mount",
    "open_tree",
    "chroot",
)


def evaluate(ev: PrivilegeEvent, state: DetectorState) -> Finding | None:
    call = syscall_name(ev.syscall)
    if call not in _CALLS or comm_matches(ev.comm, state.settings.runtime_comms):
        return None
    ok = ev.ret >= 0
    severity = SPEC.severity if ok else Severity.MEDIUM
    if call == "chroot":  # sshd privilege separation and build tools chroot on purpose
        severity = Severity.MEDIUM if ok else Severity.LOW
    return SPEC.finding(
        ev,
        f"{ev.comm} called {call}" + ("" if ok else f" and failed ({ev.ret})"),
        {
            "comm": ev.comm,
            "syscall": call,
            "args": list(ev.args),
            "uid": ev.uid,
            "ret": ev.ret,
            "succeeded": ok,
        },
        subject=f"{call}:{ev.comm}",
        severity=severity,
    )


SPEC = Detector(
    id="RG-0008",
    name="namespace_escape_syscall",
    events=(PrivilegeEvent,),
    severity=Severity.HIGH,
    mitre="T1611",
    description="A containerised process calls mount/umount, unshare, setns or pivot_root "
    "(namespace or mount manipulation: escape to host); chroot is reported at medium/low.",
    false_positives="Allowed by default: the runtime's own set-up (runc init setns/mount for "
    "docker exec and HEALTHCHECK, detectors.runtime_comms); chroot is medium (sshd privilege "
    "separation), failed attempts one step lower. Learned: nothing (an `always` rule). Tuned: "
    "disable RG-0008 for sandboxing and build images (bubblewrap, Chrome's sandbox, buildah, "
    "kaniko, FUSE workloads).",
    always=True,
    evaluate=evaluate,
    syscalls=frozenset(_CALLS),
)
