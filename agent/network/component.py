# SPDX-License-Identifier: Apache-2.0
"""The netpolicy component: posture audit, managed wiring, least-privilege rules, SELinux.

On every discovered container ("added", and once for each container already known at start):

1. audit its network posture (findings RG-0101…RG-0106, each reported once per container);
2. when it is *managed* (``--network none`` + label ``network.managed_label=managed_value``),
   wire it with the configured backend (pyroute2 veth on the agent's bridge, or a CNI chain);
3. choose its allowlist (declared in config by image/label, else a learned one that was applied)
   and replace the ``inet riskguard_lp`` table in its netns; without one, a container in its
   learning period gets a learning table (dynamic sets of new flows, nothing dropped); when the
   period ends the learned flows (plus NetConnect events seen meanwhile) become a proposal,
   applied when ``network.learning.apply``;
4. write its udica-style CIL policy, compile-check it with secilc, load it when SELinux is on.

On "removed" the table is removed (if the netns still exists), the CNI chain is DELeted or the
veth removed, and the address released. A worker thread does all of this (registry listeners
never wait on netlink) and reads the deny counters every ``counters_interval_seconds``,
publishing ``PacketsDenied`` events. Rules are never put in the host's netns or in one shared
with another container.

This module is the orchestration; the parts live apart: ``attach`` (pyroute2/CNI backends),
``learning`` (learning periods and learned allowlists), ``selinux_sync`` (CIL files),
``counters`` (deny-counter deltas), ``state`` (per-container state and its store rows) and
``changes`` (the worker's queue).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import Counter, Gauge

from agent.context import AgentContext
from agent.events import NetConnect
from agent.network import allowlist as al
from agent.network import nft, posture, wiring
from agent.network.allowlist import Allowlist
from agent.network.attach import Attacher
from agent.network.changes import ChangeQueue
from agent.network.cni import CniRunner
from agent.network.counters import publish_deltas
from agent.network.learning import Learner
from agent.network.selinux_sync import SelinuxSync
from agent.network.state import StateStore, Tracked
from agent.runtime.model import Container
from agent.runtime.netns import NetnsError, container_netns, host_netns_inodes, in_netns
from agent.settings.network import NetworkSettings

log = structlog.get_logger("agent.network")


class NetpolicyComponent:
    """See the module docstring."""

    name = "netpolicy"

    def __init__(self, settings: NetworkSettings, learning_seconds: float) -> None:
        self.settings = settings
        self.learner = Learner(settings, learning_seconds)
        self.learning_seconds = self.learner.seconds
        self.pool = wiring.Pool.of(settings.subnet, settings.pool_start, settings.pool_end)
        self._ctx: AgentContext | None = None
        self._ipam: wiring.Ipam | None = None
        self._state: StateStore | None = None
        self._attacher: Attacher | None = None
        self._changes = ChangeQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._counters_lock = threading.Lock()
        self.tracked: dict[str, Tracked] = {}
        self.stats = {
            "audited": 0,
            "findings": 0,
            "wired": 0,
            "unwired": 0,
            "rules_applied": 0,
            "errors": 0,
            "learned": 0,
        }
        self.selinux = SelinuxSync(settings.selinux)
        self._host_inodes: set[int] = set()
        self._denied_metric: Counter | None = None
        self._managed_metric: Gauge | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, ctx: AgentContext) -> None:
        self._ctx = ctx
        self._ipam = wiring.Ipam(ctx.store, self.pool)
        self._state = StateStore(ctx.store)
        self._attacher = Attacher(self.settings, ctx.paths, self._ipam, self.pool)
        self._host_inodes = host_netns_inodes(ctx.paths)
        self.selinux.start(ctx.paths)
        self._denied_metric = Counter(
            "riskguard_netpolicy_denied_packets",
            "Packets that reached a container's least-privilege deny rule (dropped in enforce mode).",
            ["container", "direction"],
            registry=ctx.metrics,
        )
        self._managed_metric = Gauge(
            "riskguard_netpolicy_managed_containers", "Containers wired by the agent.", registry=ctx.metrics
        )
        ctx.control("netpolicy", self.describe)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="netpolicy", daemon=True)
        self._thread.start()
        for c in ctx.registry.all():
            self._enqueue("added", c)
        log.info(
            "netpolicy_started", mode=self.settings.mode, backend=self.settings.backend, subnet=str(self.pool.subnet)
        )

    def stop(self) -> None:
        """Stop the worker; rules, wiring and addresses stay (a restarted agent takes them over)."""
        self._stop.set()
        self._changes.wake()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        # A config reload starts a new instance on the same context: free the metric names.
        if self._ctx is not None:
            for metric in (self._denied_metric, self._managed_metric):
                if metric is not None:
                    with contextlib.suppress(KeyError):
                        self._ctx.metrics.unregister(metric)
        self._denied_metric = self._managed_metric = None

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued container change has been handled (tests, benchmarks)."""
        return self._changes.drain(timeout)

    def status(self) -> Mapping[str, Any]:
        with self._lock:
            containers = {cid[:12]: t.summary() for cid, t in self.tracked.items()}
        return {
            **self.stats,
            "mode": self.settings.mode,
            "backend": self.settings.backend,
            "bridge": self.settings.bridge if self.settings.backend == "pyroute2" else self.settings.cni.bridge,
            "selinux": self.selinux.status(),
            "denied_packets": sum(c["denied_packets"] for c in containers.values()),
            "containers": containers,
        }

    # --- queue -----------------------------------------------------------------------------
    def on_registry(self, what: str, c: Container) -> None:
        """Registry handler: queue the container's wiring, rules or clean-up."""
        if self._stop.is_set():
            return  # a stopped instance (registries keep their listeners across a reload)
        if what == "updated":
            with self._lock:
                t = self.tracked.get(c.id)
            if t is not None and t.container.netns_inode == c.netns_inode:
                return
            what = "added"
        if what in ("added", "removed"):
            self._enqueue(what, c)

    def _enqueue(self, what: str, c: Container) -> None:
        self._changes.put(what, c)

    def _run(self) -> None:
        next_tick = time.monotonic() + self.settings.counters_interval_seconds
        reconciled = False
        while not self._stop.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            what, c = self._changes.get(min(timeout, 1.0))
            if c is not None:
                try:
                    if what == "added":
                        self.handle_added(c)
                    elif what == "removed":
                        self.handle_removed(c)
                except Exception as exc:  # one container's failure must not stop the others
                    self.stats["errors"] += 1
                    log.error("netpolicy_failed", container_id=c.short_id, what=what, error=repr(exc))
                finally:
                    self._changes.done()
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self.settings.counters_interval_seconds
                try:
                    if not reconciled:
                        # One interval after start discovery has listed every running
                        # container: state left by containers that stopped while the agent
                        # was down can be released.
                        reconciled = True
                        self.reconcile()
                    self.tick()
                except Exception as exc:
                    self.stats["errors"] += 1
                    log.error("netpolicy_tick_failed", error=repr(exc))

    # --- store -------------------------------------------------------------------------------
    def _save(self, t: Tracked) -> None:
        assert self._state is not None
        self._state.save(t)

    def _load(self, cid: str) -> dict[str, Any] | None:
        assert self._state is not None
        return self._state.load(cid)

    # --- per container ---------------------------------------------------------------------
    def is_managed(self, c: Container) -> bool:
        return c.labels.get(self.settings.managed_label) == self.settings.managed_value

    def handle_added(self, c: Container) -> None:
        """Audit, wire, apply rules and write the SELinux policy of one container."""
        ctx = self._ctx
        assert ctx is not None and self._ipam is not None
        others = [o for o in ctx.registry.all() if o.id != c.id]
        found = posture.audit(c, others, self._host_inodes)
        self.stats["audited"] += 1
        if self.settings.audit:
            self._report_once(c, found)
        stored = self._load(c.id) or {}
        if stored and stored.get("netns_inode") != c.netns_inode:
            stored = {}  # a new netns (restarted container): learned state no longer applies
        t = Tracked(container=c)
        if stored.get("proposal"):
            t.proposal = Allowlist.from_dict(stored["proposal"])
        with self._lock:
            self.tracked[c.id] = t
        ids = {f.detector_id for f in found}
        own_netns = "RG-0101" not in ids and "RG-0102" not in ids and c.netns_inode not in self._host_inodes
        wire = False
        if self.is_managed(c):
            if c.details.get("network_mode", "none") != "none":
                log.warning("managed_refused", container_id=c.short_id, reason="network mode is not none")
            else:
                wire = own_netns
        declared = al.select(self.settings, c.image, c.labels)
        if declared is not None:
            t.allowlist = declared
        elif stored.get("allowlist"):
            t.allowlist = Allowlist.from_dict(stored["allowlist"])
        t.learning_until = self.learner.period_end(c, t, float(stored.get("learning_until") or 0), wire or None)
        # Fail closed: rules in the netns before eth0 comes up (pyroute2 or CNI ADD), or no wiring.
        if not own_netns:
            t.refused = "shares the host's or another container's network namespace"
        elif t.allowlist is not None:
            self._apply(t, t.allowlist, t.allowlist.mode)
        elif t.learning_until > time.time():
            self._apply(t, None, "observe", learning=True)
        if wire:
            t.managed = self._wire(c, stored.get("managed") or {})
        self._save(t)
        self._write_selinux(t)
        if self._managed_metric is not None:
            self._managed_metric.set(sum(1 for x in self.tracked.values() if x.managed))

    def _report_once(self, c: Container, found: list[Any]) -> None:
        assert self._ctx is not None and self._state is not None
        for f in found:
            if self._state.first_report(c.id, f.detector_id):
                self._ctx.report(f)
                self.stats["findings"] += 1
                log.info(
                    "posture_reported", container_id=c.short_id, detector_id=f.detector_id, severity=str(f.severity)
                )

    def _netns(self, c: Container) -> Path:
        assert self._ctx is not None
        return container_netns(self._ctx.paths, c)

    def _wire(self, c: Container, previous: Mapping[str, Any]) -> dict[str, Any]:
        assert self._attacher is not None
        managed, wired = self._attacher.attach(c, self._netns(c), previous)
        if wired:
            self.stats["wired"] += 1
        return managed

    def _cni_runner(self) -> CniRunner:
        assert self._attacher is not None
        return self._attacher.cni_runner()

    def _apply(self, t: Tracked, allow: Allowlist | None, mode: str, learning: bool = False) -> None:
        ns = self._netns(t.container)
        nft.apply(ns, nft.ruleset(allow, mode, learning=learning))
        t.rules = "learning" if learning else mode
        t.last_counters = {}
        self.stats["rules_applied"] += 1
        log.info(
            "rules_applied",
            container_id=t.container.short_id,
            mode=t.rules,
            allowlist=allow.source if allow else "",
            egress=len(allow.egress) if allow else 0,
            ingress=len(allow.ingress) if allow else 0,
        )

    def _write_selinux(self, t: Tracked) -> None:
        info = self.selinux.write(t.container, t.allowlist or t.proposal)
        if info:
            t.selinux = info

    def handle_removed(self, c: Container) -> None:
        """Remove rules, unwire and release the address of a stopped container."""
        assert self._ctx is not None and self._ipam is not None and self._state is not None
        assert self._attacher is not None
        with self._lock:
            t = self.tracked.pop(c.id, None)
        stored = self._load(c.id) or {}
        managed = (t.managed if t else {}) or stored.get("managed") or {}
        ns: Path | None = None
        try:
            ns = self._netns(c)
        except NetnsError:
            ns = None  # the netns went with the container (its table too)
        if ns is not None and t is not None and t.rules:
            try:
                nft.remove(ns)
            except Exception as exc:
                log.warning("rules_not_removed", container_id=c.short_id, error=repr(exc))
        errors = self._attacher.detach(c.id, ns, managed)
        if errors:
            log.warning("cni_del_failed", container_id=c.short_id, errors=errors)
        released = self._ipam.release(c.id)
        if managed:
            self.stats["unwired"] += 1
        self._state.forget(c.id)
        log.info("container_released", container_id=c.short_id, unwired=bool(managed), address_released=released)
        if self._managed_metric is not None:
            self._managed_metric.set(sum(1 for x in self.tracked.values() if x.managed))

    def reconcile(self) -> list[str]:
        """Release addresses, CNI leases and state of containers that are no longer running
        (stopped while the agent was down). Returns their ids."""
        assert self._ctx is not None and self._ipam is not None and self._state is not None
        assert self._attacher is not None
        running = self._ctx.registry.ids()
        known = self._state.known() | set(self._ipam.allocations())
        gone = sorted(known - running)
        for cid in gone:
            stored = self._load(cid) or {}
            managed = stored.get("managed") or {}
            self._attacher.detach(cid, None, managed)
            self._ipam.release(cid)
            self._state.forget(cid)
            log.info("stale_container_released", container_id=cid[:12], backend=managed.get("backend", ""))
        return gone

    # --- learning -------------------------------------------------------------------------
    def on_connect(self, ev: NetConnect) -> None:
        """Remember flows of learning containers (eBPF/audit NetConnect events)."""
        if ev.container is None:
            return
        with self._lock:
            t = self.tracked.get(ev.container.id)
            if t is not None:
                self.learner.observe(t, ev)

    def finish_learning(self, cid: str) -> Allowlist | None:
        """End a container's learning now: turn what it did into a proposal (applied when
        configured). Returns the learned allowlist."""
        with self._lock:
            t = self.tracked.get(cid)
        if t is None or t.rules != "learning":
            return None
        ns = self._netns(t.container)
        learned = self.learner.conclude(t, nft.read(ns) or {})
        self.stats["learned"] += 1
        if self.settings.learning.apply:
            t.allowlist = learned
            self._apply(t, learned, learned.mode)
        else:
            nft.remove(ns)
            t.rules = ""
        self._save(t)
        self._write_selinux(t)
        log.info(
            "allowlist_learned",
            container_id=t.container.short_id,
            egress=len(learned.egress),
            ingress=len(learned.ingress),
            applied=self.settings.learning.apply,
        )
        return learned

    # --- counters -------------------------------------------------------------------------
    def tick(self) -> None:
        """Finish due learning periods; read and publish deny counters."""
        now = time.time()
        with self._lock:
            items = list(self.tracked.values())
        for t in items:
            if self.learner.due(t, now):
                try:
                    self.finish_learning(t.container.id)
                except Exception as exc:
                    log.error("learning_failed", container_id=t.container.short_id, error=repr(exc))
            if t.rules:
                try:
                    self.read_counters(t)
                except Exception as exc:
                    log.debug("counters_unreadable", container_id=t.container.short_id, error=repr(exc))

    def read_counters(self, t: Tracked) -> dict[str, Any] | None:
        """Read the table; publish the deny-counter deltas since the last read."""
        with self._counters_lock:  # the worker's tick and the control socket both read
            return self._read_counters(t)

    def _read_counters(self, t: Tracked) -> dict[str, Any] | None:
        assert self._ctx is not None
        table = nft.read(self._netns(t.container))
        if table is not None:
            publish_deltas(t, table, self._ctx.publish, self._denied_metric)
        return table

    # --- control ---------------------------------------------------------------------------
    def describe(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``netpolicy`` control method: allowlist, proposal, rules as applied, counters."""
        assert self._ctx is not None
        ident = str(params.get("id") or "")
        c = self._ctx.registry.get(ident)
        if c is None:
            raise KeyError(f"no container {ident!r}")
        with self._lock:
            t = self.tracked.get(c.id)
        if t is None:
            raise KeyError(f"container {c.short_id} is not handled by netpolicy yet")
        table: dict[str, Any] | None = None
        error = ""
        if t.rules:
            try:
                table = self.read_counters(t)
            except Exception as exc:
                error = repr(exc)
        return t.describe(table, error)

    def enter(self, c: Container, fn: Any) -> Any:
        """Run ``fn`` inside the container's netns (tests and ``describe`` helpers)."""
        return in_netns(self._netns(c), fn)


def build(ctx: AgentContext) -> NetpolicyComponent | None:
    """The netpolicy component, or None when ``network.enabled`` is false."""
    settings = ctx.config.network
    if not settings.enabled:
        return None
    comp = NetpolicyComponent(settings, ctx.config.behavior.learning_seconds)
    return comp
