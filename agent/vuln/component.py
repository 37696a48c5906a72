# SPDX-License-Identifier: Apache-2.0
"""The vulnerability scheduler: scans containers on start and every ``scan.interval_seconds``.

Inventories are cached by image id (in the state store) together with the mtimes of the
container's package databases. A scheduled scan re-reads the filesystem only when those stamps
changed or the cache is older than ``scan.inventory_max_age_seconds``; otherwise, when the
vulnerability database changed (its generation), it re-matches the cached inventory without
touching the filesystem, and when neither changed it does nothing. New vulnerabilities at or
above ``scan.report_min_severity`` become one finding per scan of a container's image (source
``vuln``, detector ``vuln.image``, every new vulnerability in its evidence), each vulnerability
reported once per container. Results are kept in the store for ``vulnerabilities()``
(the response's patch strategy) and the ``scan`` control method (``riskguardctl scan ID``).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog
from prometheus_client import Counter, Histogram

from agent.context import AgentContext
from agent.extras import MissingExtra, require
from agent.findings import Finding, Source
from agent.runtime.model import Container
from agent.settings.vuln import VulnDbSettings, VulnSettings
from agent.vuln.db import VulnDB
from agent.vuln.imagefinding import image_finding, rating
from agent.vuln.inventory import APK_INSTALLED, DPKG_STATUS, RPMDB_PATHS, Inventory
from agent.vuln.matcher import Match, Matcher
from agent.vuln.report import db_health
from agent.vuln.rootfs import DirRoot, Root, RootError
from agent.vuln.sandbox import SandboxError
from agent.vuln.scanfail import MIGRATIONS, SCAN_LIMITS, report_reader_failures, report_scan_failed
from agent.vuln.scanner import ScanError, open_container_root, read_inventory_isolated
from agent.vuln.services import listening_services
from agent.vuln.severity import rank, to_severity

log = structlog.get_logger("agent.vuln")

STAMP_PATHS = (DPKG_STATUS, APK_INSTALLED, *RPMDB_PATHS, "/etc/os-release")


def _stamps(root: Root) -> dict[str, float]:
    """mtimes of the package databases inside ``root`` (cheap change detection)."""
    out: dict[str, float] = {}
    if isinstance(root, DirRoot):
        for p in STAMP_PATHS:
            m = root.stat_mtime(p)
            if m is not None:
                out[p] = m
    return out


class VulnComponent:
    """Schedules container scans, keeps results, reports new vulnerabilities as findings."""

    name = "vuln"

    def __init__(self, settings: VulnSettings, db_settings: VulnDbSettings) -> None:
        self.settings = settings
        self.db_settings = db_settings
        self._ctx: AgentContext | None = None
        self._db: VulnDB | None = None
        self._matcher: Matcher | None = None
        self._lock = threading.RLock()  # one scan at a time: one sqlite connection, one matcher
        self._queue: queue.Queue[tuple[str, bool]] = queue.Queue(maxsize=4096)
        self._thread: threading.Thread | None = None
        self._gmp_thread: threading.Thread | None = None
        self._gmp_queue: queue.Queue[str] = queue.Queue(maxsize=1024)
        self._gmp_last: dict[str, float] = {}
        self._stop = threading.Event()
        self.counts: dict[str, int] = {"scans": 0, "reads": 0, "rematches": 0, "skipped": 0, "errors": 0, "findings": 0}
        self.last_error = ""
        self.scan_limits = SCAN_LIMITS  # one container's inventory read: wall clock, memory, CPU
        self._failed: dict[str, dict[str, float]] = {}  # image key -> stamps of its failed read
        self._m_scans: Counter | None = None
        self._m_seconds: Histogram | None = None

    # --- component -----------------------------------------------------------------------
    def start(self, ctx: AgentContext) -> None:
        self._ctx = ctx
        ctx.store.migrate("vuln", MIGRATIONS)
        self._db = VulnDB(self.db_settings.path)
        self._matcher = Matcher(self._db)
        health = self.db_health()
        if not health["records"]:
            log.warning("vulndb_empty", db=str(self.db_settings.path), hint="riskguard-agent vulndb import|update")
        elif health["stale"]:
            log.warning("vulndb_stale", db=str(self.db_settings.path), age_seconds=health["age_seconds"])
        self._m_scans = Counter(
            "riskguard_vuln_scans", "Container vulnerability scans by outcome", ["outcome"], registry=ctx.metrics
        )
        self._m_seconds = Histogram(
            "riskguard_vuln_scan_seconds", "Duration of one container scan", registry=ctx.metrics
        )
        ctx.control("scan", self._control_scan)
        if self.settings.on_start:
            for c in ctx.registry.all():
                self.enqueue(c.id)
        self._thread = threading.Thread(target=self._run, name="vuln-scheduler", daemon=True)
        self._thread.start()
        if self.settings.gmp.enabled:
            try:
                require("gmp")  # the GVM client is the [gmp] extra: without it, local scans go on
            except MissingExtra as exc:
                self.last_error = str(exc)
                log.error("gmp_unavailable", error=str(exc))
            else:
                self._gmp_thread = threading.Thread(target=self._run_gmp, name="vuln-gmp", daemon=True)
                self._gmp_thread.start()
        log.info("vuln_started", db=str(self.db_settings.path), interval_seconds=self.settings.interval_seconds)

    def stop(self) -> None:
        self._stop.set()
        for t in (self._thread, self._gmp_thread):
            if t is not None:
                t.join(5)
        self._thread = self._gmp_thread = None
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def status(self) -> Mapping[str, Any]:
        db = self._db
        return {
            **self.counts,
            "queue": self._queue.qsize(),
            "db_generation": db.generation() if db is not None else None,
            "last_error": self.last_error,
        }

    # --- scheduling ----------------------------------------------------------------------
    def on_container(self, what: str, c: Container) -> None:
        """Registry handler (with ``vuln.on_start``): scan a container when it appears."""
        if what == "added":
            self.enqueue(c.id)

    def enqueue(self, container_id: str, force: bool = False) -> None:
        """Queue a scan of ``container_id`` (dropped, with a log line, if the queue is full)."""
        try:
            self._queue.put_nowait((container_id, force))
        except queue.Full:
            log.warning("vuln_scan_dropped", container_id=container_id, reason="queue full")

    def _run(self) -> None:
        next_round = time.monotonic() + self.settings.interval_seconds
        while not self._stop.is_set():
            timeout = max(0.0, min(1.0, next_round - time.monotonic()))
            try:
                cid, force = self._queue.get(timeout=timeout)
            except queue.Empty:
                if time.monotonic() >= next_round:
                    next_round = time.monotonic() + self.settings.interval_seconds
                    ctx = self._ctx
                    for c in ctx.registry.all() if ctx is not None else []:
                        self.enqueue(c.id)
                continue
            try:
                self.scan_container(cid, refresh=force)
            except Exception as exc:  # one bad container must not stop the scheduler
                self.counts["errors"] += 1
                self.last_error = f"{cid[:12]}: {exc}"
                log.error("vuln_scan_failed", container_id=cid, error=repr(exc))

    # --- scanning ------------------------------------------------------------------------
    def scan_container(self, container_id: str, refresh: bool = False) -> dict[str, Any] | None:
        """Scan one registered container; ``refresh`` re-reads its filesystem unconditionally.

        Returns the stored result, or ``None`` when nothing had to be done.
        """
        ctx = self._ctx
        if ctx is None or self._db is None or self._matcher is None:
            raise ScanError("the vuln component is not running")
        c = ctx.registry.get(container_id)
        if c is None:
            raise LookupError(f"no such container: {container_id}")
        t0 = time.monotonic()
        with self._lock:
            try:
                root = open_container_root(ctx.paths, c.init_pid, c.details)
            except (ScanError, RootError) as exc:
                self._outcome("unreadable")
                raise ScanError(f"container {c.name}: {exc}") from None
            try:
                result = self._scan_locked(ctx, c, root, refresh)
            finally:
                root.close()
        if self._m_seconds is not None:
            self._m_seconds.observe(time.monotonic() - t0)
        return result

    def _outcome(self, outcome: str) -> None:
        if self._m_scans is not None:
            self._m_scans.labels(outcome).inc()

    def _scan_locked(self, ctx: AgentContext, c: Container, root: Root, refresh: bool) -> dict[str, Any] | None:
        assert self._db is not None and self._matcher is not None
        image_key = c.image_id or f"container:{c.id}"
        stamps = _stamps(root)
        row = ctx.store.query(
            "SELECT read_at, stamps, inventory FROM vuln_inventories WHERE image_id = ?", (image_key,)
        )
        inv: Inventory | None = None
        reread = refresh or not row
        if row and not refresh:
            fresh = time.time() - float(row[0]["read_at"]) < self.settings.inventory_max_age_seconds
            if fresh and json.loads(row[0]["stamps"]) == {k: v for k, v in stamps.items()}:
                inv = Inventory.from_dict(json.loads(row[0]["inventory"]))
            else:
                reread = True
        if inv is None:
            if not refresh and self._failed.get(image_key) == stamps:
                self._outcome("failed_before")
                return None  # the same files failed already: wait for a change or a forced scan
            try:
                inv = read_inventory_isolated(root, self.scan_limits)
            except SandboxError as exc:
                self._failed[image_key] = stamps
                self._outcome("failed")
                report_scan_failed(ctx, c, exc.kind, str(exc))
                raise ScanError(f"container {c.name}: scan failed: {exc}") from None
            self._failed.pop(image_key, None)
            self.counts["reads"] += 1
            report_reader_failures(ctx, c, inv.failures)
            ctx.store.execute(
                "INSERT INTO vuln_inventories VALUES (?, ?, ?, ?) ON CONFLICT(image_id) DO UPDATE SET "
                "read_at = excluded.read_at, stamps = excluded.stamps, inventory = excluded.inventory",
                (image_key, time.time(), json.dumps(stamps, sort_keys=True), json.dumps(inv.to_dict())),
            )
        generation = self._db.generation()
        prev = ctx.store.query("SELECT db_generation FROM vuln_results WHERE container_id = ?", (c.id,))
        if not reread and prev and int(prev[0]["db_generation"]) == generation:
            self.counts["skipped"] += 1
            self._outcome("unchanged")
            return None
        matches = self._matcher.match(inv)
        services = (
            [s.to_dict() for s in listening_services(ctx.paths, c.init_pid)]
            if self.settings.list_services and c.init_pid > 0
            else []
        )
        by_sev: dict[str, int] = {}
        for m in matches:
            by_sev[m.severity] = by_sev.get(m.severity, 0) + 1
        summary = {
            "container_id": c.id,
            "container_name": c.name,
            "image": c.image,
            "image_id": c.image_id,
            "os": inv.os.pretty_name or inv.os.osv_ecosystem,
            "ecosystem": inv.os.osv_ecosystem,
            "packages": len(inv.packages),
            "vulnerabilities": len(matches),
            "by_severity": by_sev,
            "fixable": sum(1 for m in matches if m.fixed_version),
            "skipped_entries": dict(inv.skipped),
            "inventory_reread": reread,
            "db_generation": generation,
            "scanned_at": time.time(),
        }
        # Findings first: whoever sees the stored result (riskguardctl scan, a test) also sees them.
        self._report_new(ctx, c, matches)
        ctx.store.execute(
            "INSERT INTO vuln_results VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(container_id) DO UPDATE SET "
            "container_name = excluded.container_name, image_id = excluded.image_id, "
            "scanned_at = excluded.scanned_at, db_generation = excluded.db_generation, "
            "summary = excluded.summary, matches = excluded.matches, services = excluded.services",
            (
                c.id,
                c.name,
                image_key,
                summary["scanned_at"],
                generation,
                json.dumps(summary),
                json.dumps([m.to_dict() for m in matches]),
                json.dumps(services),
            ),
        )
        self.counts["scans"] += 1
        if not reread:  # counted once its result is stored: a reader of the count sees the result
            self.counts["rematches"] += 1
        self._outcome("read" if reread else "rematched")
        self._maybe_gmp(c, services)
        log.info(
            "container_scanned",
            container_id=c.short_id,
            container_name=c.name,
            packages=len(inv.packages),
            vulnerabilities=len(matches),
            reread=reread,
        )
        return self._result(summary, matches, services)

    def _report_new(self, ctx: AgentContext, c: Container, matches: list[Match]) -> None:
        """One finding (``vuln.image``) for the vulnerabilities of ``c`` not reported before."""
        floor = rank(self.settings.report_min_severity) if self.settings.report_min_severity != "unknown" else 0
        new = []
        for m in matches:
            if rating(m) != "unknown" and rank(m.severity) < floor:
                continue
            key = f"{m.package}\0{m.version}\0{m.vulnerability}"
            cur = ctx.store.execute("INSERT OR IGNORE INTO vuln_reported VALUES (?, ?, ?)", (c.id, key, time.time()))
            if cur.rowcount:
                new.append(m)  # not reported for this container before
        if new:
            ctx.report(image_finding(c, new, len(matches)))
            self.counts["findings"] += 1

    # --- network-facing scans (GMP) ------------------------------------------------------
    def _maybe_gmp(self, c: Container, services: list[dict[str, Any]]) -> None:
        """Queue a GMP scan of a container that listens beyond loopback (once per interval)."""
        if not self.settings.gmp.enabled or not any(not s["loopback_only"] for s in services):
            return
        if time.monotonic() - self._gmp_last.get(c.id, -1e18) < self.settings.interval_seconds:
            return
        self._gmp_last[c.id] = time.monotonic()
        try:
            self._gmp_queue.put_nowait(c.id)
        except queue.Full:
            log.warning("gmp_scan_dropped", container_id=c.id, reason="queue full")

    def _run_gmp(self) -> None:
        from agent.vuln.gmp import GmpScanError, GmpScanner

        scanner = GmpScanner(self.settings.gmp)
        while not self._stop.is_set():
            try:
                cid = self._gmp_queue.get(timeout=1.0)
            except queue.Empty:
                continue
            ctx = self._ctx
            c = ctx.registry.get(cid) if ctx is not None else None
            if ctx is None or c is None:
                continue
            addresses = sorted({a for a in (c.details.get("ip_addresses") or {}).values() if a})
            for address in addresses:
                try:
                    results = scanner.scan(c.name, address)
                except GmpScanError as exc:
                    self.counts["errors"] += 1
                    self.last_error = f"gmp {c.short_id}: {exc}"
                    log.error("gmp_scan_failed", container_id=c.id, address=address, error=str(exc))
                    continue
                self.report_gmp(ctx, c, results)

    def report_gmp(self, ctx: AgentContext, c: Container, results: list[Any]) -> int:
        """Report GMP results at or above ``gmp.min_score`` as findings (once per container/NVT/port)."""
        n = 0
        for r in results:
            if r.score < self.settings.gmp.min_score:
                continue
            key = f"gmp\0{r.oid}\0{r.port}"
            cur = ctx.store.execute("INSERT OR IGNORE INTO vuln_reported VALUES (?, ?, ?)", (c.id, key, time.time()))
            if cur.rowcount == 0:
                continue
            rating = "critical" if r.score >= 9 else "high" if r.score >= 7 else "medium" if r.score >= 4 else "low"
            ctx.report(
                Finding(
                    container=c.ref(),
                    source=Source.VULN,
                    detector_id="vuln.gmp",
                    severity=to_severity(rating),
                    summary=f"{r.name} on {r.host} {r.port} (CVSS {r.score})",
                    evidence={**r.to_dict(), "image_id": c.image_id},
                )
            )
            n += 1
        self.counts["findings"] += n
        return n

    @staticmethod
    def _result(summary: Mapping[str, Any], matches: list[Match], services: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "summary": dict(summary),
            "vulnerabilities": [m.report_row() for m in matches],
            "services": services,
        }

    # --- API for other components / the control socket ---------------------------------------
    def results(self, container_id: str) -> dict[str, Any] | None:
        """The last stored result of a container (``None`` if never scanned)."""
        ctx = self._ctx
        if ctx is None:
            return None
        rows = ctx.store.query(
            "SELECT summary, matches, services FROM vuln_results WHERE container_id = ?", (container_id,)
        )
        if not rows:
            return None
        matches = [Match.from_dict(d) for d in json.loads(rows[0]["matches"])]
        return self._result(json.loads(rows[0]["summary"]), matches, json.loads(rows[0]["services"]))

    def vulnerabilities(self, container_id: str) -> list[dict[str, Any]]:
        """The container's known vulnerabilities (report rows + score/purl), most severe first."""
        ctx = self._ctx
        if ctx is None:
            return []
        c = ctx.registry.get(container_id)
        cid = c.id if c is not None else container_id
        rows = ctx.store.query("SELECT matches FROM vuln_results WHERE container_id = ?", (cid,))
        return list(json.loads(rows[0]["matches"])) if rows else []

    def _control_scan(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cid = str(params.get("id") or "")
        if not cid:
            raise ValueError("scan needs params.id (a container id or name)")
        ctx = self._ctx
        c = ctx.registry.get(cid) if ctx is not None else None
        if c is None:
            raise LookupError(f"no such container: {cid}")
        health = self.db_health()
        if not health["records"]:
            raise ValueError(
                f"the vulnerability database {self.db_settings.path} holds no records: a scan would report "
                "0 vulnerabilities whatever is installed (run `riskguard-agent vulndb import` or `vulndb update`)"
            )
        try:
            result = self.scan_container(c.id, refresh=bool(params.get("refresh", True)))
        except ScanError as exc:
            raise ValueError(str(exc)) from None
        return {**(result if result is not None else (self.results(c.id) or {})), "db": health}

    def db_health(self) -> dict[str, Any]:
        """Records in the database, seconds since its last import, and whether that is stale."""
        with self._lock:
            records, age = db_health(self._db) if self._db is not None else (0, None)
        stale = age is not None and age > self.db_settings.stale_after_seconds
        return {"records": records, "age_seconds": None if age is None else round(age), "stale": stale}


def build(ctx: AgentContext) -> VulnComponent | None:
    """The vuln component, or ``None`` when ``scan.enabled`` is false."""
    settings: VulnSettings = ctx.config.vuln
    if not settings.enabled:
        return None
    db = settings.db.model_copy(
        update={
            "path": ctx.paths.in_state(settings.db.path),
            "download_dir": ctx.paths.in_state(settings.db.download_dir),
        }
    )
    return VulnComponent(settings, db)
