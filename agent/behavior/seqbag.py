# SPDX-License-Identifier: Apache-2.0
"""Bag-of-n-grams view of a trace: TF-IDF over 1- to 3-grams, nearest-neighbour cosine distance.

Each training trace becomes a sparse vector of sublinear term frequencies (1 + log tf) times
smoothed inverse document frequencies (``log((1 + N) / (1 + df)) + 1``), L2-normalised. A new
trace's n-grams that no training trace contains keep the largest idf (df = 0), so they lengthen
its vector without matching anything. The score is ``1 - max cosine similarity`` to any
training trace: 0 for a trace seen in training, up to 1 for a trace sharing no n-gram.
Similarities come from an inverted index in numpy arrays (no scipy needed to score).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any


def ngram_counts(seq: Sequence[int], max_n: int) -> Counter[tuple[int, ...]]:
    """Counts of every 1..max_n-gram of ``seq``."""
    s = [int(t) for t in seq]
    out: Counter[tuple[int, ...]] = Counter()
    for n in range(1, max_n + 1):
        out.update(tuple(s[i : i + n]) for i in range(len(s) - n + 1))
    return out


class TfidfNeighbours:
    """TF-IDF vectors of the training traces; ``score`` is the cosine distance to the nearest."""

    def __init__(self, max_n: int = 3) -> None:
        if not 1 <= max_n <= 6:
            raise ValueError(f"bag-of-n-grams order must be 1..6, got {max_n}")
        self.max_n = max_n
        self.index: dict[tuple[int, ...], int] = {}
        self.idf: list[float] = []
        self.unseen_idf = 1.0
        self.docs = 0
        self.indptr: Any = None  # numpy arrays of the inverted index (see fit_bags)
        self.rows: Any = None
        self.weights: Any = None

    def fit(self, sequences: Sequence[Sequence[int]]) -> TfidfNeighbours:
        """Build the vocabulary, idf weights and the normalised training matrix."""
        return self.fit_bags([ngram_counts(s, self.max_n) for s in sequences])

    def fit_bags(self, bags: Sequence[Mapping[Any, int]]) -> TfidfNeighbours:
        """``fit`` on bags of terms already counted (e.g. a window's syscall transitions)."""
        import numpy as np

        bags = [{g: c for g, c in b.items() if c > 0} for b in bags]
        df: Counter[Any] = Counter()
        for b in bags:
            df.update(b.keys())
        self.index = {g: i for i, g in enumerate(sorted(df))}
        self.docs = n = len(bags)
        self.idf = [0.0] * len(self.index)
        for g, i in self.index.items():
            self.idf[i] = math.log((1 + n) / (1 + df[g])) + 1.0
        self.unseen_idf = math.log(1 + n) + 1.0
        # Inverted index (term -> the training traces holding it, with their normalised weights),
        # CSC-like: a query's similarities are one bincount over its terms' postings.
        postings: list[list[tuple[int, float]]] = [[] for _ in self.index]
        for r, b in enumerate(bags):
            v = [(self.index[g], (1.0 + math.log(c)) * self.idf[self.index[g]]) for g, c in b.items()]
            norm = math.sqrt(sum(x * x for _, x in v)) or 1.0
            for col, x in v:
                postings[col].append((r, x / norm))
        self.indptr = np.zeros(len(postings) + 1, dtype=np.int64)
        self.indptr[1:] = np.cumsum([len(p) for p in postings])
        self.rows = np.fromiter((r for p in postings for r, _ in p), dtype=np.int32, count=int(self.indptr[-1]))
        self.weights = np.fromiter((x for p in postings for _, x in p), dtype=np.float64, count=int(self.indptr[-1]))
        return self

    def score(self, seq: Sequence[int]) -> float:
        """1 - the largest cosine similarity to a training trace (1.0 for an empty trace)."""
        return self.score_bag(ngram_counts(seq, self.max_n))

    def score_bag(self, bag: Mapping[Any, int]) -> float:
        """``score`` of a bag of counted terms (numpy only)."""
        import numpy as np

        cols: list[int] = []
        qw: list[float] = []
        sq = 0.0
        for g, c in bag.items():
            if c <= 0:
                continue
            i = self.index.get(g)
            w = (1.0 + math.log(c)) * (self.idf[i] if i is not None else self.unseen_idf)
            sq += w * w
            if i is not None:
                cols.append(i)
                qw.append(w)
        if sq == 0.0 or self.docs == 0:
            return 1.0
        if not cols:
            return 1.0
        cix = np.asarray(cols, dtype=np.int64)
        starts = self.indptr[cix]
        lengths = self.indptr[cix + 1] - starts
        # Every posting of the query's terms, without a Python loop: position k of term j is
        # starts[j] + (k - first output index of term j).
        take = np.arange(int(lengths.sum())) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        sims = np.bincount(self.rows[take], weights=self.weights[take] * np.repeat(qw, lengths), minlength=self.docs)
        best = float(sims.max()) / math.sqrt(sq)
        # Rounded, so traces with the same bag (equal distances up to float summation order) tie.
        return round(max(0.0, 1.0 - min(best, 1.0)), 9)
