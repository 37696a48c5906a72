# SPDX-License-Identifier: Apache-2.0
"""RG-0004: a binary runs from /tmp, /var/tmp, /dev/shm, a memfd or a deleted file.

Sources: ``ProcessExec`` (filename prefix, ``exe_origin``) and ``ProcSnapshot.suspicious_exes``
(the /proc scan sees deleted, memfd-backed and not-in-image executables of running processes).
Executables absent from the image are reported at low severity when
``detectors.report_not_in_image`` is on. An exec from a writable directory below a package
manager (a maintainer script, ``pip install`` running a build tool it unpacked to /tmp) is
MEDIUM: installing is RG-0003's to report.
"""

from __future__ import annotations

import re

from agent.detectors.spec import Detector, DetectorState, comm_matches, container_key, program_names
from agent.events import ProcessExec, ProcSnapshot
from agent.findings import Finding, Severity


def _memfd(path: str) -> bool:
    # /proc/<pid>/exe of a memfd reads "/memfd:<name> (deleted)"; execveat(fd, "") shows the
    # filename as "/dev/fd/<n>" with the origin filled by the source.
    return path.startswith(("/memfd:", "memfd:"))


# fexecve()/execveat(fd, "", AT_EMPTY_PATH) shows the filename as /dev/fd/<n>: the exec of an
# already-open file, typically a memfd, whose origin the source could not read in time (the
# process may have exited before /proc was looked at).
_FD_EXEC = re.compile(r"/(dev|proc/self|proc/\d+)/fd/\d+")


def _why(path: str, origin: str, state: DetectorState) -> str:
    if origin == "memfd" or _memfd(path):
        return "memfd"
    if path.startswith(("/dev/", "/proc/")) and _FD_EXEC.fullmatch(path):
        return "fd_exec"
    if path.startswith(state.settings.writable_exec_dirs):
        return "writable_dir"
    if origin == "deleted" or path.endswith(" (deleted)"):
        return "deleted"
    return ""


def evaluate(ev: ProcessExec | ProcSnapshot, state: DetectorState) -> Finding | None:
    if isinstance(ev, ProcessExec):
        why = _why(ev.filename, ev.exe_origin, state)
        if not why or comm_matches(ev.comm, state.settings.runtime_comms):
            return None
        installer = ""
        if why == "writable_dir":
            state.remember_exec(ev)  # idempotent: the component recorded it already
            above = state.lineage.ancestors(container_key(ev), ev.pid)
            installer = next((p.program for p in above if p.role == "package_manager"), "")
        return SPEC.finding(
            ev,
            f"{program_names(ev)[0]} executed from {'a memfd' if why == 'memfd' else ev.filename}"
            + (" (a file descriptor: fexecve)" if why == "fd_exec" else ""),
            {
                "comm": ev.comm,
                "filename": ev.filename,
                "argv": list(ev.argv),
                "why": why,
                "uid": ev.uid,
                "ppid": ev.ppid,
                "parent": state.parent_comm(ev),
                **({"package_manager": installer} if installer else {}),
            },
            subject=f"{ev.pid}:{ev.filename}",
            severity=Severity.MEDIUM if installer else None,
            mitre="T1620" if why in ("memfd", "fd_exec") else "",
        )
    hits = []
    for pid, exe, reason in ev.suspicious_exes:
        why = _why(exe, reason, state)
        if not why and reason == "not_in_image" and state.settings.report_not_in_image:
            why = "not_in_image"
        if why:
            hits.append((pid, exe, why))
    if not hits:
        return None
    worst = next((h for h in hits if h[2] != "not_in_image"), hits[0])
    pid, exe, why = worst
    return SPEC.finding(
        ev,
        f"process {pid} runs {exe} ({why})" + (f" and {len(hits) - 1} more" if len(hits) > 1 else ""),
        {"exe_pid": pid, "filename": exe, "why": why, "all": [list(h) for h in hits]},
        subject=";".join(f"{p}:{e}" for p, e, _ in sorted(hits)),
        severity=Severity.LOW if why == "not_in_image" else SPEC.severity,
        mitre="T1620" if why in ("memfd", "fd_exec") else "",
    )


SPEC = Detector(
    id="RG-0004",
    name="exec_from_writable_or_memory",
    events=(ProcessExec, ProcSnapshot),
    severity=Severity.HIGH,
    mitre="T1059",
    description="A program is executed from a world-writable temporary directory (/tmp, "
    "/var/tmp, /dev/shm), from a memfd (fileless) or from a file deleted after start: the "
    "drop-and-run pattern of droppers and miners. Snapshot-only drift (not in image) is low.",
    false_positives="Allowed: the runtime's own processes (runc's memfd clone, "
    "detectors.runtime_comms). Medium: an exec from /tmp below a package manager (a "
    "maintainer script, pip running a build tool it unpacked). Learned per image: an exec pair "
    "seen while learning (installers and test harnesses that unpack to /tmp and run from there) "
    "is LOW afterwards. Tuned: detectors.writable_exec_dirs, report_not_in_image; "
    "`riskguardctl baseline allow IMAGE exec 'PARENT>PROGRAM'`. JIT runtimes or sandboxes that "
    "exec from memfds are reported: disable RG-0004 for them.",
    evaluate=evaluate,
)
