# SPDX-License-Identifier: Apache-2.0
"""The per-image deviation model: fitted with scikit-learn, scored with numpy only.

``DeviationModel.fit`` trains an isolation forest (scikit-learn's ``IsolationForest``, the
estimator pyod's IForest wraps) or ECOD on an image's normal windows and clusters them into
behaviour modes (scikit-learn KMeans or DBSCAN). The fitted detector is then compiled into flat
numpy arrays (``IForestScorer`` walks every isolation tree at once; ``EcodScorer`` keeps the
sorted training columns), so scoring a window needs no scikit-learn: the daemon pays its import
only while fitting, and scoring is vectorised (one window in well under a millisecond, >100K
windows/s batched). The scores equal pyod's ``IForest``/``ECOD`` ``decision_function`` on the
same data and seed (tests fit both; pyod itself is only a test dependency).

Scores follow pyod's convention (higher = more anomalous). The threshold is the ``quantile`` of
the training windows' scores. Explanations are per-feature robust z-scores against the training
windows (median and a spread of max(1.4826·MAD, IQR/1.349, normal range/4, floor)), reported with the feature's
raw value and its normal range (the training quantiles 1-q and q).
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.behavior.features import FEATURE_INDEX, FEATURE_NAMES, FEATURE_VERSION, N_FEATURES, SCALE_FLOOR, transform
from agent.behavior.scorers import EcodScorer, IForestScorer
from agent.settings.behavior import BehaviorSettings

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]

MODEL_FORMAT = 1
__all__ = ["DeviationModel", "EcodScorer", "FeatureContribution", "IForestScorer", "ModelError", "WindowResult"]


class ModelError(ValueError):
    """A model blob that cannot be used (corrupt, another feature version, another format)."""


@dataclass(frozen=True, slots=True)
class FeatureContribution:
    """One feature's share in an explanation: its value, normal range and robust z-score."""

    name: str
    value: float
    low: float
    high: float
    z: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.name,
            "value": _round(self.value),
            "normal_range": [_round(self.low), _round(self.high)],
            "z": round(self.z, 2),
            "direction": "above" if self.z > 0 else "below",
        }


@dataclass(frozen=True, slots=True)
class WindowResult:
    """The verdict of the deviation model on one window."""

    score: float
    threshold: float
    deviating: bool
    novelty: bool  # some feature lies far outside everything seen in training
    mode: int  # nearest behaviour mode, -1 without modes
    mode_distance: float
    mode_radius: float
    mode_deviation: bool
    top: tuple[FeatureContribution, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 6),
            "threshold": round(self.threshold, 6),
            "deviating": self.deviating,
            "novelty": self.novelty,
            "mode": self.mode,
            "mode_distance": round(self.mode_distance, 3),
            "mode_radius": round(self.mode_radius, 3),
            "mode_deviation": self.mode_deviation,
            "top_features": [c.to_dict() for c in self.top],
        }


def _round(v: float) -> float:
    if v == 0 or not math.isfinite(v):
        return float(v) if math.isfinite(v) else 0.0
    return round(v, max(0, 4 - math.floor(math.log10(abs(v)))))


