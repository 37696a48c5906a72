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
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import Counter, Gauge

from agent.context import AgentContext
from agent.events import NetConnect, PacketsDenied
from agent.network import allowlist as al
from agent.network import nft, posture, selinux, wiring
from agent.network.allowlist import Allowlist
from agent.network.cni import CniError, CniRunner, build_conflist
from agent.network.nsexec import NetnsError, in_netns
from agent.response.quarantine import QuarantineError, container_netns, host_netns_inodes
from agent.runtime.model import Container
from agent.settings.network import NetworkSettings

log = structlog.get_logger("agent.network")


@dataclass
class Tracked:
    """What the component holds about one container."""

    container: Container
    managed: dict[str, Any] = field(default_factory=dict)
    allowlist: Allowlist | None = None
    proposal: Allowlist | None = None
    learning_until: float = 0.0
    rules: str = ""  # "" | enforce | observe | learning
    refused: str = ""  # why rules were not applied
    selinux: dict[str, Any] = field(default_factory=dict)
    last_counters: dict[str, dict[str, int]] = field(default_factory=dict)
    last_read: float = 0.0
    denied_packets: int = 0
    seen_egress: set[tuple[str, str, int]] = field(default_factory=set)
    seen_ingress: set[tuple[str, int]] = field(default_factory=set)


