# SPDX-License-Identifier: Apache-2.0
"""Sequence models of normal sessions, kept per group (image): transitions, frequent patterns
(PrefixSpan) and a next-event n-gram top-k model in the spirit of DeepLog (Du et al., CCS 2017).

A session scores as anomalous when it takes transitions never (or rarely) seen, when its next
events fall outside the top-k predicted by the n-gram model, or when it lacks patterns that
(nearly) every normal session shows. ``score`` explains each contribution in ``patterns``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from agent.logs.prefixspan import contains, frequent_patterns

START = "<s>"
END = "</s>"


@dataclass
class ModelParams:
    ngram: int = 3  # history length + 1
    top_k: int = 5
    min_support: float = 0.2  # PrefixSpan support, as a fraction of sessions
    always_support: float = 0.97  # patterns at least this frequent are "always" shown
    max_pattern_len: int = 4
    rare_fraction: float = 0.01
    threshold: float = 0.3

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SequenceModel:
    """What normal sessions of one group look like."""

    params: ModelParams = field(default_factory=ModelParams)
    sessions: int = 0
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    outgoing: Counter[str] = field(default_factory=Counter)
    next_counts: dict[tuple[str, ...], Counter[str]] = field(default_factory=dict)
    patterns: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def fit(self, sessions: Sequence[Sequence[str]]) -> SequenceModel:
        """Learn from normal sessions (replaces what was learnt before)."""
        p = self.params
        self.sessions = len(sessions)
        self.transitions = Counter()
        self.outgoing = Counter()
        self.next_counts = {}
        for seq in sessions:
            full = [START, *seq, END]
            for a, b in pairwise(full):
                self.transitions[(a, b)] += 1
                self.outgoing[a] += 1
            hist = p.ngram - 1
            padded = [START] * hist + list(seq) + [END]
            for i in range(hist, len(padded)):
                h = tuple(padded[i - hist : i])
                self.next_counts.setdefault(h, Counter())[padded[i]] += 1
        min_sup = max(1, int(p.min_support * len(sessions)))
        found = frequent_patterns(sessions, min_sup, max_len=p.max_pattern_len)
        n = max(1, len(sessions))
        self.patterns = [(pat, sup / n) for pat, sup in found]
        return self

    def always_patterns(self) -> list[tuple[tuple[str, ...], float]]:
        """Maximal patterns that at least ``always_support`` of sessions show."""
        always = [(pat, s) for pat, s in self.patterns if s >= self.params.always_support]
        maximal = [(pat, s) for pat, s in always if not any(len(o) > len(pat) and contains(o, pat) for o, _ in always)]
        return maximal

    def score(self, seq: Sequence[str]) -> tuple[float, bool, list[dict[str, Any]]]:
        """``(score in [0, 1], anomalous, explanations)`` of one session."""
        p = self.params
        why: list[dict[str, Any]] = []
        full = [START, *seq, END]
        steps = len(full) - 1
        bad = 0.0
        for a, b in pairwise(full):
            count = self.transitions.get((a, b), 0)
            if count == 0:
                bad += 1
                if len(why) < 20:
                    why.append({"kind": "unseen_transition", "from": a, "to": b})
            elif self.outgoing[a] and count / self.outgoing[a] < p.rare_fraction:
                bad += 0.5
                if len(why) < 20:
                    why.append({"kind": "rare_transition", "from": a, "to": b, "frequency": count / self.outgoing[a]})
        hist = p.ngram - 1
        padded = [START] * hist + list(seq) + [END]
        misses = 0
        for i in range(hist, len(padded)):
            h = tuple(padded[i - hist : i])
            nxt = self.next_counts.get(h)
            expected = [s for s, _ in nxt.most_common(p.top_k)] if nxt else []
            if padded[i] not in expected:
                misses += 1
                if len(why) < 30:
                    why.append(
                        {"kind": "next_event_not_in_top_k", "history": list(h), "next": padded[i], "expected": expected}
                    )
        missing = 0
        for pat, sup in self.always_patterns():
            if not contains(seq, pat):
                missing += 1
                if len(why) < 40:
                    why.append({"kind": "missing_pattern", "pattern": list(pat), "support": round(sup, 3)})
        score = max(bad / steps, 0.5 * misses / steps) + 0.25 * missing
        score = min(1.0, round(score, 4))
        return score, score >= p.threshold, why

    # --- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params.to_dict(),
            "sessions": self.sessions,
            "transitions": [[a, b, c] for (a, b), c in sorted(self.transitions.items())],
            "next": [[list(h), dict(c)] for h, c in self.next_counts.items()],
            "patterns": [[list(pat), sup] for pat, sup in self.patterns],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SequenceModel:
        params = ModelParams(**d.get("params", {}))
        m = cls(params=params, sessions=int(d.get("sessions", 0)))
        for a, b, c in d.get("transitions", []):
            m.transitions[(a, b)] = int(c)
            m.outgoing[a] += int(c)
        m.next_counts = {tuple(h): Counter({k: int(v) for k, v in c.items()}) for h, c in d.get("next", [])}
        m.patterns = [(tuple(pat), float(sup)) for pat, sup in d.get("patterns", [])]
        return m
