# SPDX-License-Identifier: Apache-2.0
"""The combined syscall-sequence model: three views, calibrated by cross-fitting, rank-averaged.

Views (each "higher = more anomalous"):

- ``kn``: mean negative log-likelihood per call under an interpolated Kneser-Ney n-gram model
  (``seqlm.py``, order 7 by default);
- ``cover``: longest-match covering by the training traces (``seqcover.py``);
- ``bag``: TF-IDF 1-3-gram nearest-neighbour cosine distance (``seqbag.py``).

Calibration (k-fold cross-fitting): the training traces are split into ``folds`` folds; each
fold is scored by views fitted on the other folds, so every training trace gets the scores an
unseen normal trace would get. Each view's held-out scores are its reference distribution: a
new trace's view score becomes the share of reference scores below it (a percentile, ties
counted half). The combined score is the mean percentile over the views (rank averaging), and
the ``anomalous`` threshold is the ``1 - target_fpr`` quantile of the training traces' combined
held-out scores, so on normal traces like the training ones about ``target_fpr`` of traces are
flagged. A trace's percentiles above every reference score are extended by how far beyond the
reference maximum it lies, so far-out traces still rank above merely unusual ones.

The model file is an ``.npz`` (no pickle): a JSON header (settings, threshold), the
de-duplicated training traces (the views are rebuilt from them on load) and the held-out
reference scores.
"""

from __future__ import annotations

import io
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.behavior.seqbag import TfidfNeighbours
from agent.behavior.seqcover import SuffixAutomaton
from agent.behavior.seqlm import KneserNeyModel

SEQ_FORMAT = 1
KIND = "syscall-sequence"
VIEWS = ("kn", "cover", "bag")


class SequenceModelError(ValueError):
    """A model file or a training set that cannot be used."""


@dataclass(frozen=True, slots=True)
class SequenceSettings:
    """Knobs of the combined model (the CLI's ``syscalls fit`` options)."""

    order: int = 8
    bag_n: int = 3
    cover_k: int = 8  # 0: mean 1/(1 + longest match); k > 0: share of calls no match of length >= k covers
    length_adjust: bool = False  # calibrate each view's residual after a linear trend on log(1 + length)
    folds: int = 5
    target_fpr: float = 0.01
    views: tuple[str, ...] = VIEWS
    seed: int = 42

    def check(self) -> None:
        """Raise ``SequenceModelError`` on settings that cannot work."""
        if not 2 <= self.order <= 12:
            raise SequenceModelError(f"order must be 2..12, got {self.order}")
        if not 0 <= self.cover_k <= 64:
            raise SequenceModelError(f"cover_k must be 0..64, got {self.cover_k}")
        if not 2 <= self.folds <= 50:
            raise SequenceModelError(f"folds must be 2..50, got {self.folds}")
        if not 0.0 < self.target_fpr < 0.5:
            raise SequenceModelError(f"target FPR must be in (0, 0.5), got {self.target_fpr}")
        unknown = set(self.views) - set(VIEWS)
        if unknown or not self.views:
            raise SequenceModelError(f"views must be a non-empty subset of {', '.join(VIEWS)}, got {self.views}")


class _Views:
    """The fitted views on one training set."""

    def __init__(self, sequences: Sequence[Sequence[int]], settings: SequenceSettings) -> None:
        self.kn = KneserNeyModel(settings.order).fit(sequences) if "kn" in settings.views else None
        self.cover = SuffixAutomaton(sequences) if "cover" in settings.views else None
        self.bag = TfidfNeighbours(settings.bag_n).fit(sequences) if "bag" in settings.views else None
        self.names = settings.views
        self.cover_k = settings.cover_k

    def score(self, seq: Sequence[int]) -> list[float]:
        out = []
        for name in self.names:
            view: KneserNeyModel | SuffixAutomaton | TfidfNeighbours | None = getattr(self, name)
            assert view is not None
            if isinstance(view, SuffixAutomaton) and self.cover_k:
                out.append(view.uncovered(seq, self.cover_k))
            else:
                out.append(view.score(seq))
        return out


