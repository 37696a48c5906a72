# SPDX-License-Identifier: Apache-2.0
"""Longest-match covering of a trace by the training traces, through a suffix automaton.

The automaton (Blumer et al. 1985) holds every substring of every training trace (traces joined
by a separator that no trace contains, so no match crosses two traces) in at most twice as many
states as training calls. Walking a new trace through it gives, at each position, the length of
the longest training substring that ends there. The covering score is the mean over positions
of ``1 / (1 + match length)``: a trace made of long known stretches scores near 0, one whose
calls fit no known context scores near 1/2 or more; higher = more anomalous.
"""

from __future__ import annotations

from collections.abc import Sequence

SEP = 4096  # above every syscall number (parse_trace rejects > 4095)


class SuffixAutomaton:
    """A suffix automaton over many sequences; ``match_lengths`` walks a query through it."""

    def __init__(self, sequences: Sequence[Sequence[int]] = ()) -> None:
        self.length: list[int] = [0]
        self.link: list[int] = [-1]
        self.trans: list[dict[int, int]] = [{}]
        self._last = 0
        for seq in sequences:
            self.add(seq)

    def add(self, seq: Sequence[int]) -> None:
        """Add one sequence, closed by the separator."""
        for tok in seq:
            self._extend(int(tok))
        self._extend(SEP)

    def _extend(self, tok: int) -> None:
        length, link, trans = self.length, self.link, self.trans
        cur = len(length)
        length.append(length[self._last] + 1)
        link.append(0)
        trans.append({})
        p = self._last
        while p != -1 and tok not in trans[p]:
            trans[p][tok] = cur
            p = link[p]
        if p != -1:
            q = trans[p][tok]
            if length[p] + 1 == length[q]:
                link[cur] = q
            else:
                clone = len(length)
                length.append(length[p] + 1)
                link.append(link[q])
                trans.append(dict(trans[q]))
                while p != -1 and trans[p].get(tok) == q:
                    trans[p][tok] = clone
                    p = link[p]
                link[q] = clone
                link[cur] = clone
        self._last = cur

    def match_lengths(self, seq: Sequence[int]) -> list[int]:
        """Length of the longest training substring ending at each position of ``seq``."""
        length, link, trans = self.length, self.link, self.trans
        state = cur = 0
        out = []
        for t in seq:
            tok = int(t)
            while state and tok not in trans[state]:
                state = link[state]
                cur = length[state]
            s = trans[state].get(tok)
            if s is None:
                state = cur = 0
            else:
                state = s
                cur += 1
            out.append(cur)
        return out

    def score(self, seq: Sequence[int]) -> float:
        """Mean over positions of 1 / (1 + longest match ending there); 1.0 for an empty trace."""
        lengths = self.match_lengths(seq)
        if not lengths:
            return 1.0
        return sum(1.0 / (1 + v) for v in lengths) / len(lengths)

    def uncovered(self, seq: Sequence[int], k: int) -> float:
        """Share of calls that no training substring of length >= k (or the whole trace, if shorter) covers."""
        lengths = self.match_lengths(seq)
        n = len(lengths)
        if n == 0:
            return 1.0
        need = min(k, n)
        start = n  # leftmost start of a qualifying match ending at or after the current position
        missed = 0
        for j in range(n - 1, -1, -1):
            if lengths[j] >= need:
                start = min(start, j - lengths[j] + 1)
            missed += start > j
        return missed / n

    @property
    def states(self) -> int:
        return len(self.length)
