# SPDX-License-Identifier: Apache-2.0
"""Learned per-image allowances on the detectors' side: what to record, what to lower.

``AllowanceReview.observe(event)`` records, while the container's image learns, the patterns
of ``agent.behavior.allowances`` (exec pairs and executables from process lineage, sensitive
paths, destinations). ``review(detector, event, finding)`` lowers a process-exec rule's finding
whose exec pair the image does normally, or a path rule's (RG-0002, ``Detector.learns``) whose
path it opened (see ``Allowances.judge``), and records why in the evidence (``allowance``, also
when the rule's severity was already that low); a detector flagged ``always``, or a finding
whose evidence says ``always``, is never lowered.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from agent.detectors.lineage import ProcInfo
from agent.detectors.lineage_names import unversioned
from agent.detectors.sensitive_file import classify
from agent.detectors.spec import Detector, DetectorState, container_key
from agent.events import Event, FileOpen, NetConnect, ProcessExec
from agent.findings import Finding

if TYPE_CHECKING:  # the behaviour subsystem may be left out of a build
    from agent.behavior.allowances import Allowances


def pattern_name(info: ProcInfo | None, canonical: bool = True) -> str:
    """A program as an exec pattern names it: an interpreter without its version. The same
    process is ``python3`` to lineage when its exec was seen (the link it was started by) and
    ``python3.11`` when lineage read it from /proc (the file it runs): one image, one pattern."""
    if info is None or not info.program:
        return "?"
    if canonical and info.role == "interpreter":
        return unversioned(info.program)
    return info.program


def exec_pattern(ev: ProcessExec, state: DetectorState, canonical: bool = True) -> str:
    """``PARENT>CHILD`` program names of an exec (the parent seen through wrappers);
    ``canonical``: interpreters named without their version (``python>sh``)."""
    me = state.remember_exec(ev)
    parent = state.lineage.effective_parent(ev)
    return f"{pattern_name(parent, canonical)}>{pattern_name(me, canonical)}"


# Which judgement wins when an exec is judged by both its canonical and its exact pattern.
_RANK = {"unseen": 0, "learning": 1, "learned": 2, "allowed": 3, "denied": 4}


class AllowanceReview:
    """Records what images do while they learn and lowers findings about it later."""

    def __init__(self, allowances: Allowances, state: DetectorState) -> None:
        self.allowances = allowances
        self.state = state
        self.lowered = 0

    def observe(self, event: Event) -> None:
        """Record ``event``'s patterns when its container's image is learning."""
        c = event.container
        if c is None or not self.allowances.learning(self.allowances.key_of(c), event.ts):
            return
        a = self.allowances
        if isinstance(event, ProcessExec):
            a.observe(c, "exec", exec_pattern(event, self.state), event.ts)
            me = self.state.lineage.get(container_key(event), event.pid)
            if me is not None and me.exe:
                a.observe(c, "exe", me.exe, event.ts)
        elif isinstance(event, FileOpen) and event.ret >= 0 and classify(event.path, event.write, self.state):
            # Only what RG-0002 judges: not /proc/<pid>/… (one process), logs being truncated.
            a.observe(c, "path", event.path, event.ts)
        elif isinstance(event, NetConnect) and event.op == "connect" and event.daddr:
            a.observe(c, "dest", f"{event.protocol}/{event.daddr}:{event.dport}", event.ts)

    def review(self, detector: Detector, event: Event, finding: Finding) -> Finding:
        """``finding`` lowered when its exec pair (or, for a rule that learns paths, its path) is
        normal for the image, else unchanged."""
        if detector.always or event.container is None or finding.evidence.get("always"):
            return finding
        if detector.learns == "exec" and isinstance(event, ProcessExec):
            kind, pattern = "exec", exec_pattern(event, self.state)
        elif detector.learns == "path" and isinstance(finding.evidence.get("path"), str):
            kind, pattern = "path", str(finding.evidence["path"])
        else:
            return finding
        j = self.allowances.judge(event.container, kind, pattern, event.ts)
        if kind == "exec" and isinstance(event, ProcessExec):
            # An operator's entry (or a baseline learned before patterns were canonical) may name
            # the interpreter with its version: the stronger word of the two wins (deny first).
            exact = exec_pattern(event, self.state, canonical=False)
            if exact != pattern:
                je = self.allowances.judge(event.container, kind, exact, event.ts)
                if _RANK[je.state] > _RANK[j.state]:
                    j = je
        if j.severity is None:
            return finding
        # Already at or below what the allowance allows: unchanged, but marked as the image's
        # normal behaviour all the same (it then keeps no behaviour window out of training).
        severity = min(j.severity, finding.severity)
        if severity < finding.severity:
            self.lowered += 1
        return dataclasses.replace(
            finding,
            severity=severity,
            evidence={**finding.evidence, "allowance": {**j.evidence(), "severity_before": str(finding.severity)}},
        )
