# SPDX-License-Identifier: Apache-2.0
"""Scoring a corpus run: what went wrong on the benign side, which techniques were missed,
precision and recall of the rule set, and the tables that show it per container and technique."""

from __future__ import annotations

from collections import Counter
from typing import Any

from agent.findings import Severity
from tests.e2e.corpus import spec
from tests.e2e.corpus.run import ContainerResult, CorpusResult, detections

ISOLATING = ("freeze", "quarantine")


def severity(f: dict[str, Any]) -> Severity:
    return Severity.parse(f["severity"])


def isolations(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Freezes and quarantines that were applied (not dry runs)."""
    return [a for a in actions if a["action"] in ISOLATING and not a.get("dry_run")]


def benign_cutoff(r: CorpusResult, c: ContainerResult) -> float:
    """Until when a container counts as benign: always, or until its technique was played."""
    for a in r.attacks.values():
        if a.role == c.role:
            return a.sent_at - 0.5
    return float("inf") if c.kind == "benign" else r.ended


def benign_part(r: CorpusResult, c: ContainerResult) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Findings and isolations of ``c`` while it was benign."""
    cut = benign_cutoff(r, c)
    return [f for f in c.findings if float(f["ts"]) < cut], [a for a in isolations(c.actions) if a["created"] < cut]


def _finding_line(f: dict[str, Any]) -> str:
    ev = f.get("evidence") or {}
    extra = ", ".join(f"{k}={ev[k]}" for k in ("program", "comm", "parent", "argv", "path", "reason") if k in ev)
    return f"{f['detector_id']} {severity(f)} [{f['source']}]: {f['summary']}" + (f" ({extra})" if extra else "")


def benign_problems(r: CorpusResult) -> list[str]:
    """Every way the benign side failed: actions, high findings, workloads that did not run."""
    out: list[str] = []
    for c in r.containers.values():
        findings, actions = benign_part(r, c)
        by_id = {f["id"]: f for f in c.findings}
        for a in actions:
            cause = by_id.get(a.get("finding_id", ""))
            why = _finding_line(cause) if cause else a.get("reason", "")
            out.append(f"{c.role}: {a['action']} ({a['phase']}) caused by {why}")
        out.extend(
            f"{c.role}: high finding {line}"
            for line in sorted({_finding_line(f) for f in findings if severity(f) >= Severity.HIGH})
        )
    for w in spec.BENIGN:
        c = r.containers[w.role]
        if w.proof and c.proofs < w.min_proofs:
            out.append(f"{w.role}: workload did not run: {c.proofs} x {w.proof!r} in its log, want >= {w.min_proofs}")
        if w.healthcheck:
            log = c.health.get("Log") or []
            if c.health.get("Status") != "healthy" or any(e.get("ExitCode") != 0 for e in log) or not log:
                out.append(f"{w.role}: healthcheck not passing: {c.health.get('Status')}, {len(log)} probes in log")
        if w.network:
            ok, failed = r.requests.get(w.role, [0, 0])
            if ok < 5 or failed > 3:
                out.append(f"{w.role}: web requests {ok} ok / {failed} failed")
    failed_ops = [f"{role} {' '.join(argv)} -> {rc}" for role, argv, rc in r.operator if rc != 0]
    if failed_ops or not r.operator:
        out.append(f"operator docker exec failed ({len(failed_ops)} of {len(r.operator)}): {failed_ops[:5]}")
    return out


# A technique counts as detected by a finding of at least this severity naming its container
# within DETECT_SECONDS of the command (a low behaviour finding, e.g. a snapshot's zero RSS, is
# shown but does not count).
DETECT_SEVERITY = Severity.MEDIUM
DETECT_SECONDS = 20.0


def technique_findings(r: CorpusResult, t: spec.Technique) -> list[dict[str, Any]]:
    """Findings (low or above, not posture) naming the technique's container right after it was played."""
    a = r.attacks.get(t.name)
    if a is None:
        return []
    c = r.containers[a.role]
    return [
        f
        for f in detections(c.findings, a.sent_at - 0.5)
        if severity(f) >= Severity.LOW and float(f["ts"]) <= a.sent_at + DETECT_SECONDS
    ]


def detected(r: CorpusResult, t: spec.Technique) -> bool:
    return any(severity(f) >= DETECT_SEVERITY for f in technique_findings(r, t))


def attack_problems(r: CorpusResult) -> list[str]:
    """Every technique without a finding, every must-isolate one not frozen within the limit."""
    out: list[str] = []
    for t in spec.TECHNIQUES:
        a = r.attacks.get(t.name)
        if a is None:
            out.append(f"{t.name}: not played")
            continue
        if not detected(r, t):
            seen = ", ".join(_finding_line(f) for f in technique_findings(r, t)) or "nothing"
            out.append(f"{t.name}: no {DETECT_SEVERITY}+ finding naming {a.role} ({t.what}); seen: {seen}")
        if t.must_isolate and (a.frozen_after is None or a.frozen_after > spec.ISOLATE_SECONDS):
            out.append(f"{t.name}: not frozen within {spec.ISOLATE_SECONDS:g} s (frozen after {a.frozen_after} s)")
    return out


def scores(r: CorpusResult) -> dict[str, Any]:
    """Precision and recall of the agent on this run.

    Recall: techniques with a medium+ finding naming their container / techniques; isolation
    recall: must-isolate techniques frozen within the limit / must-isolate techniques.
    Precision (alerts): findings of high severity or above that are about a played technique /
    all such findings on corpus containers; the same counted per container, and for actions.
    """
    tp_f = fp_f = 0
    alarmed_attack: set[str] = set()
    alarmed_benign: set[str] = set()
    for c in r.containers.values():
        cut = benign_cutoff(r, c)
        for f in c.findings:
            if severity(f) < Severity.HIGH:
                continue
            if float(f["ts"]) >= cut:
                tp_f += 1
                alarmed_attack.add(c.role)
            else:
                fp_f += 1
                alarmed_benign.add(c.role)
    isolated_attack = {c.role for c in r.containers.values() if c.kind == "attack" and isolations(c.actions)}
    isolated_benign = {c.role for c in r.containers.values() if benign_part(r, c)[1]}
    isolated_attack -= isolated_benign
    caught = [t.name for t in spec.TECHNIQUES if detected(r, t)]
    must = [t for t in spec.TECHNIQUES if t.must_isolate]
    isolated_in_time = [
        t.name
        for t in must
        if (a := r.attacks.get(t.name)) and a.frozen_after is not None and a.frozen_after <= spec.ISOLATE_SECONDS
    ]
    benign_sev: Counter[str] = Counter()
    benign_det: Counter[str] = Counter()
    for c in r.containers.values():
        for f in benign_part(r, c)[0]:
            benign_sev[str(severity(f))] += 1
            benign_det[f"{f['detector_id']} {severity(f)}"] += 1

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 3) if b else None

    return {
        "recall": ratio(len(caught), len(spec.TECHNIQUES)),
        "detected": caught,
        "missed": [t.name for t in spec.TECHNIQUES if t.name not in caught],
        "isolation_recall": ratio(len(isolated_in_time), len(must)),
        "precision_findings": ratio(tp_f, tp_f + fp_f),
        "high_findings": {"true": tp_f, "false": fp_f},
        "precision_containers": ratio(len(alarmed_attack), len(alarmed_attack) + len(alarmed_benign)),
        "precision_actions": ratio(len(isolated_attack), len(isolated_attack) + len(isolated_benign)),
        "benign_findings_by_severity": dict(benign_sev),
        "benign_findings_by_detector": dict(benign_det),
        "benign_containers_isolated": sorted(isolated_benign),
        "benign_seconds": round(r.ended - r.started, 1),
    }


