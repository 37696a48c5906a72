# SPDX-License-Identifier: Apache-2.0
"""Detectors on audit events assembled from records captured on a real host.

``fixtures/audit.log`` was recorded by ``fixtures/capture_audit.sh`` (auditd, ENRICHED format):
``cat /etc/shadow``, ``touch /etc/rg-audit-capture.conf`` and a refused connect to a unix socket
named ``docker.sock``, plus the rule removal's own records.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

from agent.decoders.audit import assemble, parse_log_line
from agent.detectors.component import evaluate_all
from agent.detectors.registry import DETECTORS
from agent.detectors.spec import DetectorState
from agent.events import AuditEvent, ContainerRef
from agent.findings import Finding

LOG = Path(__file__).parent / "fixtures" / "audit.log"
C = ContainerRef(id="cd" * 32, name="app", image="app")


def events() -> list[AuditEvent]:
    by_serial = defaultdict(list)
    # split("\n"), not splitlines(): the ENRICHED format's \x1d separator is a line
    # boundary for str.splitlines().
    for line in LOG.read_text(encoding="utf-8").split("\n"):
        if not line:
            continue
        rec = parse_log_line(line)
        by_serial[rec.serial].append(rec)
    # Attributed as the audit source would for a containerised process.
    return [dataclasses.replace(assemble(recs), container=C) for _serial, recs in sorted(by_serial.items())]


def findings() -> list[Finding]:
    st = DetectorState()
    return [f for ev in events() for f in evaluate_all(DETECTORS, ev, st)]


def test_fixture_has_the_recorded_actions() -> None:
    evs = events()
    assert [e.syscall for e in evs][:3] == ["openat", "openat", "connect"]


def test_shadow_read_write_below_etc_and_runtime_socket() -> None:
    got = [(f.detector_id, f.evidence.get("path"), f.evidence.get("write")) for f in findings()]
    assert ("RG-0002", "/etc/shadow", False) in got
    assert ("RG-0002", "/etc/rg-audit-capture.conf", True) in got
    sock = [f for f in findings() if f.detector_id == "RG-0011"]
    assert len(sock) == 1 and sock[0].evidence["path"].endswith("/docker.sock")
    assert sock[0].evidence["how"] == "connect"
    # Nothing else: the rule removal (auditctl's netlink sendto) is not a finding, and the
    # parent-directory PATH item of the create is not reported as "/etc/".
    assert len(got) == 3, got


def test_findings_carry_audit_evidence() -> None:
    shadow = next(f for f in findings() if f.evidence.get("path") == "/etc/shadow")
    assert shadow.evidence["source"] == "audit" and shadow.evidence["syscall"] == "openat"
    assert shadow.evidence["comm"] == "cat" and shadow.evidence["serial"] > 0
    assert shadow.container == C and shadow.mitre == "T1003.008"