@dataclass(frozen=True, slots=True)
class TraceScore:
    """The verdict on one trace: combined score, threshold, and each view's raw and calibrated score."""

    score: float
    threshold: float
    anomalous: bool
    views: dict[str, tuple[float, float]]  # name -> (raw score, percentile)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 6),
            "threshold": round(self.threshold, 6),
            "anomalous": self.anomalous,
            "views": {k: {"raw": round(r, 6), "percentile": round(p, 6)} for k, (r, p) in self.views.items()},
        }


@dataclass
class SequenceModel:
    """Fitted views plus their held-out reference scores and the calibrated threshold."""

    settings: SequenceSettings
    traces: list[list[int]]  # de-duplicated training traces
    reference: dict[str, list[float]]  # view -> sorted held-out scores (residuals with length_adjust)
    threshold: float
    trend: dict[str, tuple[float, float]] = field(default_factory=dict)  # view -> (intercept, slope)
    meta: dict[str, Any] = field(default_factory=dict)
    _views: _Views | None = None

    # --- fitting ----------------------------------------------------------------------
    @classmethod
    def fit(cls, sequences: Sequence[Sequence[int]], settings: SequenceSettings | None = None) -> SequenceModel:
        """Cross-fit the views on ``sequences`` (normal traces), calibrate, and fit on them all."""
        settings = settings or SequenceSettings()
        settings.check()
        seqs = [[int(t) for t in s] for s in sequences if len(s) > 0]
        if len(seqs) < settings.folds:
            raise SequenceModelError(f"need at least {settings.folds} non-empty traces (one per fold), got {len(seqs)}")
        started = time.perf_counter()
        order = list(range(len(seqs)))
        random.Random(settings.seed).shuffle(order)
        fold_of = {idx: pos % settings.folds for pos, idx in enumerate(order)}
        held: list[list[float]] = [[] for _ in seqs]
        for f in range(settings.folds):
            train = [s for i, s in enumerate(seqs) if fold_of[i] != f]
            views = _Views(_dedupe(train), settings)
            for i, s in enumerate(seqs):
                if fold_of[i] == f:
                    held[i] = views.score(s)
        lengths = [len(s) for s in seqs]
        trend = {}
        for j, name in enumerate(settings.views):
            trend[name] = _trend(lengths, [row[j] for row in held]) if settings.length_adjust else (0.0, 0.0)
        reference = {
            name: sorted(row[j] - _expected(trend[name], n) for row, n in zip(held, lengths, strict=True))
            for j, name in enumerate(settings.views)
        }
        model = cls(settings=settings, traces=_dedupe(seqs), reference=reference, threshold=0.0, trend=trend)
        combined = sorted(model.combine(row, n)[0] for row, n in zip(held, lengths, strict=True))
        model.threshold = _quantile(combined, 1.0 - settings.target_fpr)
        model._views = _Views(model.traces, settings)
        model.meta = {
            "fit_seconds": round(time.perf_counter() - started, 3),
            "training_traces": len(seqs),
            "distinct_traces": len(model.traces),
            "training_calls": sum(len(s) for s in seqs),
        }
        return model

    # --- scoring ----------------------------------------------------------------------
    def _percentile(self, name: str, value: float) -> float:
        import bisect

        ref = self.reference[name]
        lo = bisect.bisect_left(ref, value)
        hi = bisect.bisect_right(ref, value)
        p = (lo + 0.5 * (hi - lo)) / len(ref)
        if lo == len(ref):
            # Beyond every reference score: extend smoothly by the excess over the reference spread.
            spread = (ref[-1] - ref[0]) or abs(ref[-1]) or 1.0
            p = 1.0 + min((value - ref[-1]) / spread, 1.0)
        return p

    def combine(self, raw: Sequence[float], length: int) -> tuple[float, list[float]]:
        """The combined score (mean percentile) of one trace's raw view scores, and the percentiles."""
        pct = [
            self._percentile(name, v - _expected(self.trend.get(name, (0.0, 0.0)), length))
            for name, v in zip(self.settings.views, raw, strict=True)
        ]
        return sum(pct) / len(pct), pct

    @property
    def views(self) -> _Views:
        if self._views is None:
            self._views = _Views(self.traces, self.settings)
        return self._views

    def raw_scores(self, seq: Sequence[int]) -> list[float]:
        """Each view's raw score of ``seq``, in ``settings.views`` order."""
        return self.views.score(seq)

    def score(self, seq: Sequence[int]) -> TraceScore:
        """Score one trace: combined score, calibrated verdict, per-view details."""
        raw = self.raw_scores(seq)
        combined, pct = self.combine(raw, len(seq))
        return TraceScore(
            score=combined,
            threshold=self.threshold,
            anomalous=combined > self.threshold,
            views={n: (r, p) for n, r, p in zip(self.settings.views, raw, pct, strict=True)},
        )

    # --- persistence ------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """An ``.npz`` blob: JSON header, concatenated training traces with offsets, references."""
        import numpy as np

        s = self.settings
        header = {
            "format": SEQ_FORMAT,
            "kind": KIND,
            "arch": self.meta.get("arch", "x86_64"),
            "order": s.order,
            "bag_n": s.bag_n,
            "cover_k": s.cover_k,
            "length_adjust": s.length_adjust,
            "trend": {k: list(v) for k, v in self.trend.items()},
            "folds": s.folds,
            "target_fpr": s.target_fpr,
            "views": list(s.views),
            "seed": s.seed,
            "threshold": self.threshold,
            "meta": self.meta,
        }
        lengths = np.array([len(t) for t in self.traces], dtype=np.int64)
        flat = np.fromiter((v for t in self.traces for v in t), dtype=np.int16, count=int(lengths.sum()))
        arrays: dict[str, Any] = {
            "header": np.array(json.dumps(header)),
            "calls": flat,
            "lengths": lengths,
        }
        for name in s.views:
            arrays[f"ref_{name}"] = np.asarray(self.reference[name], dtype=np.float64)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> SequenceModel:
        """Load a blob written by ``to_bytes``; ``SequenceModelError`` when it cannot be used."""
        import numpy as np

        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            header = json.loads(str(arrays["header"]))
            if header.get("kind") != KIND or header.get("format") != SEQ_FORMAT:
                raise SequenceModelError(
                    f"not a syscall sequence model (kind={header.get('kind')!r}, format={header.get('format')!r})"
                )
            settings = SequenceSettings(
                order=int(header["order"]),
                bag_n=int(header["bag_n"]),
                cover_k=int(header.get("cover_k", 0)),
                length_adjust=bool(header.get("length_adjust", False)),
                folds=int(header["folds"]),
                target_fpr=float(header["target_fpr"]),
                views=tuple(str(v) for v in header["views"]),
                seed=int(header["seed"]),
            )
            settings.check()
            lengths = arrays["lengths"].astype(np.int64)
            flat = arrays["calls"].astype(np.int64).tolist()
            if int(lengths.sum()) != len(flat) or (lengths < 1).any():
                raise SequenceModelError("trace lengths do not add up to the stored calls")
            traces, pos = [], 0
            for n in lengths.tolist():
                traces.append(flat[pos : pos + n])
                pos += n
            reference = {name: arrays[f"ref_{name}"].astype(float).tolist() for name in settings.views}
            if any(not r for r in reference.values()):
                raise SequenceModelError("empty reference scores")
            meta = dict(header.get("meta", {}))
            meta["arch"] = str(header.get("arch", "x86_64"))
            trend = {str(k): (float(v[0]), float(v[1])) for k, v in dict(header.get("trend", {})).items()}
            return cls(
                settings=settings,
                traces=traces,
                reference=reference,
                threshold=float(header["threshold"]),
                trend=trend,
                meta=meta,
            )
        except SequenceModelError:
            raise
        except Exception as exc:  # zip, JSON, key and dtype errors all mean "unusable"
            raise SequenceModelError(f"unreadable syscall sequence model: {exc!r}") from None


def _expected(trend: tuple[float, float], length: int) -> float:
    return trend[0] + trend[1] * math.log1p(length)


def _trend(lengths: Sequence[int], scores: Sequence[float]) -> tuple[float, float]:
    """Least-squares intercept and slope of ``scores`` on log(1 + length)."""
    xs = [math.log1p(n) for n in lengths]
    mx, my = sum(xs) / len(xs), sum(scores) / len(scores)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0.0:
        return (my, 0.0)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, scores, strict=True)) / sxx
    return (my - slope * mx, slope)


def _dedupe(seqs: Sequence[list[int]]) -> list[list[int]]:
    seen: set[tuple[int, ...]] = set()
    out = []
    for s in seqs:
        key = tuple(s)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted ``values`` (numpy's default method)."""
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)
