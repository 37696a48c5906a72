# SPDX-License-Identifier: Apache-2.0
"""RG-0005: netcat/socat wired to a program, or a shell whose stdin/stdout is a socket.

Exec-style arguments: ``nc -e PROG`` / ``-c CMD`` (traditional netcat, busybox), ``ncat --exec``
/ ``--sh-exec`` / ``--lua-exec``, ``socat … EXEC:…`` / ``SYSTEM:…``. Socket stdio: the source
reads fds 0-2 at exec time (``ProcessExec.stdio``); ``socket:[inode]`` on fd 0 or 1 of a shell
is the classic reverse shell (``sh -i >& /dev/tcp/...``, ``nc`` piping into ``sh``).
"""

from __future__ import annotations

import re

from agent.detectors.spec import Detector, DetectorState, argv_text, comm_matches, is_named, program_names
from agent.events import ProcessExec
from agent.findings import Finding, Severity

_NC_EXEC_FLAGS = ("-e", "-c", "--exec", "--sh-exec", "--lua-exec")
# socat address types that run a program; addresses may be chained with "!!" or prefixed.
_SOCAT_EXEC = re.compile(r"(^|[!,'\"\s])(exec|system)\s*:", re.IGNORECASE)


def _nc_exec_arg(args: list[str]) -> str:
    for i, a in enumerate(args):
        if a in _NC_EXEC_FLAGS or a.startswith(("--exec=", "--sh-exec=", "--lua-exec=")):
            return a if "=" in a else f"{a} {args[i + 1] if i + 1 < len(args) else ''}".strip()
        # glued short options: -e/bin/sh, -lvpe sh (the flag letter last in a cluster)
        if a.startswith("-e") and len(a) > 2 and not a.startswith("--"):
            return a
        if re.fullmatch(r"-[a-zA-Z]*[ec]", a) and len(a) > 2:
            return f"{a} {args[i + 1] if i + 1 < len(args) else ''}".strip()
    return ""


def _base(ev: ProcessExec) -> dict[str, object]:
    return {"comm": ev.comm, "filename": ev.filename, "argv": list(ev.argv), "uid": ev.uid, "ppid": ev.ppid}


def evaluate(ev: ProcessExec, state: DetectorState) -> Finding | None:
    s = state.settings
    prog, args = program_names(ev)
    if is_named(ev, s.netcat_names):
        how = _nc_exec_arg(args)
        if how:
            return SPEC.finding(
                ev,
                f"{prog} runs a program on a network connection ({how})",
                {**_base(ev), "how": how, "parent": state.parent_comm(ev)},
                subject=f"nc:{argv_text(ev)}",
            )
    if prog == "socat" or comm_matches(ev.comm, ("socat",)):
        hit = next((a for a in args if _SOCAT_EXEC.search(a)), "")
        if hit:
            return SPEC.finding(
                ev,
                f"socat runs a program on a connection ({hit})",
                {**_base(ev), "how": hit, "parent": state.parent_comm(ev)},
                subject=f"socat:{argv_text(ev)}",
            )
    stdio = ev.stdio
    # stdin or stdout a socket (checked first: most execs have none, and naming costs more)
    on_socket = bool(stdio) and (
        stdio[0].startswith("socket:[") or (len(stdio) > 1 and stdio[1].startswith("socket:["))
    )
    if on_socket and is_named(ev, s.shells):
        sockets = [f"fd{i}={t}" for i, t in enumerate(stdio[:2]) if t.startswith("socket:[")]
        if sockets:
            return SPEC.finding(
                ev,
                f"shell {prog} has its stdio on a socket ({', '.join(sockets)})",
                {**_base(ev), "stdio": list(ev.stdio), "parent": state.parent_comm(ev)},
                subject=f"shell-socket:{ev.pid}",
                severity=Severity.CRITICAL,
            )
    return None


SPEC = Detector(
    id="RG-0005",
    name="reverse_shell",
    events=(ProcessExec,),
    severity=Severity.HIGH,
    mitre="T1059.004",
    description="netcat/ncat/socat started with exec-style arguments (nc -e, ncat --sh-exec, "
    "socat EXEC:/SYSTEM:), or a shell started with a socket as stdin or stdout: a bind or "
    "reverse shell.",
    false_positives="Allowed by default: netcat and socat without exec-style arguments (clients, "
    "listeners, relays between two sockets), shells whose stdio are pipes, files or terminals "
    "(docker exec, HEALTHCHECK, cron, subprocess). Learned: nothing (an `always` rule). Tuned: "
    "detectors.netcat_names; inetd-style services and CGI servers that hand the client socket "
    "to a shell script (Python's CGIHTTPRequestHandler) are reported: disable RG-0005 for them.",
    always=True,
    evaluate=evaluate,
)
