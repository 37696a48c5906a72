# SPDX-License-Identifier: Apache-2.0
"""Session anomaly model, fitted on normal sessions only, with a calibrated verdict.

Four detectors look at each session (a sequence of event symbols):

1. **new event type**: an event never seen in training (always anomalous);
2. **count invariants** violated (``session_scores.CountInvariants``);
3. **PCA residual** of raw event counts with an unseen-event column (``CountPCA``);
4. **next-event surprisal** of a smoothed n-gram model with an end-of-session token (``NextEvent``).

**Calibration.** ``fit`` scores every training session with models fitted on the other folds
(k-fold cross-validation), so thresholds come from scores of sessions the models did not see.
Each detector's threshold is the same percentile ``q`` of its cross-validated scores, with ``q``
chosen (bisection) so that the share of cross-validated normal sessions flagged by *any* detector
equals ``target_fpr`` (0.1 % by default, i.e. about the 99.9th percentile); the final detectors are
then refitted on all sessions. A session is ``anomalous`` when a detector exceeds its threshold
(plus a 10 % margin: the refitted detectors score normal sessions slightly differently; and at
least ``MIN_EFFECT``, so near-identical normal sessions do not put thresholds at ~0).
``score`` is the largest share of normal cross-validated scores that a detector's score exceeds
(1.0: above every normal session). Frequent sequential patterns (PrefixSpan) that nearly every
normal session shows are kept to explain what an anomalous session lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.logs.prefixspan import contains, frequent_patterns
from agent.logs.session_scores import CountInvariants, CountPCA, FloatArray, NextEvent, count_matrix

DETECTORS = ("new_event", "invariants", "pca", "next_event")
MARGIN = 0.1  # relative margin over the cross-validated thresholds (see _thresholds)
# Smallest deviations worth a verdict, whatever the normal sessions' spread: a violated invariant,
# half a count off the normal subspace (SPE 0.25), an event twice as unlikely in its context as
# on its own (1 bit). Normal sessions that all look alike would otherwise set thresholds at ~0.
MIN_EFFECT = np.array([0.0, 0.0, 0.25, 1.0])


@dataclass
class SessionParams:
    target_fpr: float = 0.001
    folds: int = 5
    order: int = 3
    pca_variance: float = 0.95
    invariant_min_share: float = 0.05
    always_support: float = 0.97
    max_pattern_len: int = 4
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Detectors:
    vocab: dict[str, int]
    invariants: CountInvariants
    pca: CountPCA
    next_event: NextEvent

    @classmethod
    def fit(cls, sessions: Sequence[Sequence[str]], p: SessionParams) -> _Detectors:
        vocab = {s: i for i, s in enumerate(sorted({e for seq in sessions for e in seq}))}
        x = count_matrix(sessions, vocab)
        return cls(
            vocab,
            CountInvariants(p.invariant_min_share).fit(x),
            CountPCA(p.pca_variance).fit(x),
            NextEvent(p.order).fit(sessions),
        )

    def scores(self, sessions: Sequence[Sequence[str]]) -> FloatArray:
        """Raw scores, one row per session and one column per detector (higher = more anomalous)."""
        x = count_matrix(sessions, self.vocab)
        out = np.zeros((len(sessions), len(DETECTORS)), dtype=np.float64)
        out[:, 0] = x[:, -1]
        out[:, 1] = self.invariants.violations(x)
        out[:, 2] = self.pca.spe(x)
        out[:, 3] = [self.next_event.score(seq) for seq in sessions]
        return out


def unseen_rate(sessions: Sequence[Sequence[str]]) -> float:
    """Good-Turing estimate of the share of new normal sessions holding an event never seen in
    ``sessions``: the share of sessions holding an event that no other session holds."""
    holders: dict[str, int] = {}
    for seq in sessions:
        for e in set(seq):
            holders[e] = holders.get(e, 0) + 1
    return sum(any(holders[e] == 1 for e in set(seq)) for seq in sessions) / max(1, len(sessions))


def _thresholds(cv: FloatArray, target: float, p_new: float) -> tuple[FloatArray, float]:
    """Per-detector thresholds at one common percentile with a union FPR ≈ ``target``.

    The new-event detector's share is ``p_new`` (Good-Turing, for the model fitted on all
    sessions) rather than its cross-validated rate, which counts events the held-out fold alone
    had; the other detectors are counted on sessions the new-event detector left alone."""
    lo, hi = 0.0, 100.0
    best = np.max(cv, axis=0)
    q_best = 100.0
    quiet = cv[:, 0] == 0
    for _ in range(30):
        q = (lo + hi) / 2
        th = np.percentile(cv, q, axis=0)
        th[0] = 0.0  # an unseen event is always anomalous
        fpr = p_new + float(np.mean(np.any(cv[:, 1:] > th[1:], axis=1) & quiet))
        if fpr > target:
            lo = q
        else:
            hi, best, q_best = q, th, q
    best = np.array(best, dtype=np.float64)
    best[0] = 0.0
    # The detectors refitted on all sessions score normal sessions a little differently from the
    # cross-validated ones (more data, sharper estimates): a margin keeps that from flagging them.
    best[1:] = best[1:] + MARGIN * np.abs(best[1:]) + 1e-6
    return np.maximum(best, MIN_EFFECT), q_best


@dataclass
class SessionModel:
    """What normal sessions of one group look like, with calibrated thresholds."""

    params: SessionParams = field(default_factory=SessionParams)
    sessions: int = 0
    detectors: _Detectors | None = None
    thresholds: FloatArray = field(default_factory=lambda: np.zeros(len(DETECTORS)))
    percentile: float = 100.0
    cv_scores: FloatArray = field(default_factory=lambda: np.zeros((0, len(DETECTORS))))
    cv_fpr: float = 0.0
    patterns: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def fit(self, sessions: Sequence[Sequence[str]]) -> SessionModel:
        """Learn from normal sessions: cross-validated calibration, then detectors on all data."""
        p = self.params
        if len(sessions) < 2:
            raise ValueError("at least two sessions are needed to learn (and cross-validate) from")
        self.sessions = len(sessions)
        rng = np.random.default_rng(p.seed)
        order = rng.permutation(len(sessions))
        k = max(2, min(p.folds, len(sessions)))
        cv = np.zeros((len(sessions), len(DETECTORS)), dtype=np.float64)
        for f in range(k):
            held = order[f::k]
            keep = np.setdiff1d(order, held)
            det = _Detectors.fit([sessions[i] for i in keep], p)
            cv[held] = det.scores([sessions[i] for i in held])
        p_new = unseen_rate(sessions)
        self.thresholds, self.percentile = _thresholds(cv, p.target_fpr, p_new)
        self.cv_fpr = p_new + float(np.mean(np.any(cv[:, 1:] > self.thresholds[1:], axis=1) & (cv[:, 0] == 0)))
        self.cv_scores = np.sort(cv, axis=0)
        self.detectors = _Detectors.fit(sessions, p)
        found = frequent_patterns(sessions, max(1, int(p.always_support * len(sessions))), max_len=p.max_pattern_len)
        n = len(sessions)
        always = [(pat, sup / n) for pat, sup in found]
        self.patterns = [
            (pat, s) for pat, s in always if not any(len(o) > len(pat) and contains(o, pat) for o, _ in always)
        ]
        return self

    def score_many(self, sessions: Sequence[Sequence[str]]) -> list[tuple[float, bool, list[dict[str, Any]]]]:
        """``(score, anomalous, explanations)`` per session."""
        if self.detectors is None:
            raise ValueError("model not fitted")
        raw = self.detectors.scores(sessions)
        flagged = raw > self.thresholds
        n = max(1, self.cv_scores.shape[0])
        shares = np.stack(
            [np.searchsorted(self.cv_scores[:, j], raw[:, j], side="left") / n for j in range(len(DETECTORS))], axis=1
        )
        out = []
        for r, seq in enumerate(sessions):
            anomalous = bool(flagged[r].any())
            why = self._explain(seq, raw[r], flagged[r]) if anomalous else []
            out.append((round(float(shares[r].max()), 6), anomalous, why))
        return out

    def score(self, seq: Sequence[str]) -> tuple[float, bool, list[dict[str, Any]]]:
        """``(score in [0, 1], anomalous, explanations)`` of one session."""
        return self.score_many([seq])[0]

    def _explain(self, seq: Sequence[str], raw: FloatArray, flagged: Any) -> list[dict[str, Any]]:
        d = self.detectors
        assert d is not None
        names = [*sorted(d.vocab, key=lambda s: d.vocab[s]), "<unseen>"]
        why: list[dict[str, Any]] = []
        if flagged[0]:
            why += [{"kind": "unseen_event", "event": e} for e in dict.fromkeys(seq) if e not in d.vocab][:5]
        x = count_matrix([seq], d.vocab)[0]
        if flagged[1]:
            why += d.invariants.explain(x, names)
        if flagged[2]:
            why += d.pca.explain(x, names)
        if flagged[3]:
            why += d.next_event.explain(seq)
        for pat, sup in self.patterns:
            if not contains(seq, pat) and len(why) < 20:
                why.append({"kind": "missing_pattern", "pattern": list(pat), "support": round(sup, 3)})
        why.insert(
            0,
            {
                "kind": "detectors",
                "flagged": [n for n, f in zip(DETECTORS, flagged, strict=True) if f],
                "scores": {n: round(float(v), 4) for n, v in zip(DETECTORS, raw, strict=True)},
                "thresholds": {n: round(float(v), 4) for n, v in zip(DETECTORS, self.thresholds, strict=True)},
            },
        )
        return why

    # --- (de)serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = self.detectors
        assert d is not None
        return {
            "kind": "session-model/1",
            "params": self.params.to_dict(),
            "sessions": self.sessions,
            "vocab": d.vocab,
            "invariants": d.invariants.to_dict(),
            "pca": d.pca.to_dict(),
            "next_event": d.next_event.to_dict(),
            "thresholds": self.thresholds.tolist(),
            "percentile": self.percentile,
            "cv_fpr": self.cv_fpr,
            "cv_scores": self.cv_scores.tolist(),
            "patterns": [[list(pat), sup] for pat, sup in self.patterns],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionModel:
        if d.get("kind") != "session-model/1":
            raise ValueError("not a session model")
        m = cls(params=SessionParams(**d.get("params", {})), sessions=int(d.get("sessions", 0)))
        m.detectors = _Detectors(
            {str(k): int(v) for k, v in d["vocab"].items()},
            CountInvariants.from_dict(d["invariants"]),
            CountPCA.from_dict(d["pca"]),
            NextEvent.from_dict(d["next_event"]),
        )
        m.thresholds = np.asarray(d["thresholds"], dtype=np.float64)
        m.percentile = float(d.get("percentile", 100.0))
        m.cv_fpr = float(d.get("cv_fpr", 0.0))
        m.cv_scores = np.asarray(d.get("cv_scores", []), dtype=np.float64).reshape(-1, len(DETECTORS))
        m.patterns = [(tuple(pat), float(sup)) for pat, sup in d.get("patterns", [])]
        return m
