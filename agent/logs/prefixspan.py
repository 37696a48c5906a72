# SPDX-License-Identifier: Apache-2.0
"""PrefixSpan (Pei et al., 2001) over sequences of hashable symbols, vectorised with numpy.

A pattern is a subsequence (gaps allowed); its support is the number of sequences containing it.
``frequent_patterns`` returns every pattern with support ≥ ``min_support`` up to ``max_len``
symbols, by support (descending) then symbol name.

A projected database is two arrays: the sequences that contain the prefix and, for each, the
position where the prefix's earliest match ends (pseudo-projection). Support of every extension
is one comparison against a (sequence x symbol) table of last occurrences; projecting on a
symbol is one ``searchsorted`` over that symbol's occurrences flattened as ``seq * W + pos``.
Only symbols frequent on their own are considered (the Apriori property).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

S = TypeVar("S", bound=Hashable)
IntArray = npt.NDArray[np.int64]


def frequent_patterns(
    sequences: Sequence[Sequence[S]],
    min_support: int,
    max_len: int = 4,
    max_patterns: int = 10_000,
) -> list[tuple[tuple[S, ...], int]]:
    """All (pattern, support) with support ≥ ``min_support`` (at most ``max_patterns``)."""
    min_support = max(1, min_support)
    single: Counter[S] = Counter()
    for seq in sequences:
        single.update(set(seq))
    alphabet = sorted((s for s, c in single.items() if c >= min_support), key=str)
    if not alphabet or max_len < 1:
        return []
    index = {s: i for i, s in enumerate(alphabet)}
    n, k = len(sequences), len(alphabet)
    width = max(len(s) for s in sequences) + 1
    last = np.full((n, k), -1, dtype=np.int64)
    occ: list[list[int]] = [[] for _ in range(k)]
    for si, seq in enumerate(sequences):
        base = si * width
        for p, sym in enumerate(seq):
            j = index.get(sym)
            if j is not None:
                last[si, j] = p
                occ[j].append(base + p)
    flat = [np.asarray(o, dtype=np.int64) for o in occ]  # sorted: si, then p, ascending
    names = [str(s) for s in alphabet]
    results: list[tuple[tuple[S, ...], int]] = []

    def grow(prefix: tuple[S, ...], rows: IntArray, pos: IntArray) -> None:
        counts = (last[rows] > pos[:, None]).sum(axis=0)
        order = sorted((j for j in range(k) if counts[j] >= min_support), key=lambda j: (-int(counts[j]), names[j]))
        for j in order:
            if len(results) >= max_patterns:
                return
            pattern = (*prefix, alphabet[j])
            results.append((pattern, int(counts[j])))
            if len(pattern) >= max_len:
                continue
            f = flat[j]
            q = rows * width + pos + 1
            at = np.searchsorted(f, q)
            inside = at < len(f)
            at_ok = np.where(inside, at, 0)
            hit = inside & (f[at_ok] < (rows + 1) * width)
            new_rows = rows[hit]
            grow(pattern, new_rows, f[at_ok[hit]] - new_rows * width)

    grow((), np.arange(n, dtype=np.int64), np.full(n, -1, dtype=np.int64))
    return results


def contains(sequence: Sequence[S], pattern: Sequence[S]) -> bool:
    """Whether ``pattern`` is a (gapped) subsequence of ``sequence``."""
    it = iter(sequence)
    return all(any(sym == x for x in it) for sym in pattern)
