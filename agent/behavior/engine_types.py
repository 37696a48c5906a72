# SPDX-License-Identifier: Apache-2.0
"""The behaviour engine's values: a baseline's in-memory state, a scored window, and the
one-line explanation of a deviating window that findings carry."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.behavior.baseline import BaselineRow
from agent.behavior.model import DeviationModel, WindowResult
from agent.behavior.ngram import ChainHit, NgramModel
from agent.behavior.peers import Peers
from agent.behavior.seqlive import SequenceVerdict
from agent.behavior.seqwindow import TransitionWindowModel
from agent.events import BehaviorWindow
from agent.findings import Finding


@dataclass
class BaselineState:
    """One baseline as the engine holds it: its row, fitted models and learning progress."""

    row: BaselineRow
    model: DeviationModel | None = None
    seq: TransitionWindowModel | None = None  # the sequence model of transition windows
    chain: NgramModel = field(default_factory=NgramModel)
    pending_rows: int = 0  # training rows added since the last fit
    fit_failed_at: float = -1e18  # a failed fit is retried FIT_RETRY_SECONDS later
    peers: Peers = field(default_factory=Peers)  # replicas' mode mixes


@dataclass
class ScoredWindow:
    """One window's outcome, as ``process`` returns it (tests and status read these)."""

    window: BehaviorWindow
    key: str
    learning: bool
    result: WindowResult | None = None
    chain_hits: tuple[ChainHit, ...] = ()
    sequence: SequenceVerdict | None = None
    unseen_transitions: int = 0
    learned: bool = False
    findings: tuple[Finding, ...] = ()


def explain(res: WindowResult, k: int = 3) -> str:
    """The ``k`` features that deviate most, with their normal ranges (or the score)."""
    parts = []
    for c in res.top[:k]:
        d = c.to_dict()
        parts.append(f"{c.name}={d['value']} (normal {d['normal_range'][0]}..{d['normal_range'][1]})")
    return ", ".join(parts) if parts else f"score {res.score:.3f} > {res.threshold:.3f}"
