# SPDX-License-Identifier: Apache-2.0
"""RG-0010: a container uses the bpf() syscall (loading programs or maps into the host kernel).

eBPF from a container can read kernel memory of every process (with CAP_BPF/CAP_SYS_ADMIN) and
is a known rootkit and escape vehicle; attempts are reported too.
"""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState, comm_matches, syscall_name
from agent.events import PrivilegeEvent
from agent.findings import Finding, Severity

# include/uapi/linux/bpf.h enum bpf_cmd (the first ones; others are named by number).
_CMDS = {
    0: "BPF_MAP_CREATE",
    5: "BPF_PROG_LOAD",
    8: "BPF_PROG_ATTACH",
    17: "BPF_RAW_TRACEPOINT_OPEN",
    28: "BPF_LINK_CREATE",
}


def evaluate(ev: PrivilegeEvent, state: DetectorState) -> Finding | None:
    if syscall_name(ev.syscall) != "bpf" or comm_matches(ev.comm, state.settings.runtime_comms):
        return None
    cmd = ev.args[0] if ev.args else -1
    name = _CMDS.get(cmd, f"cmd {cmd}" if cmd >= 0 else "unknown cmd")
    ok = ev.ret >= 0
    return SPEC.finding(
        ev,
        f"{ev.comm} called bpf({name})" + ("" if ok else f" and failed ({ev.ret})"),
        {"comm": ev.comm, "syscall": "bpf", "cmd": name, "uid": ev.uid, "ret": ev.ret, "succeeded": ok},
        subject=f"bpf:{ev.comm}",
        severity=SPEC.severity if ok else Severity.MEDIUM,
    )


SPEC = Detector(
    id="RG-0010",
    name="bpf_in_container",
    events=(PrivilegeEvent,),
    severity=Severity.HIGH,
    mitre="T1014",
    description="A containerised process calls bpf() (creating maps or loading programs into the shared kernel).",
    false_positives="Allowed by default: the runtime's own calls (runc loads its device cgroup "
    "program before the container starts, detectors.runtime_comms); failed attempts are medium. "
    "Learned: nothing. Tuned: disable RG-0010 for observability and networking agents shipped "
    "as containers (Cilium, Falco, this agent itself if containerised).",
    evaluate=evaluate,
    syscalls=frozenset({"bpf"}),
)
