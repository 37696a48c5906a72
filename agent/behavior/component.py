# SPDX-License-Identifier: Apache-2.0
"""The behaviour component: consumes ``BehaviorWindow`` events, reports findings.

The bus handler only enqueues (a full queue counts a drop); one daemon thread drains the queue in
batches (``batch_size`` windows or ``batch_seconds``, whichever comes first) and runs
``BehaviorEngine.process``, so fitting and scoring never sit on the event dispatcher or the
response path. Control method ``baseline`` lets an operator list, freeze, unfreeze, refit or
relearn baselines.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import Counter as PromCounter

from agent.behavior import baseline_ops
from agent.behavior.engine import BehaviorEngine, ScoredWindow
from agent.context import AgentContext
from agent.events import BehaviorWindow
from agent.pipeline import BoundedQueue
from agent.sources.collectors import StatusCollector

log = structlog.get_logger("agent.behavior")


class BehaviorComponent:
    """Learns baselines per image and scores windows against them on its own thread."""

    name = "behavior"

    def __init__(self, ctx: AgentContext) -> None:
        self.settings = ctx.config.behavior
        self.engine = BehaviorEngine(self.settings, ctx.store)
        self.queue: BoundedQueue[BehaviorWindow] = BoundedQueue("behavior", self.settings.queue_size)
        self._ctx: AgentContext | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.last_batch_seconds = 0.0
        self.recent: list[ScoredWindow] = []  # the last batch's outcomes (status, tests)
        self._windowed: set[str] = set()  # containers whose first (partial) window went by
        self._m_windows = PromCounter(
            "riskguard_behavior_windows",
            "Behaviour windows handled, by outcome",
            ["outcome"],
            registry=ctx.metrics,
        )
        self._m_findings = PromCounter(
            "riskguard_behavior_findings",
            "Behaviour findings reported, by detector",
            ["detector"],
            registry=ctx.metrics,
        )
        # A count, so a counter (riskguard_behavior_dropped_total), read from status() at scrape.
        ctx.metrics.register(
            StatusCollector("riskguard_behavior", self.status, [("dropped", "Windows dropped on a full queue")])
        )

    # --- component protocol -----------------------------------------------------------
    def start(self, ctx: AgentContext) -> None:
        self._ctx = ctx
        ctx.control("baseline", self.control_baseline)
        if self.settings.baseline_import_dir:
            with self._lock:
                baseline_ops.import_dir(self.engine, Path(self.settings.baseline_import_dir), ctx.paths.state)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="behavior-scorer", daemon=True)
        self._thread.start()
        log.info(
            "behavior_started",
            learning_seconds=self.settings.learning_seconds,
            algorithm=self.settings.algorithm,
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            try:
                self.engine.save_progress()
            except Exception as exc:  # the store may already be closing at shutdown
                log.warning("behavior_progress_not_saved", error=repr(exc))

    def status(self) -> Mapping[str, Any]:
        return {
            "queue_depth": self.queue.qsize(),
            "dropped": sum(self.queue.dropped.values()),
            "counters": dict(self.engine.counters),
            "last_batch_seconds": round(self.last_batch_seconds, 4),
            "baselines": len(self.engine.db.all()),
        }

    def on_container(self, what: str, c: Any) -> None:
        """Registry handler: forget a removed container's windows."""
        if what == "removed":
            with self._lock:
                self.engine.forget_container(c.id)
            self._windowed.discard(c.id)

    # --- input ------------------------------------------------------------------------
    def on_window(self, w: BehaviorWindow) -> None:
        """Bus handler: enqueue, never block. A container's first window is partial (it, or the
        agent, started within it, so its rates are low): while its image learns it is learned (a
        start-up that listens or execs belongs to the baseline), once the image is scored it is
        not judged."""
        if w.container is not None and w.container.id not in self._windowed:
            self._windowed.add(w.container.id)
            b = self.engine.baselines.get(self.engine.baseline_key(w.container))
            if b is not None and b.model is not None:
                self.engine.counters["first_window_not_scored"] += 1
                return
        self.queue.put(w, key="behavior_window")

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every enqueued window has been processed (tests)."""
        return self.queue.drain(timeout)

    def _run(self) -> None:
        s = self.settings
        while not self._stop.is_set():
            first = self.queue.get(timeout=0.2)
            if first is None:
                continue
            batch = [first]
            deadline = time.monotonic() + s.batch_seconds
            while len(batch) < s.batch_size:
                item = self.queue.get(timeout=max(0.0, min(0.05, deadline - time.monotonic())))
                if item is not None:
                    batch.append(item)
                elif time.monotonic() >= deadline:
                    break
            try:
                self.process_batch(batch)
            except Exception as exc:  # one bad batch must not kill the scorer thread
                log.error("batch_failed", windows=len(batch), error=repr(exc))
                self._m_windows.labels("error").inc(len(batch))
            finally:
                self.queue.done(len(batch))

    def process_batch(self, batch: list[BehaviorWindow]) -> list[ScoredWindow]:
        started = time.perf_counter()
        with self._lock:
            results = self.engine.process(batch)
        self.last_batch_seconds = time.perf_counter() - started
        self.recent = results
        for r in results:
            self._m_windows.labels("learning" if r.learning else "scored").inc()
            for f in r.findings:
                self._m_findings.labels(f.detector_id).inc()
                log.info(
                    "behavior_finding_reported",
                    container_id=f.container_id[:12],
                    detector_id=f.detector_id,
                    summary=f.summary,
                )
                if self._ctx is not None:
                    self._ctx.report(f)
        return results

    # --- control ----------------------------------------------------------------------
    def control_baseline(self, params: Mapping[str, Any]) -> Any:
        """``baseline`` control method: ``{"action": list|show|freeze|unfreeze|fit|relearn|allow|deny|
        forget|export|import, "image": key, ...}`` (allowances and transfer: ``baseline_ops``)."""
        action = str(params.get("action", "list"))
        if action in baseline_ops.ACTIONS:
            if self._ctx is None:
                raise ValueError("the behaviour component is not running")
            with self._lock:
                return baseline_ops.run(self.engine, action, params, self._ctx.paths.state)
        if action == "list":
            # Without the engine lock: a fit (seconds to a minute on a busy host) holds it, and
            # listing only reads the store and a snapshot of the loaded baselines.
            return {"baselines": baseline_ops.describe(self.engine)}
        image = params.get("image")
        if not isinstance(image, str) or not image:
            raise ValueError("'image' (the baseline key, see action=list) is required")
        with self._lock:
            if action in ("freeze", "unfreeze"):
                if not self.engine.freeze(image, action == "freeze"):
                    raise ValueError(f"no baseline {image!r}")
                log.info("baseline_frozen" if action == "freeze" else "baseline_unfrozen", image=image)
                return {"image": image, "frozen": action == "freeze"}
            if action == "fit":
                return {"image": image, "version": self.engine.fit(image)}
            if action == "relearn":
                self.engine.relearn(image)
                log.info("baseline_reset", image=image)
                return {"image": image, "state": "learning"}
        raise ValueError(
            f"unknown action {action!r} (list, freeze, unfreeze, fit, relearn, {', '.join(baseline_ops.ACTIONS)})"
        )


def build(ctx: AgentContext) -> BehaviorComponent | None:
    """The behaviour component, or None when ``behavior.enabled`` is false."""
    if not ctx.config.behavior.enabled:
        return None
    return BehaviorComponent(ctx)