class NetpolicyComponent:
    """See the module docstring."""

    name = "netpolicy"

    def __init__(self, settings: NetworkSettings, learning_seconds: float) -> None:
        self.settings = settings
        self.learning_seconds = settings.learning.seconds if settings.learning.seconds is not None else learning_seconds
        self.pool = wiring.Pool.of(settings.subnet, settings.pool_start, settings.pool_end)
        self._ctx: AgentContext | None = None
        self._ipam: wiring.Ipam | None = None
        self._q: queue.Queue[tuple[str, Container | None]] = queue.Queue()
        self._pending = 0
        self._cond = threading.Condition()
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
        self.selinux_enabled = False
        self.selinux_dir = Path()
        self._host_inodes: set[int] = set()
        self._denied_metric: Counter | None = None
        self._managed_metric: Gauge | None = None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, ctx: AgentContext) -> None:
        self._ctx = ctx
        self._ipam = wiring.Ipam(ctx.store, self.pool)
        self._host_inodes = host_netns_inodes(ctx.paths)
        sel = self.settings.selinux
        self.selinux_dir = Path(sel.directory) if sel.directory else ctx.paths.state / "selinux"
        self.selinux_enabled = selinux.selinux_enabled(ctx.paths.sys)
        if sel.enabled:
            self.selinux_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            written = len(list(self.selinux_dir.glob("*.cil")))
            if self.selinux_enabled:
                log.info(
                    "selinux_enabled",
                    policies_written=written,
                    enforced=bool(sel.load),
                    directory=str(self.selinux_dir),
                )
            else:
                log.warning(
                    "selinux_disabled", policies_written=written, enforced=False, directory=str(self.selinux_dir)
                )
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
        ctx.events.subscribe(self.on_connect, kind=NetConnect, name="netpolicy.learn")
        ctx.registry.add_listener(self._on_registry)
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
        self._q.put(("stop", None))
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
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def status(self) -> Mapping[str, Any]:
        with self._lock:
            containers = {
                cid[:12]: {
                    "name": t.container.name,
                    "managed": t.managed.get("address", ""),
                    "rules": t.rules,
                    "refused": t.refused,
                    "allowlist": t.allowlist.source if t.allowlist else "",
                    "learning": t.rules == "learning",
                    "denied_packets": t.denied_packets,
                }
                for cid, t in self.tracked.items()
            }
        return {
            **self.stats,
            "mode": self.settings.mode,
            "backend": self.settings.backend,
            "bridge": self.settings.bridge if self.settings.backend == "pyroute2" else self.settings.cni.bridge,
            "selinux": {
                "enabled": self.selinux_enabled,
                "policies_written": len(list(self.selinux_dir.glob("*.cil"))) if self.selinux_dir.is_dir() else 0,
                "enforced": self.selinux_enabled and self.settings.selinux.load,
            },
            "denied_packets": sum(c["denied_packets"] for c in containers.values()),
            "containers": containers,
        }

    # --- queue -----------------------------------------------------------------------------
    def _on_registry(self, what: str, c: Container) -> None:
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
        with self._cond:
            self._pending += 1
        self._q.put((what, c))

    def _run(self) -> None:
        next_tick = time.monotonic() + self.settings.counters_interval_seconds
        reconciled = False
        while not self._stop.is_set():
            timeout = max(0.0, next_tick - time.monotonic())
            try:
                what, c = self._q.get(timeout=min(timeout, 1.0))
            except queue.Empty:
                what, c = "", None
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
                    with self._cond:
                        self._pending -= 1
                        self._cond.notify_all()
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
        assert self._ctx is not None
        self._ctx.store.execute(
            "INSERT INTO netpolicy_state(container_id, container_name, netns_inode, managed, allowlist, proposal, "
            "learning_until, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(container_id) DO UPDATE SET "
            "container_name = excluded.container_name, netns_inode = excluded.netns_inode, managed = excluded.managed, "
            "allowlist = excluded.allowlist, proposal = excluded.proposal, learning_until = excluded.learning_until, "
            "updated = excluded.updated",
            (
                t.container.id,
                t.container.name,
                t.container.netns_inode,
                json.dumps(t.managed),
                json.dumps(t.allowlist.to_dict() if t.allowlist and t.allowlist.source == "learned" else None),
                json.dumps(t.proposal.to_dict() if t.proposal else None),
                t.learning_until,
                time.time(),
            ),
        )

    def _load(self, cid: str) -> dict[str, Any] | None:
        assert self._ctx is not None
        rows = self._ctx.store.query("SELECT * FROM netpolicy_state WHERE container_id = ?", (cid,))
        if not rows:
            return None
        r = rows[0]
        out: dict[str, Any] = {"netns_inode": int(r["netns_inode"]), "learning_until": float(r["learning_until"])}
        for key in ("managed", "allowlist", "proposal"):
            try:
                out[key] = json.loads(r[key])
            except ValueError:
                out[key] = None
        return out

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
        if self.is_managed(c):
            if c.details.get("network_mode", "none") != "none":
                log.warning("managed_refused", container_id=c.short_id, reason="network mode is not none")
            elif own_netns:
                t.managed = self._wire(c, stored.get("managed") or {})
        declared = al.select(self.settings, c.image, c.labels)
        if declared is not None:
            t.allowlist = declared
        elif stored.get("allowlist"):
            t.allowlist = Allowlist.from_dict(stored["allowlist"])
        learn_ok = self.settings.learning.enabled and (t.managed or not self.settings.learning.managed_only)
        if t.allowlist is None and learn_ok and t.proposal is None:
            until = float(stored.get("learning_until") or 0.0)
            if not until:
                until = max(c.started_at or 0.0, time.time() - 5.0) + self.learning_seconds
            t.learning_until = until
        if not own_netns:
            t.refused = "shares the host's or another container's network namespace"
        elif t.allowlist is not None:
            self._apply(t, t.allowlist, t.allowlist.mode)
        elif t.learning_until > time.time():
            self._apply(t, None, "observe", learning=True)
        self._save(t)
        self._write_selinux(t)
        if self._managed_metric is not None:
            self._managed_metric.set(sum(1 for x in self.tracked.values() if x.managed))

    def _report_once(self, c: Container, found: list[Any]) -> None:
        assert self._ctx is not None
        for f in found:
            cur = self._ctx.store.execute(
                "INSERT OR IGNORE INTO netpolicy_reported(container_id, detector_id, ts) VALUES (?, ?, ?)",
                (c.id, f.detector_id, time.time()),
            )
            if cur.rowcount:
                self._ctx.report(f)
                self.stats["findings"] += 1
                log.info(
                    "posture_reported", container_id=c.short_id, detector_id=f.detector_id, severity=str(f.severity)
                )

    def _netns(self, c: Container) -> Path:
        assert self._ctx is not None
        return container_netns(self._ctx.paths, c)

    def _wire(self, c: Container, previous: Mapping[str, Any]) -> dict[str, Any]:
        assert self._ctx is not None and self._ipam is not None
        ns = self._netns(c)
        t0 = time.perf_counter()
        if self.settings.backend == "cni":
            runner = self._cni_runner()
            cached = previous.get("result") if previous.get("backend") == "cni" else None
            if cached:
                try:
                    runner.check(c.id, str(ns), cached)
                    log.info("container_rewired", container_id=c.short_id, backend="cni", check="ok")
                    return dict(previous)
                except CniError as exc:
                    log.warning("cni_check_failed", container_id=c.short_id, error=str(exc))
                    runner.delete(c.id, str(ns), cached)
            res = runner.add(c.id, str(ns))
            managed = {
                "backend": "cni",
                "ifname": "eth0",
                "address": res.address,
                "prefixlen": res.prefixlen,
                "gateway": res.gateway,
                "bridge": self.settings.cni.bridge,
                "host_ifname": res.host_interface(self.settings.cni.bridge),
                "mac": res.container_mac("eth0"),
                "result": dict(res.raw),
            }
        else:
            addr = self._ipam.allocate(c.id)
            try:
                w = wiring.wire(ns, c.init_pid, c.id, self.settings.bridge, self.pool, addr, self.settings.mtu)
            except Exception:
                self._ipam.release(c.id)
                raise
            managed = w.to_dict()
        managed["wired_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        self.stats["wired"] += 1
        log.info(
            "container_wired",
            container_id=c.short_id,
            backend=managed["backend"],
            address=managed["address"],
            host_ifname=managed.get("host_ifname", ""),
            ms=managed["wired_ms"],
        )
        return managed

    def _cni_runner(self) -> CniRunner:
        assert self._ctx is not None
        cni = self.settings.cni
        bin_dir = Path(cni.bin_dir) if cni.bin_dir else self._ctx.paths.cni_bin
        conflist = build_conflist(
            cni, self.settings.subnet, self._ctx.paths.state / "cni" / "networks", self.settings.mtu
        )
        return CniRunner(conflist, [bin_dir], timeout=cni.timeout_seconds)

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
        sel = self.settings.selinux
        if not sel.enabled:
            return
        c = t.container
        name = selinux.block_name(c.name, c.id)
        lookup: Any = None
        if self.selinux_enabled:
            try:
                import selinux as libselinux

                lookup = lambda path: str(libselinux.matchpathcon(path, 0)[1])  # noqa: E731
            except ImportError:
                lookup = None
        policy = selinux.generate(name, c.details, t.allowlist or t.proposal, lookup)
        path = self.selinux_dir / f"{name}.cil"
        tmp = path.with_suffix(".cil.tmp")
        tmp.write_text(policy.text)
        os.replace(tmp, path)
        info: dict[str, Any] = {"file": str(path), "block": name, "compiled": None, "loaded": False, "error": ""}
        templates = Path(sel.templates) if sel.templates else selinux.TEMPLATES_DIR
        if sel.compile_check:
            try:
                selinux.compile_check(path, templates)
                info["compiled"] = True
            except selinux.SelinuxError as exc:
                info["compiled"] = False
                info["error"] = str(exc)
                log.error("selinux_policy_invalid", container_id=c.short_id, file=str(path), error=str(exc))
        if self.selinux_enabled and sel.load and info["compiled"] is not False:
            try:
                selinux.load(path, templates)
                info["loaded"] = True
            except selinux.SelinuxError as exc:
                info["error"] = str(exc)
        t.selinux = info
        log.info(
            "selinux_policy_written",
            container_id=c.short_id,
            file=str(path),
            compiled=info["compiled"],
            loaded=info["loaded"],
        )

    def handle_removed(self, c: Container) -> None:
        """Remove rules, unwire and release the address of a stopped container."""
        assert self._ctx is not None and self._ipam is not None
        with self._lock:
            t = self.tracked.pop(c.id, None)
        stored = self._load(c.id) or {}
        managed = (t.managed if t else {}) or stored.get("managed") or {}
        ns: Path | None = None
        try:
            ns = self._netns(c)
        except (QuarantineError, NetnsError):
            ns = None  # the netns went with the container (its table too)
        if ns is not None and t is not None and t.rules:
            try:
                nft.remove(ns)
            except Exception as exc:
                log.warning("rules_not_removed", container_id=c.short_id, error=repr(exc))
        if managed.get("backend") == "cni":
            errors = self._cni_runner().delete(c.id, str(ns) if ns else "", managed.get("result"))
            if errors:
                log.warning("cni_del_failed", container_id=c.short_id, errors=errors)
        elif managed:
            wiring.unwire(c.id)
        released = self._ipam.release(c.id)
        if managed:
            self.stats["unwired"] += 1
        self._ctx.store.execute("DELETE FROM netpolicy_state WHERE container_id = ?", (c.id,))
        self._ctx.store.execute("DELETE FROM netpolicy_reported WHERE container_id = ?", (c.id,))
        log.info("container_released", container_id=c.short_id, unwired=bool(managed), address_released=released)
        if self._managed_metric is not None:
            self._managed_metric.set(sum(1 for x in self.tracked.values() if x.managed))

    def reconcile(self) -> list[str]:
        """Release addresses, CNI leases and state of containers that are no longer running
        (stopped while the agent was down). Returns their ids."""
        assert self._ctx is not None and self._ipam is not None
        running = self._ctx.registry.ids()
        known = {str(r[0]) for r in self._ctx.store.query("SELECT container_id FROM netpolicy_state")}
        known |= set(self._ipam.allocations())
        gone = sorted(known - running)
        for cid in gone:
            stored = self._load(cid) or {}
            managed = stored.get("managed") or {}
            if managed.get("backend") == "cni":
                self._cni_runner().delete(cid, "", managed.get("result"))
            elif managed:
                wiring.unwire(cid)
            self._ipam.release(cid)
            self._ctx.store.execute("DELETE FROM netpolicy_state WHERE container_id = ?", (cid,))
            self._ctx.store.execute("DELETE FROM netpolicy_reported WHERE container_id = ?", (cid,))
            log.info("stale_container_released", container_id=cid[:12], backend=managed.get("backend", ""))
        return gone

    # --- learning -------------------------------------------------------------------------
    def on_connect(self, ev: NetConnect) -> None:
        """Remember flows of learning containers (eBPF/audit NetConnect events)."""
        if ev.container is None:
            return
        with self._lock:
            t = self.tracked.get(ev.container.id)
            if t is None or t.rules != "learning" or len(t.seen_egress) > 4096:
                return
            if ev.op == "connect" and ev.dport:
                t.seen_egress.add((ev.daddr, ev.protocol, ev.dport))
            elif ev.op in ("listen", "accept") and ev.sport:
                t.seen_ingress.add((ev.protocol, ev.sport))

    def finish_learning(self, cid: str) -> Allowlist | None:
        """End a container's learning now: turn what it did into a proposal (applied when
        configured). Returns the learned allowlist."""
        with self._lock:
            t = self.tracked.get(cid)
        if t is None or t.rules != "learning":
            return None
        ns = self._netns(t.container)
        table = nft.read(ns) or {}
        own = [t.managed.get("address", "")] if t.managed else []
        learned = al.learned(
            [*table.get("learned_egress", ()), *t.seen_egress],
            [*table.get("learned_ingress", ()), *t.seen_ingress],
            self.settings.mode,
            own=own,
        )
        t.proposal = learned
        t.learning_until = 0.0
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
            if t.rules == "learning" and t.learning_until and now >= t.learning_until:
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
        if table is None:
            return None
        now = time.time()
        counters = table["counters"]
        delta = {}
        for name in ("denied_in", "denied_out"):
            cur = counters.get(name, {"packets": 0, "bytes": 0})
            prev = t.last_counters.get(name, {"packets": 0, "bytes": 0})
            if cur["packets"] < prev["packets"]:
                prev = {"packets": 0, "bytes": 0}  # table replaced: counters restarted
            delta[name] = {k: cur[k] - prev[k] for k in ("packets", "bytes")}
        start = t.last_read or t.container.started_at or now
        t.last_counters = counters
        t.last_read = now
        n = delta["denied_in"]["packets"] + delta["denied_out"]["packets"]
        if n:
            t.denied_packets += n
            if self._denied_metric is not None:
                for name, direction in (("denied_in", "in"), ("denied_out", "out")):
                    if delta[name]["packets"]:
                        self._denied_metric.labels(t.container.short_id, direction).inc(delta[name]["packets"])
            self._ctx.publish(
                PacketsDenied(
                    ts=now,
                    cgroup_id=t.container.cgroup_id,
                    container=t.container.ref(),
                    start=start,
                    end=now,
                    packets_in=delta["denied_in"]["packets"],
                    packets_out=delta["denied_out"]["packets"],
                    bytes_in=delta["denied_in"]["bytes"],
                    bytes_out=delta["denied_out"]["bytes"],
                    enforced=t.rules == "enforce",
                )
            )
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
        return {
            "container": {"id": c.id, "name": c.name, "image": c.image, "labels": dict(c.labels)},
            "managed": {k: v for k, v in t.managed.items() if k != "result"},
            "mode": t.rules or "none",
            "refused": t.refused,
            "allowlist": t.allowlist.to_dict() if t.allowlist else None,
            "proposal": t.proposal.to_dict() if t.proposal else None,
            "learning_until": t.learning_until,
            "rules": (table or {}).get("text", ""),
            "counters": (table or {}).get("counters", {}),
            "denied_packets": t.denied_packets,
            "selinux": t.selinux,
            "error": error,
        }

    def enter(self, c: Container, fn: Any) -> Any:
        """Run ``fn`` inside the container's netns (tests and ``describe`` helpers)."""
        return in_netns(self._netns(c), fn)


def build(ctx: AgentContext) -> NetpolicyComponent | None:
    """The netpolicy component, or None when ``network.enabled`` is false."""
    settings = ctx.config.network
    if not settings.enabled:
        return None
    comp = NetpolicyComponent(settings, ctx.config.behavior.learning_seconds)
    ctx.components["netpolicy"] = comp
    return comp
