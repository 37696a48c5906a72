# SPDX-License-Identifier: Apache-2.0
"""Learning an allowlist: a container without a declared one runs a learning period (nft dynamic
sets of new flows in its netns, nothing dropped) and what it did meanwhile becomes a proposal.

Flows come from two places: the learning table's sets (read when the period ends) and the
``NetConnect`` events (eBPF/audit) seen during the period; both are merged by ``conclude``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from agent.events import NetConnect
from agent.network import allowlist as al
from agent.network.allowlist import Allowlist
from agent.network.state import Tracked
from agent.runtime.model import Container
from agent.settings.network import NetworkSettings

# Flows remembered per container from events, at most (a scanner must not grow memory).
MAX_SEEN = 4096


class Learner:
    """Decides learning periods and turns observed flows into a learned allowlist."""

    def __init__(self, settings: NetworkSettings, learning_seconds: float) -> None:
        self.settings = settings
        self.seconds = settings.learning.seconds if settings.learning.seconds is not None else learning_seconds

    def period_end(self, c: Container, t: Tracked, stored_until: float, managed: bool | None = None) -> float:
        """When ``c``'s learning period ends (0.0: it does not learn: it has an allowlist or a
        proposal, learning is off, or only managed containers learn). ``managed`` tells about a
        container about to be wired (default: whether ``t`` is wired)."""
        wired = bool(t.managed) if managed is None else managed
        learn_ok = self.settings.learning.enabled and (wired or not self.settings.learning.managed_only)
        if t.allowlist is not None or not learn_ok or t.proposal is not None:
            return t.learning_until
        if stored_until:
            return stored_until
        return max(c.started_at or 0.0, time.time() - 5.0) + self.seconds

    @staticmethod
    def observe(t: Tracked, ev: NetConnect) -> None:
        """Remember one flow of a learning container (callers hold the component's lock)."""
        if t.rules != "learning" or len(t.seen_egress) > MAX_SEEN:
            return
        if ev.op == "connect" and ev.dport:
            t.seen_egress.add((ev.daddr, ev.protocol, ev.dport))
        elif ev.op in ("listen", "accept") and ev.sport:
            t.seen_ingress.add((ev.protocol, ev.sport))

    def conclude(self, t: Tracked, table: Mapping[str, Any]) -> Allowlist:
        """End ``t``'s learning period: the flows of the learning table and of the events become
        its proposal (returned)."""
        own = [t.managed.get("address", "")] if t.managed else []
        learned = al.learned(
            [*table.get("learned_egress", ()), *t.seen_egress],
            [*table.get("learned_ingress", ()), *t.seen_ingress],
            self.settings.mode,
            own=own,
        )
        t.proposal = learned
        t.learning_until = 0.0
        return learned

    @staticmethod
    def due(t: Tracked, now: float) -> bool:
        """Whether ``t``'s learning period is over."""
        return t.rules == "learning" and bool(t.learning_until) and now >= t.learning_until
