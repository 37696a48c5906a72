# SPDX-License-Identifier: Apache-2.0
"""An interpolated Kneser-Ney n-gram language model over syscall numbers.

Each trace is padded with ``order - 1`` start markers and closed by an end marker, so the model
also learns how processes begin and end. The highest order uses raw counts, lower orders use
continuation counts (how many distinct syscalls precede an n-gram), each order with its own
absolute discount ``D = n1 / (n1 + 2 n2)`` (Chen & Goodman 1998), interpolated down to a uniform
distribution over the vocabulary (the training syscalls, the end marker and one slot for every
unseen syscall). A trace's score is its mean negative log-likelihood per call (natural log,
end marker included): higher = more surprising = more anomalous.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

BOS = -1  # start marker (context only)
EOS = -2  # end marker (predicted once per trace)
UNK = -3  # every syscall the training traces never made

Gram = tuple[int, ...]


class KneserNeyModel:
    """Interpolated Kneser-Ney over syscall ids; ``score`` is mean NLL per call."""

    def __init__(self, order: int = 7) -> None:
        if not 2 <= order <= 12:
            raise ValueError(f"n-gram order must be 2..12, got {order}")
        self.order = order
        self.vocab: set[int] = {EOS, UNK}
        # grams[k]: (context of k-1 tokens + word) -> count; k = 1..order (index 0 unused).
        self.grams: list[dict[Gram, int]] = [{} for _ in range(order + 1)]
        # ctx[k]: context of k-1 tokens -> (sum of counts, distinct words)
        self.ctx: list[dict[Gram, tuple[int, int]]] = [{} for _ in range(order + 1)]
        self.discount: list[float] = [0.0] * (order + 1)
        self._cache: dict[Gram, float] = {}  # n-gram -> -log P, filled by surprisal

    # --- fitting --------------------------------------------------------------------
    def fit(self, sequences: Sequence[Sequence[int]], weights: Sequence[int] | None = None) -> KneserNeyModel:
        """Count every n-gram of ``sequences`` (each ``weights[i]`` times) and derive lower orders and discounts."""
        n = self.order
        top: Counter[Gram] = Counter()
        for j, seq in enumerate(sequences):
            times = 1 if weights is None else int(weights[j])
            self.vocab.update(int(t) for t in seq)
            padded = [BOS] * (n - 1) + [int(t) for t in seq] + [EOS]
            for i in range(n - 1, len(padded)):
                top[tuple(padded[i - n + 1 : i + 1])] += times
        self.grams[n] = dict(top)
        self._continuations()
        self._finish()
        return self

    def fit_counts(self, counts: Mapping[Any, int]) -> KneserNeyModel:
        """Learn from counted ``order``-grams (e.g. the kernel's syscall transitions for order 2)."""
        n = self.order
        top: Counter[Gram] = Counter()
        for g, c in counts.items():
            if len(g) != n:
                raise ValueError(f"expected {n}-grams, got {g!r}")
            if c > 0:
                key = tuple(int(t) for t in g)
                top[key] += int(c)
                self.vocab.update(t for t in key if t != BOS)
        self.grams[n] = dict(top)
        self._continuations()
        self._finish()
        return self

    def score_counts(self, counts: Mapping[Any, int]) -> float:
        """Count-weighted mean -log P(last | the rest) of counted ``order``-grams (0.0 when empty)."""
        total = 0
        nll = 0.0
        for g, c in counts.items():
            if c > 0:
                nll += c * -math.log(self.prob(g[:-1], g[-1]))
                total += c
        return nll / total if total else 0.0

    def _continuations(self) -> None:
        for k in range(self.order - 1, 0, -1):
            cont: Counter[Gram] = Counter()
            for g in self.grams[k + 1]:
                cont[g[1:]] += 1  # one more distinct left extension
            self.grams[k] = dict(cont)

    def _finish(self) -> None:
        self._cache.clear()
        for k in range(1, self.order + 1):
            totals: dict[Gram, list[int]] = defaultdict(lambda: [0, 0])
            n1 = n2 = 0
            for g, c in self.grams[k].items():
                t = totals[g[:-1]]
                t[0] += c
                t[1] += 1
                n1 += c == 1
                n2 += c == 2
            self.ctx[k] = {h: (v[0], v[1]) for h, v in totals.items()}
            d = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
            self.discount[k] = min(max(d, 0.05), 0.95)

    # --- probabilities --------------------------------------------------------------
    def _token(self, t: int) -> int:
        return t if t in self.vocab else UNK

    def prob(self, context: Sequence[int], word: int) -> float:
        """P(word | the last ``order - 1`` tokens of ``context``), interpolated over all orders."""
        n = self.order
        h = [BOS] * max(0, n - 1 - len(context)) + [self._token(int(t)) if t != BOS else BOS for t in context]
        hist = tuple(h[len(h) - (n - 1) :]) if n > 1 else ()
        w = self._token(int(word))
        p = 1.0 / len(self.vocab)
        for k in range(1, n + 1):
            c_h = hist[len(hist) - (k - 1) :] if k > 1 else ()
            stats = self.ctx[k].get(c_h)
            if stats is None:
                continue  # unseen context: all mass to the lower order
            total, types = stats
            d = self.discount[k]
            c = self.grams[k].get((*c_h, w), 0)
            p = max(c - d, 0.0) / total + d * types / total * p
        return p

    def surprisal(self, seq: Sequence[int]) -> list[float]:
        """-log P of each call of ``seq`` and of the end marker, in order."""
        n = self.order
        padded = [BOS] * (n - 1) + [self._token(int(t)) for t in seq] + [EOS]
        out = []
        uniform = 1.0 / len(self.vocab)
        grams, ctxs, disc = self.grams, self.ctx, self.discount
        cache = self._cache
        if len(cache) > 500_000:
            cache.clear()  # bounded memo: syscall traces repeat the same n-grams a lot
        for i in range(n - 1, len(padded)):
            key = tuple(padded[i - n + 1 : i + 1])
            nll = cache.get(key)
            if nll is None:
                p = uniform
                for k in range(1, n + 1):
                    c_h = key[n - k : n - 1]
                    stats = ctxs[k].get(c_h)
                    if stats is None:
                        break  # a longer context that contains this unseen one is unseen too
                    total, types = stats
                    d = disc[k]
                    c = grams[k].get(key[n - k :], 0)
                    p = max(c - d, 0.0) / total + d * types / total * p
                nll = cache[key] = -math.log(p)
            out.append(nll)
        return out

    def score(self, seq: Sequence[int]) -> float:
        """Mean negative log-likelihood per call (end marker included)."""
        s = self.surprisal(seq)
        return sum(s) / len(s)

    # --- persistence ----------------------------------------------------------------
    def arrays(self, prefix: str = "kn") -> dict[str, npt.NDArray[Any]]:
        """Flat int32 arrays of every order's n-grams and counts (for an ``.npz``)."""
        import numpy as np

        out: dict[str, npt.NDArray[Any]] = {
            f"{prefix}_vocab": np.array(sorted(self.vocab), dtype=np.int32),
            f"{prefix}_order": np.array([self.order], dtype=np.int32),
        }
        for k in range(1, self.order + 1):
            items = self.grams[k]
            g = np.array(list(items), dtype=np.int16).reshape(len(items), k)
            out[f"{prefix}_g{k}"] = g
            out[f"{prefix}_c{k}"] = np.fromiter(items.values(), dtype=np.int32, count=len(items))
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[Any]], prefix: str = "kn") -> KneserNeyModel:
        """Rebuild a model written by ``arrays``."""
        model = cls(int(arrays[f"{prefix}_order"][0]))
        model.vocab = {int(v) for v in arrays[f"{prefix}_vocab"].tolist()}
        for k in range(1, model.order + 1):
            g = arrays[f"{prefix}_g{k}"].tolist()
            c = arrays[f"{prefix}_c{k}"].tolist()
            if len(g) != len(c):
                raise ValueError(f"order {k}: {len(g)} n-grams but {len(c)} counts")
            model.grams[k] = {tuple(row): int(v) for row, v in zip(g, c, strict=True)}
        model._finish()
        return model
