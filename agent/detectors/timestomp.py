# SPDX-License-Identifier: Apache-2.0
"""RG-0017: explicit timestamps set on a system file (timestomping, T1070.006).

``touch -r /bin/sh /bin/implant`` and ``touch -d 2020-01-01 /etc/cron.d/x`` call utimensat with
times other than "now"; ``touch newfile`` (no times) never reaches the rule
(``FileChange.explicit_times`` is false). Only paths under ``detectors.timestomp_paths`` count.
Package managers (and anything below one) restore packaged times on purpose: never reported.
High severity for ``touch`` or a change made from an interactive shell, medium for other
programs that copy times as a side effect (``tar x``, ``cp -p``, ``rsync -t``) and for anything
the container's start-up scripts (``startup.py``), a scheduler or a log rotator do (an
entrypoint hook's ``touch -r``).
"""

from __future__ import annotations

from agent.detectors.anti_forensics import Lineage, evaluate_with_lineage
from agent.detectors.spec import Detector, DetectorState, container_key
from agent.detectors.startup import startup_entry
from agent.events import Event, FileChange, ProcessExec
from agent.findings import Finding, Severity

# Programs whose only job with times is setting them.
_TIME_SETTERS = ("touch",)


def candidate(ev: FileChange, state: DetectorState) -> bool:
    return (
        ev.op == "utimes" and ev.explicit_times and ev.ret >= 0 and ev.path.startswith(state.settings.timestomp_paths)
    )


def _judge(ev: Event, lin: Lineage, state: DetectorState) -> Finding | None:
    assert isinstance(ev, FileChange)
    if any(p.role == "package_manager" for p in lin.chain):
        return None
    program = lin.program or ev.comm
    routine = lin.housekeeping is not None or startup_entry(state, container_key(ev), lin.chain, ev.ts) is not None
    strong = lin.interactive is not None or (program in _TIME_SETTERS and not routine)
    return SPEC.finding(
        ev,
        f"{program} set explicit timestamps on {ev.path}"
        + (f" from an interactive shell (pid {lin.interactive.pid})" if lin.interactive else ""),
        {
            "path": ev.path,
            "comm": ev.comm,
            "program": program,
            "interactive": lin.interactive is not None,
            "routine": routine,
            "lineage": lin.evidence(),
            "source": ev.source,
        },
        subject=f"utimes:{ev.path}",
        severity=Severity.HIGH if strong else Severity.MEDIUM,
    )


def evaluate(ev: FileChange | ProcessExec, state: DetectorState) -> Finding | None:
    if isinstance(ev, FileChange) and not candidate(ev, state):
        return None
    return evaluate_with_lineage(SPEC.id, ev, state, _judge)


SPEC = Detector(
    id="RG-0017",
    name="timestomp",
    events=(FileChange, ProcessExec),
    severity=Severity.HIGH,
    mitre="T1070.006",
    description="utimensat with explicit times (touch -r / touch -d) on a file under a system "
    "directory (detectors.timestomp_paths): hiding a planted or modified file among old ones.",
    false_positives="Allowed by default: touch without explicit times, files outside system "
    "directories, package managers (and their children) restoring packaged times; touch by the "
    "container's start-up scripts, a scheduler or a log rotator is medium. Learned: "
    "nothing (an `always` rule). Tuned: detectors.timestomp_paths. Archive extraction or cp -p "
    "into system directories at run time is reported at medium (no action at the default "
    "action_severity).",
    evaluate=evaluate,
    # Learned exec pairs (sh>nc, sh>rm) say nothing about this shape: never lowered by them.
    always=True,
)
