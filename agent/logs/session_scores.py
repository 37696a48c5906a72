# SPDX-License-Identifier: Apache-2.0
"""The scorers of the session model, each fitted on normal sessions only.

- ``CountInvariants`` (Lou et al., "Mining Invariants from Console Logs", USENIX ATC 2010):
  linear relations ``a·x_i = b·x_j`` (a, b ∈ 1..3) between event counts that hold in every
  training session where either event occurs, for events present in at least ``min_share`` of
  sessions; plus ``x_i ≥ 1`` for events present in every session. Score: relations violated.
- ``CountPCA`` (Xu et al., "Detecting Large-Scale System Problems by Mining Console Logs", SOSP
  2009): raw event counts plus one column counting unseen events; the normal subspace keeps
  ``variance`` of the variance; score: squared prediction error (SPE) off that subspace.
- ``NextEvent``: a Witten-Bell interpolated n-gram model of the next event with explicit start and
  end-of-session tokens (an unfinished session makes ``</s>`` unlikely); score: the largest
  excess surprisal of any step, ``log2 p(e) - log2 p(e | history)`` (rarity alone is the other
  detectors' business: a rare event in a plausible place scores about 0).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np
import numpy.typing as npt

START = "<s>"
END = "</s>"
FloatArray = npt.NDArray[np.float64]


def count_matrix(sessions: Sequence[Sequence[str]], vocab: dict[str, int]) -> FloatArray:
    """Event counts per session (rows) and symbol of ``vocab`` (columns), plus a column of unseen events."""
    x = np.zeros((len(sessions), len(vocab) + 1), dtype=np.float64)
    unseen = len(vocab)
    for r, seq in enumerate(sessions):
        for sym in seq:
            x[r, vocab.get(sym, unseen)] += 1
    return x


class CountInvariants:
    """Pairwise linear count invariants and always-present events."""

    RATIOS = ((1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 3), (3, 2))

    def __init__(self, min_share: float = 0.05, max_invariants: int = 2000, max_sum_alphabet: int = 60) -> None:
        self.min_share = min_share
        self.max_invariants = max_invariants
        self.max_sum_alphabet = max_sum_alphabet
        self.pairs: list[tuple[int, int, int, int]] = []  # (i, j, a, b): a*x_i == b*x_j
        self.sums: list[tuple[int, int, int]] = []  # (i, j, k): x_i == x_j + x_k
        self.always: list[int] = []

    def fit(self, x: FloatArray) -> CountInvariants:
        width = x.shape[1]
        present = (x[:, :-1] > 0).mean(axis=0)
        cols = [i for i in range(width - 1) if present[i] >= self.min_share]
        self.always = [i for i in cols if present[i] == 1.0]
        self.pairs = []
        for i, j in combinations(cols, 2):
            either = (x[:, i] > 0) | (x[:, j] > 0)
            xi, xj = x[either, i], x[either, j]
            for a, b in self.RATIOS:
                if np.array_equal(a * xi, b * xj):
                    self.pairs.append((i, j, a, b))
                    break
            if len(self.pairs) >= self.max_invariants:
                break
        # Sums: x_i = x_j + x_k (one event counted for each of two others), for small alphabets.
        # The total and one part are frequent events; the other part may be rare (a retry).
        self.sums = []
        seen = [i for i in range(width - 1) if present[i] > 0]
        if len(seen) <= self.max_sum_alphabet:
            for i in cols:
                for j in cols:
                    for k in seen:
                        if len({i, j, k}) < 3 or (k in cols and k < j):
                            continue
                        if not np.array_equal(x[:, i], x[:, j] + x[:, k]) or self._implied(i, j, k):
                            continue
                        self.sums.append((i, j, k))
                        if len(self.sums) >= self.max_invariants:
                            return self
        return self

    def _implied(self, i: int, j: int, k: int) -> bool:
        """A sum whose parts are equal-count partners of the total is already a pair invariant."""
        return any({a, b} in ({i, j}, {i, k}) for a, b, _, _ in self.pairs)

    def violations(self, x: FloatArray) -> npt.NDArray[np.int64]:
        """Violated invariants per row."""
        out = np.zeros(x.shape[0], dtype=np.int64)
        for i, j, a, b in self.pairs:
            out += (a * x[:, i] != b * x[:, j]).astype(np.int64)
        for i, j, k in self.sums:
            out += (x[:, i] != x[:, j] + x[:, k]).astype(np.int64)
        for i in self.always:
            out += (x[:, i] < 1).astype(np.int64)
        return out

    def explain(self, row: FloatArray, names: list[str], limit: int = 5) -> list[dict[str, Any]]:
        why: list[dict[str, Any]] = []
        for i in self.always:
            if row[i] < 1 and len(why) < limit:
                why.append({"kind": "missing_event", "event": names[i]})
        for i, j, a, b in self.pairs:
            if a * row[i] != b * row[j] and len(why) < limit:
                why.append(
                    {
                        "kind": "count_invariant_violated",
                        "invariant": f"{a}*#{names[i]} == {b}*#{names[j]}",
                        "counts": [int(row[i]), int(row[j])],
                    }
                )
        for i, j, k in self.sums:
            if row[i] != row[j] + row[k] and len(why) < limit:
                why.append(
                    {
                        "kind": "count_invariant_violated",
                        "invariant": f"#{names[i]} == #{names[j]} + #{names[k]}",
                        "counts": [int(row[i]), int(row[j]), int(row[k])],
                    }
                )
        return why

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "sums": self.sums, "always": self.always, "min_share": self.min_share}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CountInvariants:
        m = cls(float(d.get("min_share", 0.05)))
        m.pairs = [(int(i), int(j), int(a), int(b)) for i, j, a, b in d.get("pairs", [])]
        m.sums = [(int(i), int(j), int(k)) for i, j, k in d.get("sums", [])]
        m.always = [int(i) for i in d.get("always", [])]
        return m


class CountPCA:
    """Residual (SPE) of raw event counts off the normal principal subspace."""

    def __init__(self, variance: float = 0.95) -> None:
        self.variance = variance
        self.mean: FloatArray = np.zeros(0)
        self.basis: FloatArray = np.zeros((0, 0))

    def fit(self, x: FloatArray) -> CountPCA:
        self.mean = x.mean(axis=0)
        centred = x - self.mean
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        energy = s**2
        total = float(energy.sum())
        k = 0
        if total > 0:
            k = int(np.searchsorted(np.cumsum(energy) / total, self.variance) + 1)
        self.basis = vt[: min(k, vt.shape[0])].T
        return self

    def residual(self, x: FloatArray) -> FloatArray:
        centred = x - self.mean
        return centred - (centred @ self.basis) @ self.basis.T if self.basis.size else centred

    def spe(self, x: FloatArray) -> FloatArray:
        r = self.residual(x)
        return np.asarray((r**2).sum(axis=1), dtype=np.float64)

    def explain(self, row: FloatArray, names: list[str], limit: int = 3) -> list[dict[str, Any]]:
        r = self.residual(row[None, :])[0]
        top = np.argsort(-np.abs(r))[:limit]
        return [
            {"kind": "count_residual", "event": names[i], "count": int(row[i]), "residual": round(float(r[i]), 3)}
            for i in top
            if abs(r[i]) > 0.5
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"variance": self.variance, "mean": self.mean.tolist(), "basis": self.basis.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CountPCA:
        m = cls(float(d.get("variance", 0.95)))
        m.mean = np.asarray(d["mean"], dtype=np.float64)
        basis = np.asarray(d["basis"], dtype=np.float64)
        m.basis = basis.reshape(len(m.mean), -1) if basis.size else np.zeros((len(m.mean), 0))
        return m


class NextEvent:
    """Witten-Bell interpolated n-gram next-event model with start/end tokens."""

    def __init__(self, order: int = 3) -> None:
        self.order = order
        self.counts: dict[tuple[str, ...], Counter[str]] = {}
        self.vocab_size = 1

    def fit(self, sessions: Sequence[Sequence[str]]) -> NextEvent:
        self.counts = {}
        symbols: set[str] = set()
        for seq in sessions:
            padded = [START] * (self.order - 1) + list(seq) + [END]
            symbols.update(seq)
            for i in range(self.order - 1, len(padded)):
                for k in range(self.order):  # histories of length 0 .. order-1
                    h = tuple(padded[i - k : i])
                    self.counts.setdefault(h, Counter())[padded[i]] += 1
        self.vocab_size = len(symbols) + 2  # + END + one "unseen" symbol
        return self

    def prob(self, history: tuple[str, ...], sym: str) -> float:
        p = 1.0 / self.vocab_size
        for k in range(0, len(history) + 1):
            h = history[len(history) - k :] if k else ()
            c = self.counts.get(h)
            if c is None:
                break
            total = sum(c.values()) if len(c) < 64 else c.total()
            distinct = len(c)
            lam = total / (total + distinct)
            p = lam * c.get(sym, 0) / total + (1 - lam) * p
        return p

    def surprisals(self, seq: Sequence[str]) -> list[tuple[float, tuple[str, ...], str]]:
        """Per step: how much less likely the event is in its context than on its own
        (``log2 p(e) - log2 p(e | history)``), so a rare but context-free event scores ~0 and a
        common event in the wrong place (or an end of session after a missing step) scores high."""
        padded = [START] * (self.order - 1) + list(seq) + [END]
        out = []
        for i in range(self.order - 1, len(padded)):
            h = tuple(padded[i - self.order + 1 : i])
            sym = padded[i]
            out.append((math.log2(self.prob((), sym)) - math.log2(self.prob(h, sym)), h, sym))
        return out

    def score(self, seq: Sequence[str]) -> float:
        return max(s for s, _, _ in self.surprisals(seq))

    def explain(self, seq: Sequence[str], limit: int = 3) -> list[dict[str, Any]]:
        worst = sorted(self.surprisals(seq), key=lambda t: -t[0])[:limit]
        return [
            {"kind": "unlikely_next_event", "history": list(h), "next": sym, "probability": round(2.0**-s, 6)}
            for s, h, sym in worst
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "vocab_size": self.vocab_size,
            "counts": [[list(h), dict(c)] for h, c in self.counts.items()],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NextEvent:
        m = cls(int(d.get("order", 3)))
        m.vocab_size = int(d.get("vocab_size", 1))
        m.counts = {tuple(h): Counter({k: int(v) for k, v in c.items()}) for h, c in d.get("counts", [])}
        return m
