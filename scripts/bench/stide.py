# SPDX-License-Identifier: Apache-2.0
"""STIDE (Forrest et al. 1996, Warrender et al. 1999): the classic syscall baseline, for benchmarks.

The normal database holds every window of ``window`` consecutive syscalls of the training
traces (a trace shorter than the window is one window). A trace's score is the fraction of its
windows that are not in the database (0..1, higher = more anomalous). Not part of the product:
``scripts/bench/syscall_models.py`` measures the agent's models against it.
"""

from __future__ import annotations

from collections.abc import Sequence


class Stide:
    """The set of normal windows; ``score`` is the mismatch rate of a trace's windows."""

    def __init__(self, window: int = 6) -> None:
        self.window = window
        self.db: set[tuple[int, ...]] = set()

    def windows(self, seq: Sequence[int]) -> list[tuple[int, ...]]:
        w = self.window
        if len(seq) < w:
            return [tuple(seq)] if seq else []
        return [tuple(seq[i : i + w]) for i in range(len(seq) - w + 1)]

    def fit(self, sequences: Sequence[Sequence[int]]) -> Stide:
        for s in sequences:
            self.db.update(self.windows(s))
        return self

    def score(self, seq: Sequence[int]) -> float:
        wins = self.windows(seq)
        if not wins:
            return 0.0
        return sum(1 for w in wins if w not in self.db) / len(wins)
