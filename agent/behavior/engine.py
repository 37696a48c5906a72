# SPDX-License-Identifier: Apache-2.0
"""Behaviour analysis without threads: learn per baseline, score batches, build findings.

``BehaviorEngine.process(windows, now)`` is the whole analysis of a batch of ``BehaviorWindow``
events; the component calls it from its own thread, tests call it directly. Per baseline key
(the container's image, or the value of its ``behavior.group_label`` label, so replicas share
one baseline):

1. *learning*: windows become training rows (stored) and their syscall transitions feed the
   bigram chain model, unless an open finding about the container's behaviour lies within
   ``taint_seconds`` of the window (posture and vulnerability findings never stop learning);
   once ``learning_seconds`` have passed since the first window and ``min_windows`` rows
   exist, the models are fitted and stored as version 1;
2. *scoring*: each window gets a ``WindowResult`` (feature model) and a sequence verdict on
   its syscall transitions (``seqlive.py``); deviating windows, unusual transition sequences,
   mode deviations, peer outliers and unseen sensitive syscall chains become findings, each
   explained by its surprising transitions, the nearest normal mode and the features that
   differ from it; a window without syscall counts where learning always had some is a
   measurement gap, not scored; clean, untainted windows extend the training set (refits
   every ``refit_seconds`` unless an operator froze the baseline).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import structlog

from agent.behavior.allowances import Allowances, baseline_key
from agent.behavior.baseline import BaselineStore
from agent.behavior.engine_types import BaselineState, ScoredWindow, explain
from agent.behavior.features import window_vector
from agent.behavior.fitproc import fit_models
from agent.behavior.model import DeviationModel, ModelError, WindowResult
from agent.behavior.ngram import ChainHit, NgramError, NgramModel
from agent.behavior.seqlive import encode_transitions, explanation, score_sequence, summary
from agent.behavior.seqwindow import TransitionWindowModel, WindowModelError
from agent.events import BehaviorWindow, ContainerRef
from agent.findings import TAINT_MIN_SEVERITY, Finding, Severity, Source
from agent.settings.behavior import BehaviorSettings
from agent.store import Store

log = structlog.get_logger("agent.behavior")

__all__ = ["DETECTOR_CHAIN", "DETECTOR_DEVIATION", "DETECTOR_MODE", "DETECTOR_PEER", "DETECTOR_SEQUENCE"]
__all__ += ["BehaviorEngine", "ScoredWindow"]

DETECTOR_DEVIATION = "behavior.deviation"
DETECTOR_MODE = "behavior.mode_deviation"
DETECTOR_PEER = "behavior.peer_outlier"
DETECTOR_CHAIN = "behavior.syscall_chain"
DETECTOR_SEQUENCE = "behavior.syscall_sequence"
FIT_RETRY_SECONDS = 60.0
# kv namespace of the chain counts learned since the last fit (saved every CHAIN_SAVE_EVERY
# learned windows and at stop, so a restart mid-learning keeps them).
CHAIN_KV = "behavior.chain_progress"
CHAIN_SAVE_EVERY = 20


class BehaviorEngine:
    """Per-baseline learning and scoring over the agent's store."""

    def __init__(self, settings: BehaviorSettings, store: Store) -> None:
        self.settings = settings
        self.db = BaselineStore(store)
        # Per-image allowances the detectors learn (shown, edited and relearned with the baseline).
        self.allowances = Allowances(store, settings)
        self.baselines: dict[str, BaselineState] = {}
        self._last_finding: dict[tuple[str, str], float] = {}
        # container -> (id, ts) of our own tainting findings not yet seen in the store
        self._pending_findings: dict[str, list[tuple[str, float]]] = {}
        self.counters: Counter[str] = Counter()

    # --- keys and state ---------------------------------------------------------------
    def baseline_key(self, c: ContainerRef) -> str:
        return baseline_key(c, self.settings.group_label)

    def baseline(self, key: str, now: float) -> BaselineState:
        b = self.baselines.get(key)
        if b is not None:
            return b
        row = self.db.get(key) or self.db.create(key, now)
        b = BaselineState(row=row)
        if row.state == "scoring":
            self._load_models(b)
        if b.model is None:
            # Learning (or an unusable stored model): resume the chain counts saved so far.
            b.row.state = "learning"
            saved = self.db.store.kv_get(CHAIN_KV, key)
            if saved is not None:
                try:
                    b.chain = NgramModel.from_json(saved)
                except NgramError as exc:
                    log.warning("chain_progress_discarded", image=key, error=str(exc))
        self.baselines[key] = b
        return b

    def _load_models(self, b: BaselineState) -> None:
        dev = self.db.load_model(b.row.image, "deviation")
        chain = self.db.load_model(b.row.image, "chain")
        if dev is None or chain is None:
            return
        try:
            b.model = DeviationModel.from_bytes(dev[1])
            b.chain = NgramModel.from_json(chain[1])
            b.row.version = dev[0]
            seq = self.db.load_model(b.row.image, "sequence", dev[0])
            b.seq = TransitionWindowModel.from_bytes(seq[1]) if seq is not None else None
            log.info("baseline_loaded", image=b.row.image, version=dev[0], windows=b.model.windows)
        except (ModelError, NgramError, WindowModelError) as exc:
            log.warning("baseline_model_discarded", image=b.row.image, error=str(exc))
            b.model, b.seq = None, None
            b.chain = NgramModel()

    # --- guards -----------------------------------------------------------------------
    def window_tainted(self, w: BehaviorWindow) -> bool:
        """True when an open finding about what ``w``'s container did (severity medium or more;
        posture and vulnerability findings never count) lies within ``taint_seconds`` of ``w``,
        including our own findings the store has not recorded yet."""
        assert w.container is not None
        cid = w.container.id
        lo, hi = w.start - self.settings.taint_seconds, w.end + self.settings.taint_seconds
        pending = self._pending_findings.get(cid)
        if pending:
            known = self.db.known_finding_ids([i for i, _ in pending])
            left = [(i, ts) for i, ts in pending if i not in known]
            if left:
                self._pending_findings[cid] = left
            else:
                self._pending_findings.pop(cid, None)
            if any(lo <= ts <= hi for _, ts in left):
                return True
        return self.db.behaviour_finding_near(cid, lo, hi)

    # --- the batch --------------------------------------------------------------------
    def process(self, windows: Sequence[BehaviorWindow], now: float | None = None) -> list[ScoredWindow]:
        """Learn from or score every window of the batch; return one ``ScoredWindow`` each."""
        import numpy as np

        out: list[ScoredWindow] = []
        latest = 0.0
        to_score: dict[str, list[tuple[BehaviorWindow, list[float]]]] = {}
        for w in windows:
            if w.container is None:
                self.counters["no_container"] += 1
                continue
            try:
                vec = window_vector(w)
            except (TypeError, ValueError, AttributeError) as exc:
                self.counters["malformed"] += 1
                log.warning("window_skipped", container_id=w.container.short_id, error=repr(exc))
                continue
            # Event time drives learning periods, refits and cooldowns (replays behave like live).
            t = w.end if now is None else now
            latest = max(latest, t)
            key = self.baseline_key(w.container)
            b = self.baseline(key, t)
            if b.model is None:
                sw = ScoredWindow(window=w, key=key, learning=True)
                if not self.window_tainted(w):
                    self._learn(b, w, vec)
                    sw.learned = True
                else:
                    self.counters["not_learned_behaviour_finding"] += 1
                out.append(sw)
                self._maybe_fit(b, t)
            elif b.model.syscall_gap(vec):  # the kernel's counts missed this window
                self.counters["syscall_gap"] += 1
                out.append(ScoredWindow(window=w, key=key, learning=False))
            else:
                to_score.setdefault(key, []).append((w, vec))
        for key, items in to_score.items():
            b = self.baselines[key]
            assert b.model is not None
            results = b.model.score_raw(np.asarray([v for _, v in items]))
            for (w, vec), res in zip(items, results, strict=True):
                out.append(self._after_score(b, w, vec, res, w.end if now is None else now))
            self._maybe_refit(b, latest)
        return out

    def _learn(self, b: BaselineState, w: BehaviorWindow, vec: list[float]) -> None:
        assert w.container is not None
        self.db.add_training(b.row.image, w.container.id, w.end, vec, encode_transitions(w.transitions))
        b.chain.add_transitions(w.transitions)
        b.pending_rows += 1
        self.counters["learned"] += 1
        if b.model is None and b.pending_rows % CHAIN_SAVE_EVERY == 0:
            self.db.store.kv_put(CHAIN_KV, b.row.image, b.chain.to_json().encode())
        if b.pending_rows % self.settings.max_windows == 0:
            # Continued learning between refits must not grow the table without bound.
            self.db.trim_training(b.row.image, self.settings.max_windows)

    def _after_score(
        self,
        b: BaselineState,
        w: BehaviorWindow,
        vec: list[float],
        res: WindowResult,
        now: float,
    ) -> ScoredWindow:
        assert w.container is not None and b.model is not None
        c = w.container
        self.counters["scored"] += 1
        hits: tuple[ChainHit, ...] = ()
        if self.settings.syscall_chain.enabled:
            hits = tuple(b.chain.chain_hits(w.transitions, self.settings.syscall_chain.rare_fraction))
        unseen = b.chain.unseen_transitions(w.transitions)
        seq = score_sequence(b.seq, w.transitions, self.settings.sequence.surprising) if b.seq else None
        findings: list[Finding] = []
        evidence_base: dict[str, Any] = {
            "baseline": b.row.image,
            "model_version": b.row.version,
            "period": {"start": w.start, "end": w.end, "sources": sorted(w.sources)},
        }
        if res.deviating or res.mode_deviation or (seq is not None and seq.anomalous):
            # sequence: surprising transitions; window: nearest normal mode, differing features
            evidence_base.update(explanation(b.model, vec, seq, self.settings.top_features, b.seq, w.transitions))
        if seq is not None and seq.anomalous:
            self.counters["sequence_anomalous"] += 1
        if seq is not None and seq.anomalous and seq.unseen >= self.settings.sequence.min_unseen:
            f = self._finding(
                c,
                Source.BEHAVIOR,
                DETECTOR_SEQUENCE,
                Severity.MEDIUM,
                f"unusual syscall sequences in {c.name or c.short_id} for baseline {b.row.image} "
                f"(score {seq.result.score:.3f} > {seq.result.threshold:.3f}, {seq.unseen} unseen transitions): "
                + summary(seq, evidence_base.get("window")),
                {**evidence_base, "unseen_transitions": unseen},
                now,
            )
            if f:
                findings.append(f)
        if res.deviating:
            self.counters["deviating"] += 1
            f = self._finding(
                c,
                Source.BEHAVIOR,
                DETECTOR_DEVIATION,
                Severity.HIGH if res.novelty and res.score > res.threshold else Severity.MEDIUM,
                f"behaviour of {c.name or c.short_id} deviates from baseline {b.row.image}: " + explain(res),
                {**evidence_base, **res.to_dict(), "unseen_transitions": unseen},
                now,
            )
            if f:
                findings.append(f)
        elif res.mode_deviation:
            self.counters["mode_deviation"] += 1
            f = self._finding(
                c,
                Source.BEHAVIOR,
                DETECTOR_MODE,
                Severity.LOW,
                f"{c.name or c.short_id} is far from every behaviour mode of {b.row.image}: " + explain(res),
                {**evidence_base, **res.to_dict()},
                now,
            )
            if f:
                findings.append(f)
        if hits:
            self.counters["chain_hits"] += 1
            top = hits[0]
            f = self._finding(
                c,
                Source.SYSCALL_CHAIN,
                DETECTOR_CHAIN,
                # Unseen alone is not proof (a 120 s learning period misses many benign
                # transitions into execve): an alert that explains, never an action on its own.
                Severity.MEDIUM,
                f"unseen syscall chain in {c.name or c.short_id}: "
                + ", ".join(h.chain for h in hits[:5])
                + f" never seen in baseline {b.row.image}",
                {
                    **evidence_base,
                    "chains": [h.to_dict() for h in hits[:20]],
                    "reverse_shell_shape": any(h.reverse_shell_shape for h in hits),
                    "unseen_transitions": unseen,
                },
                now,
                mitre=top.mitre,
            )
            if f:
                findings.append(f)
        peer = self._peer_update(b, c, res.mode, now)
        if peer:
            findings.append(peer)
        learned = False
        clean = not (res.deviating or res.mode_deviation or hits or (seq is not None and seq.anomalous))
        # Continued learning only feeds refits: with refits off (or frozen), nothing is kept.
        if clean and not b.row.frozen and self.settings.refit_seconds > 0 and not self.window_tainted(w):
            self._learn(b, w, vec)
            learned = True
        return ScoredWindow(
            window=w,
            key=b.row.image,
            learning=False,
            result=res,
            chain_hits=hits,
            sequence=seq,
            unseen_transitions=unseen,
            learned=learned,
            findings=tuple(findings),
        )

    # --- peers ------------------------------------------------------------------------
    def _peer_update(self, b: BaselineState, c: ContainerRef, mode: int, now: float) -> Finding | None:
        if mode < 0 or b.model is None or b.model.modes < 2:
            return None
        ev = b.peers.update(c.id, mode, b.model.modes, self.settings.modes)
        if ev is None:
            return None
        self.counters["peer_outlier"] += 1
        return self._finding(
            c,
            Source.BEHAVIOR,
            DETECTOR_PEER,
            Severity.LOW,
            f"{c.name or c.short_id} behaves unlike its {ev['replicas']} replica(s) of {b.row.image} "
            f"(mode-mix distance {ev['tvd']:.2f})",
            {"baseline": b.row.image, **ev},
            now,
        )

    # --- fitting ----------------------------------------------------------------------
    def _maybe_fit(self, b: BaselineState, now: float) -> None:
        s = self.settings
        if now - b.row.first_seen < s.learning_seconds or b.pending_rows == 0:
            return
        if self.db.training_count(b.row.image) < s.min_windows:
            return
        self._try_fit(b, now)

    def _maybe_refit(self, b: BaselineState, now: float) -> None:
        s = self.settings
        if b.row.frozen or s.refit_seconds <= 0 or b.pending_rows == 0:
            return
        if now - b.row.fitted >= s.refit_seconds:
            self._try_fit(b, now)

    def _try_fit(self, b: BaselineState, now: float) -> None:
        if now - b.fit_failed_at < FIT_RETRY_SECONDS:
            return
        try:
            self.fit(b.row.image, now)
        except ModelError as exc:
            b.fit_failed_at = now
            self.counters["fit_failures"] += 1
            log.error("baseline_fit_failed", image=b.row.image, error=str(exc))

    def fit(self, key: str, now: float | None = None) -> int:
        """Fit (or refit) the models of baseline ``key`` from its stored rows; return the version."""
        now = time.time() if now is None else now
        b = self.baseline(key, now)
        s = self.settings
        self.db.trim_training(key, s.max_windows)
        ts = self.db.training_set(key, s.max_windows)
        fitted = fit_models(ts.rows, ts.transitions, ts.containers, s)
        model, rows = fitted.deviation, ts.rows
        blobs = {"deviation": model.to_bytes(), "chain": b.chain.to_json().encode()}
        if fitted.sequence is not None:
            blobs["sequence"] = fitted.sequence.to_bytes()
        elif fitted.sequence_error != "disabled":
            log.warning("sequence_model_not_fitted", image=key, error=fitted.sequence_error)
        meta = {**model.meta, "sequence": fitted.sequence.meta if fitted.sequence else fitted.sequence_error}
        version = self.db.save_models(key, blobs, s.algorithm, int(rows.shape[0]), meta, now)
        b.model, b.seq = model, fitted.sequence
        b.row.state, b.row.version, b.row.fitted = "scoring", version, now
        self.db.store.kv_delete(CHAIN_KV, key)
        b.pending_rows = 0
        self.counters["fits"] += 1
        log.info(
            "baseline_fitted",
            image=key,
            version=version,
            windows=int(rows.shape[0]),
            threshold=round(model.threshold, 5),
            modes=model.modes,
            sequence_threshold=round(b.seq.threshold, 4) if b.seq else None,
            fit_seconds=model.meta.get("fit_seconds"),
        )
        return version

    def save_progress(self) -> None:
        """Persist the chain counts of baselines still learning (called at stop)."""
        for key, b in self.baselines.items():
            if b.model is None and b.pending_rows:
                self.db.store.kv_put(CHAIN_KV, key, b.chain.to_json().encode())

    def forget_container(self, container_id: str) -> None:
        """Drop per-container state (peer mode history, cooldowns) of a removed container."""
        for b in self.baselines.values():
            b.peers.forget(container_id)
        for k in [k for k in self._last_finding if k[0] == container_id]:
            del self._last_finding[k]
        self._pending_findings.pop(container_id, None)

    # --- operator ---------------------------------------------------------------------
    def freeze(self, key: str, frozen: bool = True) -> bool:
        ok = self.db.set_frozen(key, frozen)
        if key in self.baselines:
            self.baselines[key].row.frozen = frozen
        return ok

    def reload(self, key: str) -> None:
        """Forget the in-memory state of ``key``: the next window loads it from the store."""
        self.baselines.pop(key, None)

    def relearn(self, key: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.db.reset(key, now)
        self.allowances.forget_learned(key)
        self.db.store.kv_delete(CHAIN_KV, key)
        self.baselines.pop(key, None)

    # --- findings ---------------------------------------------------------------------
    def _finding(
        self,
        c: ContainerRef,
        source: Source,
        detector: str,
        severity: Severity,
        summary: str,
        evidence: dict[str, Any],
        now: float,
        mitre: str = "",
    ) -> Finding | None:
        last = self._last_finding.get((c.id, detector))
        if last is not None and now - last < self.settings.finding_cooldown_seconds:
            self.counters["findings_suppressed"] += 1
            return None
        self._last_finding[(c.id, detector)] = now
        f = Finding(
            container=c,
            source=source,
            detector_id=detector,
            severity=severity,
            summary=summary,
            evidence=evidence,
            mitre=mitre,
            ts=now,
        )
        if severity >= TAINT_MIN_SEVERITY:
            self._pending_findings.setdefault(c.id, []).append((f.id, now))
        self.counters[f"finding:{detector}"] += 1
        return f
