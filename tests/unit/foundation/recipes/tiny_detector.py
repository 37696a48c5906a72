# SPDX-License-Identifier: Apache-2.0
"""A tiny detector, written as the recipe in docs/architecture.md says (step 1: the module)."""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState
from agent.events import PacketsDenied
from agent.findings import Finding, Severity

THRESHOLD = 100


def evaluate(ev: PacketsDenied, state: DetectorState) -> Finding | None:
    """A container whose enforced deny rule dropped ``THRESHOLD`` or more packets in one window."""
    if not ev.enforced or ev.packets < THRESHOLD:
        return None
    return SPEC.finding(ev, f"{ev.packets} packets denied in one window", {"packets": ev.packets}, subject="deny")


SPEC = Detector(
    id="RG-9001",
    name="denied_packets_burst",
    events=(PacketsDenied,),
    severity=Severity.MEDIUM,
    mitre="T1046",
    description="Many packets hit a container's least-privilege deny rule in one window.",
    evaluate=evaluate,
)