@dataclass
class DeviationModel:
    """An image's fitted baseline: detector, threshold, normal ranges and behaviour modes."""

    algorithm: str
    ref_seconds: float
    quantile: float
    threshold: float
    median: Array
    scale: Array
    raw_low: Array
    raw_high: Array
    scorer: IForestScorer | EcodScorer
    centres: Array  # (k, features) in robust-z space; k = 0 without modes
    radii: Array
    novelty_z: float
    explain_min_z: float
    distance_factor: float
    top_k: int
    windows: int
    meta: dict[str, Any] = field(default_factory=dict)

    # --- fitting ----------------------------------------------------------------------
    @classmethod
    def fit(cls, raw: Array, settings: BehaviorSettings, ref_seconds: float | None = None) -> DeviationModel:
        """Fit on (n, N_FEATURES) human-unit rows of normal windows (n ≥ 8)."""
        import numpy as np

        raw = np.asarray(raw, dtype=np.float64)
        if raw.ndim != 2 or raw.shape[1] != N_FEATURES:
            raise ModelError(f"expected (n, {N_FEATURES}) feature rows, got {raw.shape}")
        if raw.shape[0] < 8:
            raise ModelError(f"need at least 8 windows to fit, got {raw.shape[0]}")
        started = time.perf_counter()
        ref = float(ref_seconds or settings.window_seconds)
        x = transform(raw, ref)
        q = settings.quantile
        median = np.median(x, axis=0)
        mad = np.median(np.abs(x - median), axis=0) * 1.4826
        iqr = (np.quantile(x, 0.75, axis=0) - np.quantile(x, 0.25, axis=0)) / 1.349
        # A quarter of the normal range (quantiles 1-q..q) is also a lower bound, so a value
        # learning did see now and then (an occasional extra process) stays well below novelty_z.
        span = (np.quantile(x, q, axis=0) - np.quantile(x, 1 - q, axis=0)) / 4.0
        scale = np.maximum(np.maximum(np.maximum(mad, iqr), span), np.asarray(SCALE_FLOOR))
        scorer: IForestScorer | EcodScorer
        if settings.algorithm == "iforest":
            # Imports scikit-learn (about 100 MiB with scipy) lazily: only while fitting.
            scorer = IForestScorer.fit(
                x, settings.iforest_trees, min(settings.iforest_max_samples, x.shape[0]), settings.seed
            )
        else:
            scorer = EcodScorer.fit(x)
        train_scores = scorer.score(x)
        threshold = float(np.quantile(train_scores, q))
        z = (x - median) / scale
        centres, radii = _fit_modes(z, settings)
        model = cls(
            algorithm=settings.algorithm,
            ref_seconds=ref,
            quantile=q,
            threshold=threshold,
            median=median,
            scale=scale,
            raw_low=np.quantile(raw, 1 - q, axis=0),
            raw_high=np.quantile(raw, q, axis=0),
            scorer=scorer,
            centres=centres,
            radii=radii,
            novelty_z=settings.novelty_z,
            explain_min_z=settings.explain_min_z,
            distance_factor=settings.modes.distance_factor,
            top_k=settings.top_features,
            windows=int(raw.shape[0]),
            meta={
                "fit_seconds": round(time.perf_counter() - started, 3),
                "train_score_median": float(np.median(train_scores)),
                "train_score_max": float(np.max(train_scores)),
                "modes_algorithm": settings.modes.algorithm if settings.modes.enabled else "",
            },
        )
        return model

    # --- scoring ----------------------------------------------------------------------
    def score_raw(self, raw: Array) -> list[WindowResult]:
        """Score (n, N_FEATURES) human-unit rows; one ``WindowResult`` per row."""
        import numpy as np

        raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
        x = transform(raw, self.ref_seconds)
        scores = self.scorer.score(x)
        z = (x - self.median) / self.scale
        absz = np.abs(z)
        maxz = absz.max(axis=1)
        if len(self.centres):
            d = np.sqrt(((z[:, None, :] - self.centres[None, :, :]) ** 2).sum(axis=2))
            modes = d.argmin(axis=1)
            dist = d[np.arange(len(z)), modes]
            radius = self.radii[modes]
        else:
            modes = np.full(len(z), -1)
            dist = np.zeros(len(z))
            radius = np.zeros(len(z))
        k = min(self.top_k, N_FEATURES)
        top_idx = np.argsort(-absz, axis=1)[:, :k]
        results = []
        for i in range(len(z)):
            novelty = bool(maxz[i] >= self.novelty_z)
            over = bool(scores[i] > self.threshold)
            explained = bool(maxz[i] >= self.explain_min_z)
            mode_dev = bool(len(self.centres) and dist[i] > radius[i] * self.distance_factor and explained)
            top = tuple(
                FeatureContribution(
                    FEATURE_NAMES[j],
                    float(raw[i, j]),
                    float(self.raw_low[j]),
                    float(self.raw_high[j]),
                    float(z[i, j]),
                )
                for j in top_idx[i]
                if absz[i, j] >= min(self.explain_min_z, 1.0)
            )
            results.append(
                WindowResult(
                    score=float(scores[i]),
                    threshold=self.threshold,
                    deviating=(over and explained) or novelty,
                    novelty=novelty,
                    mode=int(modes[i]),
                    mode_distance=float(dist[i]),
                    mode_radius=float(radius[i]),
                    mode_deviation=mode_dev,
                    top=top,
                )
            )
        return results

    def syscall_gap(self, raw: Sequence[float]) -> bool:
        """True for a window without syscall counts when the image's typical window has some
        (or the window saw execs, which are syscalls): the sources' separate window timers can
        leave an aggregator window without a kernel syscall window, a missing measurement
        rather than behaviour."""
        i = FEATURE_INDEX["syscall_rate"]
        typical = float(self.median[i]) > 0.0 or float(raw[FEATURE_INDEX["exec_rate"]]) > 0.0
        return float(raw[i]) <= 0.0 and typical

    def scores_only(self, raw: Array) -> Array:
        """The raw detector scores of rows (the fast path benchmarks measure)."""
        out: Array = self.scorer.score(transform(raw, self.ref_seconds))
        return out

    # --- persistence ------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """An ``.npz`` blob (no pickle): arrays plus a JSON header."""
        import numpy as np

        header = {
            "format": MODEL_FORMAT,
            "feature_version": FEATURE_VERSION,
            "features": list(FEATURE_NAMES),
            "algorithm": self.algorithm,
            "ref_seconds": self.ref_seconds,
            "quantile": self.quantile,
            "threshold": self.threshold,
            "novelty_z": self.novelty_z,
            "explain_min_z": self.explain_min_z,
            "distance_factor": self.distance_factor,
            "top_k": self.top_k,
            "windows": self.windows,
            "meta": self.meta,
        }
        buf = io.BytesIO()
        arrays: dict[str, Any] = {
            "header": np.array(json.dumps(header)),
            "median": self.median,
            "scale": self.scale,
            "raw_low": self.raw_low,
            "raw_high": self.raw_high,
            "centres": self.centres,
            "radii": self.radii,
            **self.scorer.arrays(),
        }
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> DeviationModel:
        """Load a blob written by ``to_bytes``; ``ModelError`` when it cannot be used."""
        import numpy as np

        try:
            with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            header = json.loads(str(arrays.pop("header")))
        except Exception as exc:  # zipfile/ValueError/KeyError/JSON: all mean "unusable"
            raise ModelError(f"unreadable behaviour model: {exc!r}") from None
        if header.get("format") != MODEL_FORMAT or header.get("feature_version") != FEATURE_VERSION:
            raise ModelError(
                f"model format {header.get('format')}/features v{header.get('feature_version')} "
                f"!= {MODEL_FORMAT}/v{FEATURE_VERSION}"
            )
        scorer: IForestScorer | EcodScorer
        scorer = IForestScorer(arrays) if header["algorithm"] == "iforest" else EcodScorer(arrays)
        return cls(
            algorithm=header["algorithm"],
            ref_seconds=float(header["ref_seconds"]),
            quantile=float(header["quantile"]),
            threshold=float(header["threshold"]),
            median=arrays["median"],
            scale=arrays["scale"],
            raw_low=arrays["raw_low"],
            raw_high=arrays["raw_high"],
            scorer=scorer,
            centres=arrays["centres"],
            radii=arrays["radii"],
            novelty_z=float(header["novelty_z"]),
            explain_min_z=float(header["explain_min_z"]),
            distance_factor=float(header["distance_factor"]),
            top_k=int(header["top_k"]),
            windows=int(header["windows"]),
            meta=dict(header.get("meta", {})),
        )

    @property
    def modes(self) -> int:
        return len(self.centres)


