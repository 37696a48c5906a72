# SPDX-License-Identifier: Apache-2.0
"""PrefixSpan (Pei et al., 2001) over sequences of hashable symbols, with pseudo-projection.

A pattern is a subsequence (gaps allowed); its support is the number of sequences containing it.
``frequent_patterns`` returns every pattern with support ≥ ``min_support`` up to ``max_len``
symbols. Projected databases are lists of (sequence index, start position), never copies.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

S = TypeVar("S", bound=Hashable)


def frequent_patterns(
    sequences: Sequence[Sequence[S]],
    min_support: int,
    max_len: int = 4,
    max_patterns: int = 10_000,
) -> list[tuple[tuple[S, ...], int]]:
    """All (pattern, support) with support ≥ ``min_support``, longest-first within equal support."""
    if min_support < 1:
        min_support = 1
    results: list[tuple[tuple[S, ...], int]] = []
    # Position of each symbol's occurrences per sequence, so projecting is a bisect, not a scan.
    first_after: list[dict[S, list[int]]] = []
    for seq in sequences:
        where: dict[S, list[int]] = {}
        for i, sym in enumerate(seq):
            where.setdefault(sym, []).append(i)
        first_after.append(where)

    from bisect import bisect_left

    def grow(prefix: tuple[S, ...], projected: list[tuple[int, int]]) -> None:
        if len(results) >= max_patterns or len(prefix) >= max_len:
            return
        # Count each symbol once per sequence, over the suffixes.
        counts: dict[S, int] = {}
        for si, start in projected:
            seen: set[S] = set()
            seq = sequences[si]
            for j in range(start, len(seq)):
                sym = seq[j]
                if sym not in seen:
                    seen.add(sym)
                    counts[sym] = counts.get(sym, 0) + 1
        for sym, support in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0]))):
            if support < min_support:
                continue
            pattern = (*prefix, sym)
            results.append((pattern, support))
            if len(results) >= max_patterns:
                return
            nxt: list[tuple[int, int]] = []
            for si, start in projected:
                occ = first_after[si].get(sym)
                if not occ:
                    continue
                k = bisect_left(occ, start)
                if k < len(occ):
                    nxt.append((si, occ[k] + 1))
            grow(pattern, nxt)

    grow((), [(i, 0) for i in range(len(sequences))])
    return results


def contains(sequence: Sequence[S], pattern: Sequence[S]) -> bool:
    """Whether ``pattern`` is a (gapped) subsequence of ``sequence``."""
    it = iter(sequence)
    return all(any(sym == x for x in it) for sym in pattern)
