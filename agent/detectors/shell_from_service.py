# SPDX-License-Identifier: Apache-2.0
"""RG-0001: a shell started by a process that is not itself a shell (``httpd`` → ``sh``).

"Shell" and "parent" come from process lineage (``agent.detectors.lineage``): the program an
executable or a script's ``#!`` interpreter runs, never the comm (a script's comm is its file
name, so ``sh /app/job.sh`` → ``sh -c …`` is a shell starting a shell). A shell exec counts when
the program is a shell, including a shell script run directly (a CGI script of ``httpd``).

Not counted: the container's own entrypoint (the exec of its init pid); shells whose nearest
parent that is not a wrapper (``env``, ``timeout``, ``xargs``, ``find -exec`` …) has a trusted
role (``detectors.trusted_parent_roles``: shell, scheduler, init, supervisor, runtime, package
manager) or a trusted program (``detectors.trusted_shell_parents``: sshd, su, sudo …); shells
whose parent is unknown. A parent known only by the event's comm (it exited before lineage or
/proc could see its executable) gives a LOW finding, since the comm may be a script's name.
"""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState, argv_text, comm_matches, container_key
from agent.events import ProcessExec
from agent.findings import Finding, Severity


def evaluate(ev: ProcessExec, state: DetectorState) -> Finding | None:
    s = state.settings
    me = state.remember_exec(ev)
    if me.role != "shell":
        return None
    init_pid = state.init_pid(container_key(ev)) if ev.container is not None else 0
    if init_pid and ev.pid == init_pid:
        return None  # the container's entrypoint itself
    parent = state.lineage.effective_parent(ev)
    if parent is None or not parent.program:
        return None
    if parent.role in s.trusted_parent_roles:
        return None
    if comm_matches(parent.program, s.trusted_shell_parents):
        return None
    chain = [p.program for p in reversed(state.lineage.ancestors(container_key(ev), ev.pid))]
    return SPEC.finding(
        ev,
        f"shell {me.program} started by {parent.program} (pid {parent.pid}, {parent.role})",
        {
            "comm": ev.comm,
            "filename": ev.filename,
            "argv": list(ev.argv),
            "uid": ev.uid,
            "ppid": ev.ppid,
            "parent": parent.program,
            "parent_role": parent.role,
            "parent_known_by": parent.source,
            "process": me.to_dict(),
            "parent_process": parent.to_dict(),
            "lineage": [*chain, me.program] if chain else [parent.program, me.program],
            "cmdline": argv_text(ev),
        },
        subject=f"{parent.program}>{me.program}",
        severity=Severity.LOW if parent.source == "event" else None,
    )


SPEC = Detector(
    id="RG-0001",
    name="shell_spawned_by_service",
    events=(ProcessExec,),
    severity=Severity.HIGH,
    mitre="T1059.004",
    description="A shell (sh, bash, ash …, or a shell script) is executed by a parent that is not a "
    "shell, scheduler, init, supervisor, the runtime or a session manager: a web server or "
    "application running commands (RCE, web shell). Parents are judged by executable and "
    "script interpreter, not by comm.",
    false_positives="Allowed by default: shells started by shells and shell scripts (hooks, "
    "`sh /app/job.sh`), schedulers (crond, supercronic …), init and supervisors (tini, s6, runit, "
    "supervisord …), the runtime (`docker exec`, HEALTHCHECK), package managers, session managers "
    "(sshd, su, sudo), through wrappers (env, timeout, xargs, find -exec). Learned per image: a "
    "parent → shell pair seen while the image's baseline was learning is reported at LOW "
    "(`riskguardctl baseline show IMAGE`). Tuned by detectors.trusted_parent_roles, "
    "detectors.trusted_shell_parents, `riskguardctl baseline allow IMAGE exec PARENT>sh`.",
    evaluate=evaluate,
)
