# SPDX-License-Identifier: Apache-2.0
"""A small GRU language model over syscall ids in numpy (CPU, minutes), for the benchmark only.

The issue's "beyond the classics" goal: does a small recurrent model beat the Kneser-Ney n-gram
view on the recorded traces? Each trace is cut into chunks of ``chunk`` calls (a start marker,
the calls, an end marker on the last chunk); every chunk starts from a zero state, in training
and in scoring alike. One GRU layer (embedding ``dim``, state ``hidden``), softmax over the
training vocabulary plus one slot for unseen syscalls, Adam, full back-propagation through the
chunk. A trace's score is its mean negative log-likelihood per call, like the KN view.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

Array = Any


def _sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


class GruLm:
    """One-layer GRU language model; ``fit`` on traces, ``score`` = mean NLL per call."""

    def __init__(self, dim: int = 24, hidden: int = 48, chunk: int = 48, seed: int = 0) -> None:
        self.dim, self.hidden, self.chunk, self.seed = dim, hidden, chunk, seed
        self.index: dict[int, int] = {}
        self.p: dict[str, Array] = {}

    # token ids: 0 = start, 1 = end, 2 = unseen, 3.. = syscalls
    def _ids(self, seq: Sequence[int]) -> list[int]:
        return [self.index.get(int(t), 2) for t in seq]

    def _chunks(self, seq: Sequence[int]) -> list[tuple[list[int], list[int]]]:
        ids = [0, *self._ids(seq), 1]
        out = []
        for s in range(0, len(ids) - 1, self.chunk):
            inp = ids[s : s + self.chunk]
            tgt = ids[s + 1 : s + 1 + self.chunk]
            out.append((inp[: len(tgt)], tgt))
        return out

    def _init(self, vocab: int) -> None:
        rng = np.random.default_rng(self.seed)
        d, h = self.dim, self.hidden

        def u(*shape: int) -> Array:
            return rng.uniform(-1, 1, shape) / math.sqrt(shape[0])

        self.p = {
            "E": rng.normal(0, 0.1, (vocab, d)),
            "Wz": u(d + h, h), "bz": np.zeros(h),
            "Wr": u(d + h, h), "br": np.zeros(h),
            "Wh": u(d + h, h), "bh": np.zeros(h),
            "Wo": u(h, vocab), "bo": np.zeros(vocab),
        }  # fmt: skip

    def _forward(self, inp: Array, tgt: Array, mask: Array, grads: bool) -> tuple[float, Array, dict[str, Array]]:
        """Loss summed over unmasked steps, per-step NLL (B, T), and gradients when asked."""
        p = self.p
        b, t_len = inp.shape
        h = np.zeros((b, self.hidden))
        cache = []
        nll = np.zeros((b, t_len))
        dlogits = []
        for t in range(t_len):
            x = p["E"][inp[:, t]]
            xh = np.concatenate([x, h], axis=1)
            z = _sigmoid(xh @ p["Wz"] + p["bz"])
            r = _sigmoid(xh @ p["Wr"] + p["br"])
            xrh = np.concatenate([x, r * h], axis=1)
            hh = np.tanh(xrh @ p["Wh"] + p["bh"])
            h_new = (1 - z) * h + z * hh
            logits = h_new @ p["Wo"] + p["bo"]
            logits -= logits.max(axis=1, keepdims=True)
            e = np.exp(logits)
            prob = e / e.sum(axis=1, keepdims=True)
            nll[:, t] = -np.log(prob[np.arange(b), tgt[:, t]] + 1e-12)
            if grads:
                g = prob
                g[np.arange(b), tgt[:, t]] -= 1.0
                dlogits.append(g * mask[:, t : t + 1])
                cache.append((xh, z, r, xrh, hh, h, h_new))
            h = h_new
        loss = float((nll * mask).sum())
        if not grads:
            return loss, nll, {}
        gr = {k: np.zeros_like(v) for k, v in p.items()}
        dh_next = np.zeros((b, self.hidden))
        d = self.dim
        for t in reversed(range(t_len)):
            xh, z, r, xrh, hh, h_prev, h_new = cache[t]
            gr["Wo"] += h_new.T @ dlogits[t]
            gr["bo"] += dlogits[t].sum(axis=0)
            dh = dlogits[t] @ p["Wo"].T + dh_next
            dhh = dh * z * (1 - hh**2)
            dz = dh * (hh - h_prev) * z * (1 - z)
            gr["Wh"] += xrh.T @ dhh
            gr["bh"] += dhh.sum(axis=0)
            dxrh = dhh @ p["Wh"].T
            drh = dxrh[:, d:]
            dr = drh * h_prev * r * (1 - r)
            gr["Wz"] += xh.T @ dz
            gr["bz"] += dz.sum(axis=0)
            gr["Wr"] += xh.T @ dr
            gr["br"] += dr.sum(axis=0)
            dxh = dz @ p["Wz"].T + dr @ p["Wr"].T
            dx = dxh[:, :d] + dxrh[:, :d]
            dh_next = dh * (1 - z) + drh * r + dxh[:, d:]
            np.add.at(gr["E"], inp[:, t], dx)
        return loss, nll, gr

    @staticmethod
    def _batch(chunks: Sequence[tuple[list[int], list[int]]]) -> tuple[Array, Array, Array]:
        t_len = max(len(c[1]) for c in chunks)
        inp = np.zeros((len(chunks), t_len), dtype=np.int64)
        tgt = np.zeros((len(chunks), t_len), dtype=np.int64)
        mask = np.zeros((len(chunks), t_len))
        for i, (a, b) in enumerate(chunks):
            inp[i, : len(a)] = a
            tgt[i, : len(b)] = b
            mask[i, : len(b)] = 1.0
        return inp, tgt, mask

    def fit(self, sequences: Sequence[Sequence[int]], epochs: int = 6, batch: int = 64, lr: float = 0.01) -> GruLm:
        vocab = sorted({int(t) for s in sequences for t in s})
        self.index = {v: i + 3 for i, v in enumerate(vocab)}
        self._init(len(vocab) + 3)
        chunks = [c for s in sequences for c in self._chunks(s)]
        rng = random.Random(self.seed)
        m = {k: np.zeros_like(v) for k, v in self.p.items()}
        v2 = {k: np.zeros_like(v) for k, v in self.p.items()}
        step = 0
        for _ in range(epochs):
            rng.shuffle(chunks)
            for s in range(0, len(chunks), batch):
                inp, tgt, mask = self._batch(chunks[s : s + batch])
                _, _, gr = self._forward(inp, tgt, mask, grads=True)
                step += 1
                n = mask.sum()
                for k in self.p:
                    g = np.clip(gr[k] / n, -5, 5)
                    m[k] = 0.9 * m[k] + 0.1 * g
                    v2[k] = 0.999 * v2[k] + 0.001 * g * g
                    mh = m[k] / (1 - 0.9**step)
                    vh = v2[k] / (1 - 0.999**step)
                    self.p[k] -= lr * mh / (np.sqrt(vh) + 1e-8)
        return self

    def score_many(self, sequences: Sequence[Sequence[int]], batch: int = 256) -> list[float]:
        """Mean NLL per call (end marker included) of each sequence."""
        owner, chunks = [], []
        for i, s in enumerate(sequences):
            for c in self._chunks(s):
                owner.append(i)
                chunks.append(c)
        total = np.zeros(len(sequences))
        count = np.zeros(len(sequences))
        for s in range(0, len(chunks), batch):
            inp, tgt, mask = self._batch(chunks[s : s + batch])
            _, nll, _ = self._forward(inp, tgt, mask, grads=False)
            np.add.at(total, owner[s : s + batch], (nll * mask).sum(axis=1))
            np.add.at(count, owner[s : s + batch], mask.sum(axis=1))
        return (total / np.maximum(count, 1)).tolist()