def _fit_modes(z: Array, settings: BehaviorSettings) -> tuple[Array, Array]:
    """Cluster training windows (robust-z space) into modes: centres and radii."""
    import numpy as np

    empty = (np.zeros((0, z.shape[1])), np.zeros(0))
    ms = settings.modes
    if not ms.enabled or len(z) < 4:
        return empty
    # Clip so one extreme training window cannot drag a centre far away.
    zc = np.clip(z, -settings.novelty_z, settings.novelty_z)
    labels: Array
    if ms.algorithm == "kmeans":
        from sklearn.cluster import KMeans  # lazy, as in DeviationModel.fit

        ks = [ms.k] if ms.k else list(range(1, min(ms.max_k, len(zc) - 1) + 1))
        best: tuple[float, Array] | None = None
        for k in ks:
            if k == 1:
                labels = np.zeros(len(zc), dtype=np.int64)
                quality = 0.25  # a second mode must beat this silhouette to be kept
            else:
                from sklearn.metrics import silhouette_score

                labels = KMeans(n_clusters=k, n_init=4, random_state=settings.seed).fit_predict(zc)
                if len(set(labels.tolist())) < 2:
                    continue
                quality = float(silhouette_score(zc, labels))
            if best is None or quality > best[0]:
                best = (quality, labels)
        assert best is not None
        labels = best[1]
    else:
        from sklearn.cluster import DBSCAN

        labels = DBSCAN(eps=ms.dbscan_eps, min_samples=ms.dbscan_min_samples).fit_predict(zc)
        if (labels >= 0).sum() == 0:
            labels = np.zeros(len(zc), dtype=np.int64)  # no dense region: one mode of everything
    ids = sorted(int(v) for v in set(labels.tolist()) if v >= 0)
    centres = np.array([zc[labels == i].mean(axis=0) for i in ids])
    radii = []
    for ci, i in enumerate(ids):
        d = np.sqrt(((zc[labels == i] - centres[ci]) ** 2).sum(axis=1))
        radii.append(max(float(np.quantile(d, settings.quantile)), 1.0))
    return centres, np.asarray(radii)


def model_size(blob: bytes | Sequence[Any]) -> int:
    """Bytes of a stored model."""
    return len(blob)