def table(r: CorpusResult) -> str:
    """Per container (benign part) and per technique: what fired, what was done."""
    lines = ["| container | kind | late | findings while benign (severity: detectors) | actions | workload ran |"]
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for c in r.containers.values():
        findings, actions = benign_part(r, c)
        sev: dict[str, set[str]] = {}
        for f in findings:
            sev.setdefault(str(severity(f)), set()).add(f["detector_id"])
        fired = "; ".join(f"{s}: {','.join(sorted(d))}" for s, d in sorted(sev.items())) or "-"
        acts = ", ".join(a["action"] for a in actions) or "-"
        proof = f"{c.health.get('Status')} ({c.health.get('FailingStreak')} failing)" if c.health else c.proofs
        lines.append(f"| {c.role} | {c.kind} | {'yes' if c.late else ''} | {fired} | {acts} | {proof} |")
    lines += ["", "| technique | mitre | findings naming the container | frozen after | verdict |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for t in spec.TECHNIQUES:
        a = r.attacks.get(t.name)
        found = technique_findings(r, t)
        names = ", ".join(sorted({f"{f['detector_id']} {severity(f)}" for f in found})) or "none"
        frozen = "-" if a is None or a.frozen_after is None else f"{a.frozen_after:.3f} s"
        ok = detected(r, t) and (
            not t.must_isolate
            or (a is not None and a.frozen_after is not None and a.frozen_after <= spec.ISOLATE_SECONDS)
        )
        need = " (must isolate)" if t.must_isolate else ""
        lines.append(f"| {t.name}{need} | {t.mitre} | {names} | {frozen} | {'ok' if ok else 'MISSED'} |")
    return "\n".join(lines)


def details(r: CorpusResult) -> str:
    """Every benign-side finding and every technique finding, one line each (for a failure message)."""
    out = ["benign-side findings:"]
    for c in r.containers.values():
        out.extend(f"  {c.role}: {line}" for line in sorted({_finding_line(f) for f in benign_part(r, c)[0]}))
    out.append("technique findings:")
    for t in spec.TECHNIQUES:
        out.extend(f"  {t.name}: {_finding_line(f)}" for f in technique_findings(r, t))
    out.append("what each session printed (the command ran):")
    for name, a in r.attacks.items():
        out.append(f"  {name}: {a.output.strip()[-200:]!r}")
    return "\n".join(out)
