# SPDX-License-Identifier: Apache-2.0
"""The combined syscall-sequence model: views calibrated by cross-fitting, rank-averaged.

Views (each "higher = more anomalous"):

- ``kn``: mean negative log-likelihood per call under an interpolated Kneser-Ney n-gram model
  (``seqlm.py``, order 8 by default);
- ``bag``: TF-IDF 1-3-gram nearest-neighbour cosine distance (``seqbag.py``);
- ``cover``: longest-match covering by the training traces (``seqcover.py``); not in the
  default combination (``DEFAULT_VIEWS``), opt in with ``views``. With ``cover_k`` > 0 it is 0
  for every trace made of known stretches (99 % of the recorded normal traces), so its rank is
  a near-binary "holds a never-seen stretch" flag; averaged in, it puts the pooled threshold
  above what any fully covered trace can reach, and the verdict's false-positive rate becomes
  the rate of never-seen stretches in new runs, which cross-fitting on a few dozen runs
  estimates badly (recorded dev split, target 1 %: 1.8 % with it, 0.9 % without, at the same
  ROC AUC 0.881; over 80 % subsamples of the training runs 1.5 ± 0.4 % against 1.0 ± 0.2 %).

Calibration (``seqcalib.py``): every training trace is scored by views fitted on the other
folds (k-fold cross-fitting); those held-out scores are each view's reference distribution, a
trace's view score becomes its percentile among them, the combined score is the mean
percentile (rank averaging), and the ``anomalous`` threshold is the conformal ``1 - target_fpr``
quantile of the training traces' combined held-out scores: on normal traces like the training
ones at most about ``target_fpr`` of traces are flagged. With program names (``labels``), each
program with enough training traces is calibrated on its own held-out scores (Mondrian
calibration, ``seqcalib.py``) and scored against its own threshold.

The model file is an ``.npz`` (no pickle): a JSON header (settings, threshold), the distinct
training traces with how often each occurred (the views are rebuilt from them on load) and the
held-out reference scores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.behavior.seqbag import TfidfNeighbours
from agent.behavior.seqcalib import (
    RankCalibration,
    TraceScore,
    cross_fit,
    pack_arrays,
    unpack_arrays,
    unpack_reference,
)
from agent.behavior.seqcover import SuffixAutomaton
from agent.behavior.seqlm import KneserNeyModel
from agent.syscall_table import syscall_name

SEQ_FORMAT = 2  # 2: trace counts stored (the language model learns frequencies)
KIND = "syscall-sequence"
VIEWS = ("kn", "cover", "bag")  # every view there is
DEFAULT_VIEWS = ("kn", "bag")  # the combination ``syscalls fit`` uses (see the module docstring)


class SequenceModelError(ValueError):
    """A model file or a training set that cannot be used."""


@dataclass(frozen=True, slots=True)
class SequenceSettings:
    """Knobs of the combined model (the CLI's ``syscalls fit`` options)."""

    order: int = 8
    bag_n: int = 3
    cover_k: int = 8  # 0: mean 1/(1 + longest match); k > 0: share of calls no match of length >= k covers
    folds: int = 5
    target_fpr: float = 0.01
    views: tuple[str, ...] = DEFAULT_VIEWS
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
    """The fitted views on one training set (distinct traces and how often each occurred)."""

    def __init__(self, distinct: Sequence[Sequence[int]], counts: Sequence[int], settings: SequenceSettings) -> None:
        # The language model needs frequencies (a trace seen 300 times is likelier than one seen
        # once); the covering and nearest-neighbour views only need each distinct trace once.
        self.kn = KneserNeyModel(settings.order).fit(distinct, counts) if "kn" in settings.views else None
        self.cover = SuffixAutomaton(distinct) if "cover" in settings.views else None
        self.bag = TfidfNeighbours(settings.bag_n).fit(distinct) if "bag" in settings.views else None
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


@dataclass
class SequenceModel:
    """Fitted views plus their held-out reference scores and the calibrated threshold."""

    settings: SequenceSettings
    traces: list[list[int]]  # distinct training traces
    counts: list[int]  # how often each distinct trace occurred in training
    calibration: RankCalibration
    meta: dict[str, Any] = field(default_factory=dict)
    _views: _Views | None = None

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    # --- fitting ----------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        sequences: Sequence[Sequence[int]],
        settings: SequenceSettings | None = None,
        groups: Sequence[Hashable] | None = None,
        labels: Sequence[str] | None = None,
    ) -> SequenceModel:
        """Cross-fit the views on ``sequences`` (normal traces), calibrate, and fit on them all.

        ``groups`` (one per trace: the run, host or recording it came from) keeps each group in
        one fold; used when there are at least ``folds`` groups. ``labels`` (one per trace: the
        program it ran) calibrate each program with enough traces on its own.
        """
        settings = settings or SequenceSettings()
        settings.check()
        if groups is not None and len(groups) != len(sequences):
            raise SequenceModelError(f"{len(groups)} groups for {len(sequences)} traces")
        if labels is not None and len(labels) != len(sequences):
            raise SequenceModelError(f"{len(labels)} labels for {len(sequences)} traces")
        keep = [i for i, s in enumerate(sequences) if len(s) > 0]
        seqs = [[int(t) for t in sequences[i]] for i in keep]
        if len(seqs) < settings.folds:
            raise SequenceModelError(f"need at least {settings.folds} non-empty traces (one per fold), got {len(seqs)}")
        kept_groups = [groups[i] for i in keep] if groups is not None else None
        if kept_groups is not None and len(set(kept_groups)) < settings.folds:
            kept_groups = None  # fewer groups than folds: fold by trace
        started = time.perf_counter()
        held = cross_fit(
            seqs, settings.folds, settings.seed, lambda train: _Views(*_dedupe(train), settings).score, kept_groups
        )
        distinct, counts = _dedupe(seqs)
        kept_labels = [str(labels[i]) for i in keep] if labels is not None else None
        calibration = RankCalibration.from_held(settings.views, held, settings.target_fpr, kept_labels)
        model = cls(settings, distinct, counts, calibration)
        model._views = _Views(distinct, counts, settings)
        model.meta = {
            "fit_seconds": round(time.perf_counter() - started, 3),
            "training_traces": len(seqs),
            "distinct_traces": len(model.traces),
            "training_calls": sum(len(s) for s in seqs),
            "groups": len(set(kept_groups)) if kept_groups is not None else 0,
            "programs_calibrated": len(calibration.label_thresholds),
        }
        return model

    # --- scoring ----------------------------------------------------------------------
    @property
    def views(self) -> _Views:
        if self._views is None:
            self._views = _Views(self.traces, self.counts, self.settings)
        return self._views

    def raw_scores(self, seq: Sequence[int]) -> list[float]:
        """Each view's raw score of ``seq``, in ``settings.views`` order."""
        return self.views.score(seq)

    def score(self, seq: Sequence[int], program: str | None = None) -> TraceScore:
        """Score one trace: combined score, verdict against ``program``'s threshold when it was
        calibrated on its own (else the pooled one), per-view details."""
        return self.calibration.verdict(self.raw_scores(seq), program)

    def explain(self, seq: Sequence[int], top: int = 3, arch: str = "x86_64") -> list[dict[str, Any]]:
        """The calls the language model found most surprising, each with the calls before it."""
        kn = self.views.kn
        if kn is None or not seq:
            return []
        surprise = kn.surprisal(seq)[: len(seq)]  # the end marker is not a call
        context = min(kn.order - 1, 4)
        worst = sorted(range(len(seq)), key=lambda i: (-surprise[i], i))[:top]
        return [
            {
                "at": i,
                "call": syscall_name(int(seq[i]), arch),
                "after": [syscall_name(int(c), arch) for c in seq[max(0, i - context) : i]],
                "surprisal": round(surprise[i], 3),
            }
            for i in sorted(worst)
        ]

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
            "folds": s.folds,
            "target_fpr": s.target_fpr,
            "views": list(s.views),
            "seed": s.seed,
            "threshold": self.threshold,
            "program_thresholds": self.calibration.label_thresholds,
            "meta": self.meta,
        }
        lengths = np.array([len(t) for t in self.traces], dtype=np.int64)
        flat = np.fromiter((v for t in self.traces for v in t), dtype=np.int16, count=int(lengths.sum()))
        arrays: dict[str, Any] = {
            "header": np.array(json.dumps(header)),
            "calls": flat,
            "lengths": lengths,
            "counts": np.asarray(self.counts, dtype=np.int64),
        }
        return pack_arrays(arrays, s.views, self.calibration.reference)

    @classmethod
    def from_bytes(cls, blob: bytes) -> SequenceModel:
        """Load a blob written by ``to_bytes``; ``SequenceModelError`` when it cannot be used."""
        import numpy as np

        try:
            arrays, header = unpack_arrays(blob)
            if header.get("kind") != KIND or header.get("format") != SEQ_FORMAT:
                raise SequenceModelError(
                    f"not a syscall sequence model (kind={header.get('kind')!r}, format={header.get('format')!r})"
                )
            settings = SequenceSettings(
                order=int(header["order"]),
                bag_n=int(header["bag_n"]),
                cover_k=int(header.get("cover_k", 0)),
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
            counts = arrays["counts"].astype(np.int64).tolist()
            if len(counts) != len(traces) or min(counts, default=1) < 1:
                raise SequenceModelError("trace counts do not match the stored traces")
            reference = unpack_reference(arrays, settings.views)
            if any(not r for r in reference.values()):
                raise SequenceModelError("empty reference scores")
            meta = dict(header.get("meta", {}))
            meta["arch"] = str(header.get("arch", "x86_64"))
            programs = header.get("program_thresholds", {})
            if not isinstance(programs, dict):
                raise SequenceModelError("program thresholds are not a mapping")
            calibration = RankCalibration(
                settings.views,
                reference,
                float(header["threshold"]),
                {str(k): float(v) for k, v in programs.items()},
            )
            return cls(settings=settings, traces=traces, counts=counts, calibration=calibration, meta=meta)
        except SequenceModelError:
            raise
        except Exception as exc:  # zip, JSON, key and dtype errors all mean "unusable"
            raise SequenceModelError(f"unreadable syscall sequence model: {exc!r}") from None


def _dedupe(seqs: Sequence[list[int]]) -> tuple[list[list[int]], list[int]]:
    """Distinct traces in first-seen order, and how often each occurs."""
    index: dict[tuple[int, ...], int] = {}
    distinct: list[list[int]] = []
    counts: list[int] = []
    for s in seqs:
        key = tuple(s)
        i = index.get(key)
        if i is None:
            index[key] = len(distinct)
            distinct.append(s)
            counts.append(1)
        else:
            counts[i] += 1
    return distinct, counts
