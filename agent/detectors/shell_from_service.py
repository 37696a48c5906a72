# SPDX-License-Identifier: Apache-2.0
"""RG-0001: a shell started by a process that is not itself a shell (``httpd`` → ``sh``).

Not counted: the container's own entrypoint (the exec of its init pid), shells whose parent is
the runtime or a trusted session/init process (``containerd-shim`` for ``docker exec``, ``runc``
init, ``tini``, ``sshd``…), and shells whose parent is unknown (neither the event nor an earlier
exec names it: a finding needs a named parent).
"""

from __future__ import annotations

from agent.detectors.spec import (
    Detector,
    DetectorState,
    argv_text,
    comm_matches,
    container_key,
    is_named,
    program_names,
)
from agent.events import ProcessExec
from agent.findings import Finding, Severity


def evaluate(ev: ProcessExec, state: DetectorState) -> Finding | None:
    s = state.settings
    if not is_named(ev, s.shells):
        return None
    init_pid = state.init_pid(container_key(ev)) if ev.container is not None else 0
    if init_pid and ev.pid == init_pid:
        return None  # the container's entrypoint itself
    parent = state.parent_comm(ev)
    if not parent or comm_matches(parent, s.shells):
        return None
    # runc's set-up stages (runc:[1:CHILD] …) are the parents of `docker exec` processes.
    if comm_matches(parent, s.trusted_shell_parents) or comm_matches(parent, s.runtime_comms):
        return None
    shell = program_names(ev)[0]
    return SPEC.finding(
        ev,
        f"shell {shell} started by {parent} (pid {ev.ppid})",
        {
            "comm": ev.comm,
            "filename": ev.filename,
            "argv": list(ev.argv),
            "uid": ev.uid,
            "ppid": ev.ppid,
            "parent": parent,
            "cmdline": argv_text(ev),
        },
        subject=f"{parent}>{shell}",
    )


SPEC = Detector(
    id="RG-0001",
    name="shell_spawned_by_service",
    events=(ProcessExec,),
    severity=Severity.HIGH,
    mitre="T1059.004",
    description="A shell (sh, bash, ash …) is executed by a parent that is not a shell, the runtime "
    "or a session manager: a web server or application running commands (RCE, web shell).",
    false_positives="Applications that legitimately shell out (cron-like schedulers, CGI, "
    "`subprocess(shell=True)`, `find -exec sh`, xargs): add their comm to "
    "detectors.trusted_shell_parents or disable RG-0001 for them. The entrypoint "
    "(container init pid) and `docker exec` shells (parent containerd-shim) are not reported.",
    evaluate=evaluate,
)
