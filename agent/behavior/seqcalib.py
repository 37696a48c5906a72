# SPDX-License-Identifier: Apache-2.0
"""Cross-fitted percentile calibration and rank averaging, shared by the sequence models.

``cross_fit`` splits the normal items into ``folds`` folds and scores each fold with views
fitted on the others, so every training item gets the score an unseen normal item would get.
``RankCalibration`` keeps those held-out scores per view as reference distributions: a raw
score becomes the share of reference scores below it (ties count half), extended above 1 by
how far beyond the reference maximum it lies (relative to the reference spread, at most +1),
so far-out items still rank above merely unusual ones. The combined score is the mean
percentile over the views; the threshold is the conformal ``1 - target_fpr`` quantile of the
held-out items' combined scores: the ``ceil((n + 1)(1 - target_fpr))``-th smallest of ``n``, so a
new normal item exchangeable with them exceeds it with probability at most ``target_fpr``.

With labels (the program a trace ran, Mondrian conformal calibration): a label with at least
``ceil(1 / target_fpr) - 1`` held-out items (the fewest for which that quantile exists) gets its
own threshold from its own items, so a program whose normal traces vary more (a scheduler whose
jobs depend on the wall clock) is judged against its own spread and one that varies less keeps
a tighter bound; other labels use the pooled threshold.
"""

from __future__ import annotations

import bisect
import io
import json
import math
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def cross_fit(
    items: Sequence[T],
    folds: int,
    seed: int,
    fit: Callable[[list[T]], Callable[[T], list[float]]],
    groups: Sequence[Hashable] | None = None,
) -> list[list[float]]:
    """Held-out raw view scores of every item (``fit`` returns a scorer of one item).

    With ``groups`` (e.g. the run or host a trace came from), whole groups go to one fold, so a
    held-out item's siblings are never in its training folds and the held-out scores look like
    those of a new run, not of one more process of a run the model has seen.
    """
    keys: list[Hashable] = list(range(len(items))) if groups is None else list(groups)
    if len(keys) != len(items):
        raise ValueError(f"{len(keys)} groups for {len(items)} items")
    distinct = list(dict.fromkeys(keys))
    random.Random(seed).shuffle(distinct)
    fold_of_group = {g: pos % folds for pos, g in enumerate(distinct)}
    fold_of = [fold_of_group[k] for k in keys]
    held: list[list[float]] = [[] for _ in items]
    for f in range(folds):
        score = fit([x for i, x in enumerate(items) if fold_of[i] != f])
        for i, x in enumerate(items):
            if fold_of[i] == f:
                held[i] = score(x)
    return held


@dataclass(frozen=True, slots=True)
class TraceScore:
    """The verdict on one trace or window: combined score, threshold, each view's raw score and percentile."""

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
class RankCalibration:
    """Per-view reference scores and the combined-score threshold."""

    views: tuple[str, ...]
    reference: dict[str, list[float]]  # view -> sorted held-out raw scores
    threshold: float = 0.0
    label_thresholds: dict[str, float] = field(default_factory=dict)  # Mondrian: label -> threshold

    @classmethod
    def from_held(
        cls,
        views: Sequence[str],
        held: Sequence[Sequence[float]],
        target_fpr: float,
        labels: Sequence[str] | None = None,
    ) -> RankCalibration:
        """Calibrate on held-out rows (one raw score per view each), per label when given."""
        cal = cls(tuple(views), {name: sorted(row[j] for row in held) for j, name in enumerate(views)})
        combined = [cal.combine(row)[0] for row in held]
        cal.threshold = conformal_quantile(sorted(combined), target_fpr)
        if labels is not None:
            if len(labels) != len(held):
                raise ValueError(f"{len(labels)} labels for {len(held)} items")
            by_label: dict[str, list[float]] = {}
            for label, c in zip(labels, combined, strict=True):
                by_label.setdefault(label, []).append(c)
            need = mondrian_min(target_fpr)
            cal.label_thresholds = {
                label: conformal_quantile(sorted(v), target_fpr) for label, v in by_label.items() if len(v) >= need
            }
        return cal

    def threshold_for(self, label: str | None) -> float:
        """The threshold for items of ``label`` (the pooled one for unknown or rare labels)."""
        if label is None:
            return self.threshold
        return self.label_thresholds.get(label, self.threshold)

    def percentile(self, name: str, value: float) -> float:
        """Share of ``name``'s reference scores below ``value`` (ties half); > 1 beyond them all."""
        ref = self.reference[name]
        lo = bisect.bisect_left(ref, value)
        hi = bisect.bisect_right(ref, value)
        if lo == len(ref):
            spread = (ref[-1] - ref[0]) or abs(ref[-1]) or 1.0
            return 1.0 + min((value - ref[-1]) / spread, 1.0)
        return (lo + 0.5 * (hi - lo)) / len(ref)

    def combine(self, raw: Sequence[float]) -> tuple[float, list[float]]:
        """The mean percentile of one item's raw view scores, and the percentiles."""
        pct = [self.percentile(name, v) for name, v in zip(self.views, raw, strict=True)]
        return sum(pct) / len(pct), pct

    def verdict(self, raw: Sequence[float], label: str | None = None) -> TraceScore:
        """Combined score, percentiles and the calibrated verdict of one item's raw view scores."""
        combined, pct = self.combine(raw)
        threshold = self.threshold_for(label)
        return TraceScore(
            score=combined,
            threshold=threshold,
            anomalous=combined > threshold,
            views={n: (r, p) for n, r, p in zip(self.views, raw, pct, strict=True)},
        )


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted ``values`` (numpy's default method)."""
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def conformal_quantile(values: Sequence[float], alpha: float) -> float:
    """The ``ceil((n + 1)(1 - alpha))``-th smallest of sorted ``values`` (split-conformal bound);
    the largest value when ``n`` is too small for that rank to exist."""
    rank = math.ceil((len(values) + 1) * (1.0 - alpha) - 1e-9)
    return values[min(rank, len(values)) - 1]


def mondrian_min(alpha: float) -> int:
    """The fewest items of a label for which its own conformal ``1 - alpha`` quantile exists."""
    return max(1, math.ceil(1.0 / alpha - 1e-9) - 1)


def pack_arrays(arrays: Mapping[str, Any], views: Sequence[str], reference: Mapping[str, Sequence[float]]) -> bytes:
    """A compressed numpy archive of ``arrays`` plus each view's reference scores as ``ref_<view>``."""
    import numpy as np

    out = dict(arrays)
    for name in views:
        out[f"ref_{name}"] = np.asarray(reference[name], dtype=np.float64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    return buf.getvalue()


def unpack_arrays(blob: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arrays of an archive written by ``pack_arrays`` and its JSON ``header`` array, decoded."""
    import numpy as np

    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads(str(arrays["header"]))


def unpack_reference(arrays: Mapping[str, Any], views: Sequence[str]) -> dict[str, list[float]]:
    """The reference scores of ``views`` stored by ``pack_arrays``."""
    return {name: arrays[f"ref_{name}"].astype(float).tolist() for name in views}
