# SPDX-License-Identifier: Apache-2.0
"""Peer comparison of replicas: each container's recent behaviour-mode mix against the pooled
mix of the other replicas of its baseline (total-variation distance)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.settings.behavior import BehaviorModeSettings


def mode_mix(modes: Sequence[int] | deque[int], k: int) -> list[float]:
    """The share of each of ``k`` modes among ``modes``."""
    counts = Counter(modes)
    n = max(len(modes), 1)
    return [counts.get(i, 0) / n for i in range(k)]


@dataclass
class Peers:
    """Recent mode labels per container of one baseline, and who was already flagged."""

    modes: dict[str, deque[int]] = field(default_factory=dict)
    flagged: set[str] = field(default_factory=set)

    def update(self, container_id: str, mode: int, k: int, ms: BehaviorModeSettings) -> dict[str, Any] | None:
        """Record ``mode`` for the container; the evidence of a new peer outlier, else None
        (not enough history, close to its replicas, or already flagged)."""
        hist = self.modes.setdefault(container_id, deque(maxlen=ms.peer_windows))
        hist.append(mode)
        others = [h for cid, h in self.modes.items() if cid != container_id and len(h) >= ms.peer_min_windows]
        if len(hist) < ms.peer_min_windows or not others:
            return None
        mine = mode_mix(hist, k)
        pooled = mode_mix([m for h in others for m in h], k)
        tvd = 0.5 * sum(abs(a - p) for a, p in zip(mine, pooled, strict=True))
        if tvd <= ms.peer_tvd:
            self.flagged.discard(container_id)
            return None
        if container_id in self.flagged:
            return None
        self.flagged.add(container_id)
        return {
            "tvd": round(tvd, 3),
            "mode_mix": [round(v, 3) for v in mine],
            "replica_mode_mix": [round(v, 3) for v in pooled],
            "replicas": len(others),
        }

    def forget(self, container_id: str) -> None:
        self.modes.pop(container_id, None)
        self.flagged.discard(container_id)
