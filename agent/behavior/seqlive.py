# SPDX-License-Identifier: Apache-2.0
"""The live sequence part of behaviour analysis, and how every behaviour finding is explained.

Per window the engine scores the container's in-kernel syscall transition counts with the
image's ``TransitionWindowModel`` (``seqwindow.py``: Kneser-Ney bigrams + TF-IDF neighbours,
calibrated per container fold to ``behavior.sequence.target_fpr``). A window over its threshold
that also holds at least ``behavior.sequence.min_unseen`` transitions the image never made while
learning (what a shell, a network client or a decoder the image never runs leaves behind) is a
medium ``behavior.syscall_sequence`` finding; over the threshold alone, it is counted and its
transitions explain the other behaviour findings.

Every behaviour finding carries the same two-part explanation (``explanation``):

- ``sequence``: the window's score against the threshold and its most surprising transitions
  (``dup2->execve``, ``socket->connect`` …) with counts and ``-log P(next | previous)``;
- ``window``: the nearest normal behaviour mode of the image (clusters of the training windows'
  features), the distance to it against that mode's radius, and the features that differ most
  from the mode's centre, each with the window's value and the mode's typical value.

Training windows keep their transitions in the store as little-endian int32 triples
(``encode_transitions``), at most ``MAX_TRANSITIONS`` per window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.behavior.features import FEATURE_KINDS, FEATURE_NAMES, transform
from agent.behavior.seqcalib import TraceScore
from agent.behavior.seqwindow import TransitionWindowModel

if TYPE_CHECKING:
    from agent.behavior.model import DeviationModel

MAX_TRANSITIONS = 4096  # distinct transitions kept per training window (the most frequent)


def encode_transitions(transitions: Mapping[tuple[int, int], int]) -> bytes:
    """The window's transition counts as int32 (from, to, count) triples, most frequent first."""
    import numpy as np

    items = sorted(((int(a), int(b), int(c)) for (a, b), c in transitions.items() if c > 0), key=lambda t: -t[2])
    flat = np.asarray(items[:MAX_TRANSITIONS], dtype="<i4").reshape(-1)
    out: bytes = flat.tobytes()
    return out


def decode_transitions(blob: bytes | None) -> dict[tuple[int, int], int]:
    """The counts ``encode_transitions`` wrote; empty for a missing or malformed blob."""
    import numpy as np

    if not blob or len(blob) % 12:
        return {}
    flat = np.frombuffer(bytes(blob), dtype="<i4").reshape(-1, 3)
    # 0xffff is the kernel's "no previous syscall" (a thread's first observed call): kept, as
    # the scored windows hold it too.
    return {(int(a), int(b)): int(c) for a, b, c in flat.tolist() if c > 0 and 0 <= a <= 0xFFFF and 0 <= b <= 0xFFFF}


@dataclass(frozen=True, slots=True)
class SequenceVerdict:
    """The sequence model's verdict on one window, with its explanation."""

    result: TraceScore
    unseen: int  # distinct transitions never seen in the image's training windows
    surprising: list[dict[str, Any]]

    @property
    def anomalous(self) -> bool:
        return self.result.anomalous

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.result.score, 4),
            "threshold": round(self.result.threshold, 4),
            "anomalous": self.result.anomalous,
            "unseen_transitions": self.unseen,
            "surprising_transitions": self.surprising,
        }


def score_sequence(
    model: TransitionWindowModel, transitions: Mapping[tuple[int, int], int], top: int = 5
) -> SequenceVerdict | None:
    """Score one window's transitions (``None`` when the window has none)."""
    if not any(c > 0 for c in transitions.values()):
        return None
    res = model.score(transitions)
    seen = model.views.kn.grams[2]
    unseen = sum(1 for (a, b), c in transitions.items() if c > 0 and (int(a), int(b)) not in seen)
    return SequenceVerdict(res, unseen, model.explain(transitions, top=top) if res.anomalous else [])


def nearest_mode(model: DeviationModel, raw: list[float], top: int = 5) -> dict[str, Any]:
    """The window's nearest normal behaviour mode and the features that differ most from it.

    Distances are in the model's robust-z space (the space the modes were clustered in); each
    differing feature names the window's value and the mode centre's value in human units.
    """
    import numpy as np

    x = transform(np.asarray([raw], dtype=np.float64), model.ref_seconds)[0]
    z = (x - model.median) / model.scale
    if len(model.centres):
        d = np.sqrt(((model.centres - z[None, :]) ** 2).sum(axis=1))
        mode = int(d.argmin())
        centre = model.centres[mode]
        out: dict[str, Any] = {
            "mode": mode,
            "modes": len(model.centres),
            "distance": round(float(d[mode]), 3),
            "radius": round(float(model.radii[mode]), 3),
        }
    else:  # clustering off: the one "mode" is the median window
        centre = np.zeros_like(z)
        out = {"mode": -1, "modes": 0, "distance": round(float(np.sqrt((z**2).sum())), 3), "radius": 0.0}
    diff = z - centre
    typical = _untransform(model.median + centre * model.scale, model.ref_seconds)
    order = np.argsort(-np.abs(diff))[:top]
    out["differing_features"] = [
        {
            "feature": FEATURE_NAMES[j],
            "value": _round(float(raw[j])),
            "mode_value": _round(float(typical[j])),
            "z_from_mode": round(float(diff[j]), 2),
            "direction": "above" if diff[j] > 0 else "below",
        }
        for j in order
        if abs(diff[j]) >= 0.5
    ]
    return out


def explanation(
    model: DeviationModel | None,
    raw: list[float],
    seq: SequenceVerdict | None,
    top: int = 5,
    seq_model: TransitionWindowModel | None = None,
    transitions: Mapping[tuple[int, int], int] | None = None,
) -> dict[str, Any]:
    """The two-part evidence of a behaviour finding (``sequence`` and ``window``); the sequence
    part names the surprising transitions even when only the feature model flagged the window."""
    out: dict[str, Any] = {}
    if seq is not None:
        out["sequence"] = seq.to_dict()
        if not seq.surprising and seq_model is not None and transitions:
            out["sequence"]["surprising_transitions"] = seq_model.explain(transitions, top=top)
    if model is not None:
        out["window"] = nearest_mode(model, raw, top)
    return out


def summary(seq: SequenceVerdict | None, window: dict[str, Any] | None, k: int = 3) -> str:
    """One line naming the most surprising transitions and the features farthest from the mode."""
    parts = []
    if seq is not None and seq.surprising:
        parts.append("transitions " + ", ".join(f"{t['chain']}×{t['count']}" for t in seq.surprising[:k]))
    if window and window.get("differing_features"):
        feats = ", ".join(
            f"{f['feature']}={f['value']} (mode {f['mode_value']})" for f in window["differing_features"][:k]
        )
        parts.append(f"vs mode {window['mode']}: {feats}")
    return "; ".join(parts)


def _untransform(x: Any, ref_seconds: float) -> Any:
    """Model space back to human units (the inverse of ``features.transform``)."""
    import numpy as np

    out = np.array(x, dtype=np.float64, copy=True)
    for j, kind in enumerate(FEATURE_KINDS):
        if kind == "rate":
            out[j] = np.expm1(max(out[j], 0.0)) / ref_seconds
        elif kind == "count":
            out[j] = np.expm1(max(out[j], 0.0))
    return out


def _round(v: float) -> float:
    return round(v, 4) if abs(v) < 100 else round(v, 1)
