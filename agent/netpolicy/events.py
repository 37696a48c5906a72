# SPDX-License-Identifier: Apache-2.0
"""The event netpolicy publishes: packets its least-privilege rules denied (or would have)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.events import Event


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketsDenied(Event):
    """Packets that reached the deny rule of a container's ``riskguard_lp`` table over
    [start, end): dropped in enforce mode, only counted in observe mode (``enforced`` False).
    Behaviour analysis adds ``packets_in + packets_out`` to ``BehaviorWindow.denied_packets``."""

    start: float
    end: float
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    enforced: bool = False
    source: str = "netpolicy"

    @property
    def packets(self) -> int:
        return self.packets_in + self.packets_out
