# SPDX-License-Identifier: Apache-2.0
"""RG-0018: one process reads many other processes' /proc/<pid>/cmdline or environ (T1057).

``ps``, ``pgrep`` and hand-written loops over ``/proc/*/cmdline`` enumerate what runs in the
container (process discovery); reading every ``environ`` harvests other processes' secrets.
The eBPF files probe reports opens of ``/proc/<digits>/cmdline`` and ``environ``; the rule counts,
per reading process, the distinct pids it read within ``detectors.proc_scan_window_seconds``
and fires once when the count reaches ``detectors.proc_scan_min_pids``: medium for cmdline
(an operator's ``ps`` is allowed to be seen, never acted on), high for environ. Routine reads of
cmdline are low: a HEALTHCHECK's or a one-off ``docker exec``'s ``pgrep``/``ps`` (the runtime
above it through non-interactive shells and wrappers only) and a scheduler's job; a low
finding never keeps behaviour windows out of training (a health check every 2 s would).
"""

from __future__ import annotations

import re

from agent.detectors.activity import activity
from agent.detectors.anti_forensics import Lineage, lineage
from agent.detectors.spec import Detector, DetectorState, container_key
from agent.events import FileOpen
from agent.findings import Finding, Severity

_PROC_FILE = re.compile(r"/proc/(\d+)/(cmdline|environ)")


def evaluate(ev: FileOpen, state: DetectorState) -> Finding | None:
    if not ev.path.startswith("/proc/"):
        return None
    m = _PROC_FILE.fullmatch(ev.path)
    if m is None or ev.ret < 0:
        return None
    s = state.settings
    target, file = m.group(1), m.group(2)
    cid = container_key(ev)
    count = activity(state).observe_proc_read(cid, ev.pid, target, file, ev.ts, s.proc_scan_window_seconds)
    if count != s.proc_scan_min_pids:
        return None  # below the threshold, or already reported for this burst
    info = state.lineage.get(cid, ev.pid)
    program = info.program if info is not None else ev.comm
    environ = file == "environ"
    context = routine(lineage(state, ev))
    severity = Severity.HIGH if environ else Severity.LOW if context else Severity.MEDIUM
    return SPEC.finding(
        ev,
        f"{program} read /proc/<pid>/{file} of {count} processes within {s.proc_scan_window_seconds:g}s",
        {
            "comm": ev.comm,
            "program": program,
            "file": file,
            "count": count,
            "argv": list(info.argv[:8]) if info is not None else [],
            "context": context,
            "source": ev.source,
        },
        subject=f"proc-{file}:{program}",
        severity=severity,
        mitre="T1057",
    )


def routine(lin: Lineage | None) -> str:
    """``"runtime_exec"`` (a health check or one-off ``docker exec``: the runtime above through
    non-interactive shells and wrappers only), ``"scheduler"`` (a cron job) or "" for the
    lineage of a reader."""
    if lin is None or not lin.chain or lin.interactive is not None:
        return ""
    if lin.housekeeping is not None and lin.housekeeping.role == "scheduler":
        return "scheduler"
    top = lin.chain[-1]
    if top.role == "runtime" and all(p.role in ("shell", "wrapper") for p in lin.chain[1:-1]):
        return "runtime_exec"
    return ""


SPEC = Detector(
    id="RG-0018",
    name="process_discovery",
    events=(FileOpen,),
    severity=Severity.MEDIUM,
    mitre="T1057",
    description="One process reads /proc/<pid>/cmdline of detectors.proc_scan_min_pids or more "
    "processes within detectors.proc_scan_window_seconds (ps, pgrep, a /proc loop): process "
    "discovery, medium; the same over environ (other processes' secrets), high.",
    false_positives="Allowed at low: a HEALTHCHECK's or a one-off docker exec's pgrep/ps and a "
    "cron job's (no interactive shell, the runtime or a scheduler above). Medium (seen, never "
    "acted on at the default action_severity): ps, top, pgrep typed in an interactive shell or "
    "run by an application, once per program per repeat window. "
    "Learned: nothing (FileOpen rule; learned exec pairs apply to exec rules only). Tuned: "
    "detectors.proc_scan_min_pids, proc_scan_window_seconds; an in-container supervisor or "
    "monitoring agent reading other processes' environ is high: disable RG-0018 for its image.",
    evaluate=evaluate,
)
