# SPDX-License-Identifier: Apache-2.0
"""The audit source: kernel audit records → assembled ``AuditEvent`` values per container.

Two readers:

* ``netlink`` (default): a NETLINK_AUDIT socket bound to the multicast group
  ``AUDIT_NLGRP_READLOG`` (needs CAP_AUDIT_READ). It is read-only: a running auditd keeps its
  unicast link and its rules; we only receive a copy of every record.
* ``file``: tail ``audit.log`` (follows rotation), for hosts where the multicast group is not
  available (older kernels, restricted capabilities).

Records are grouped by serial (``EventAssembler``); the pid of an event is mapped to its container
the moment its first record arrives (short-lived processes are gone a few ms later). Optional
agent-managed rules (``audit.manage_rules``) are tagged with ``audit.rule_key`` and removed at stop
(and at start, to clear rules a crashed agent left behind).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import structlog

from agent.context import AgentContext
from agent.decoders.audit import (
    EventAssembler,
    MalformedRecord,
    parse_log_line,
    parse_netlink_payload,
    split_netlink,
)
from agent.events import AuditEvent, AuditRecord
from agent.hostfs import HostPaths
from agent.runtime.enrich import container_of_pid
from agent.runtime.model import Container, ContainerRegistry
from agent.settings.sources import AuditSettings
from agent.sources.collectors import StatusCollector
from agent.sources.ratelimit import RateLimiter

log = structlog.get_logger("agent.sources.audit")

NETLINK_AUDIT = 9  # linux/netlink.h
AUDIT_NLGRP_READLOG = 1  # linux/audit.h: multicast group of read-only listeners
SO_RCVBUFFORCE = 33


class AuditUnavailable(RuntimeError):
    """The audit source cannot read records on this host (reason in the message)."""


def open_netlink(receive_buffer: int = 8 * 1024 * 1024) -> socket.socket:
    """A NETLINK_AUDIT socket joined to the read-only multicast group.

    Raises ``AuditUnavailable`` when the kernel has no audit support or we lack CAP_AUDIT_READ.
    """
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
    except OSError as exc:
        raise AuditUnavailable(f"no NETLINK_AUDIT socket: {exc}") from exc
    try:
        try:  # SO_RCVBUFFORCE ignores rmem_max (root only); fall back to the capped option.
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, receive_buffer)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        # bind((portid, groups)): groups is a bit mask, group n is bit n-1.
        sock.bind((0, 1 << (AUDIT_NLGRP_READLOG - 1)))
    except OSError as exc:
        sock.close()
        raise AuditUnavailable(f"cannot join AUDIT_NLGRP_READLOG (needs CAP_AUDIT_READ): {exc}") from exc
    return sock


def read_netlink(
    sock: socket.socket, stop: threading.Event, on_lost: Callable[[], None]
) -> Iterator[tuple[int, bytes] | None]:
    """Yield (type, payload) of each netlink audit message; ``None`` every idle 0.2 s tick."""
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data = sock.recv(65536)
        except TimeoutError:
            yield None
            continue
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:  # our receive queue overflowed: records lost
                on_lost()
                continue
            if stop.is_set():
                return
            raise
        try:
            yield from split_netlink(data)
        except MalformedRecord:
            yield (-1, data)


def tail_lines(path: Path, stop: threading.Event, start: tuple[int, int] | None = None) -> Iterator[str | None]:
    """Yield lines appended to ``path`` after ``start`` (inode, offset; taken by the caller so no
    line written after it is missed), following rotation (inode change or truncation);
    ``None`` on every idle 0.2 s tick."""
    fh = None
    ino, pos = start if start is not None else (-1, 0)
    from_end = start is not None
    buf = ""
    first = True
    while not stop.is_set():
        try:
            st = path.stat()
        except OSError:
            st = None
        if st is not None and (fh is None or st.st_ino != ino or st.st_size < pos):
            if fh is not None:
                fh.close()
            fh = path.open(encoding="utf-8", errors="backslashreplace")  # kept open while tailing
            resume = first and from_end and st.st_ino == ino and st.st_size >= pos
            ino = st.st_ino
            pos = pos if resume else 0
            fh.seek(pos)
            buf = ""
        first = False
        if fh is None:
            yield None
            time.sleep(0.2)
            continue
        chunk = fh.read(1 << 20)
        if not chunk:
            yield None
            time.sleep(0.2)
            continue
        pos = fh.tell()
        buf += chunk
        *lines, buf = buf.split("\n")
        yield from lines
    if fh is not None:
        fh.close()


class AuditRules:
    """Agent-owned audit rules, tagged with one key, installed and removed with ``auditctl``."""

    def __init__(self, key: str, auditctl: str | None = None) -> None:
        self.key = key
        self.auditctl = auditctl or shutil.which("auditctl") or "auditctl"
        self.installed: list[str] = []

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.auditctl, *args], capture_output=True, text=True, timeout=10, check=False)

    def clear(self) -> None:
        """Delete every rule tagged with our key (ours, or left by a crashed agent)."""
        r = self._run(["-D", "-k", self.key])
        if r.returncode != 0 and "No rules" not in r.stderr:
            log.warning("audit_rules_clear_failed", key=self.key, error=r.stderr.strip())
        self.installed.clear()

    def add(self, rule: str) -> None:
        """Install one rule in auditctl syntax (without ``-k``); raises ``AuditUnavailable``."""
        args = [*rule.split(), "-k", self.key]
        r = self._run(args)
        if r.returncode != 0:
            raise AuditUnavailable(f"auditctl {' '.join(args)} failed: {r.stderr.strip()}")
        self.installed.append(rule)
        log.info("audit_rule_installed", rule=rule, key=self.key)

    def listed(self) -> list[str]:
        r = self._run(["-l", "-k", self.key])
        return [ln for ln in r.stdout.splitlines() if self.key in ln]


class AuditSource:
    """Reads audit records, assembles events by serial, attributes them, publishes them."""

    name = "audit"

    def __init__(
        self,
        settings: AuditSettings,
        paths: HostPaths,
        registry: ContainerRegistry,
        publish: Callable[[AuditEvent], Any],
        include_host: bool = False,
    ) -> None:
        self.settings = settings
        self.include_host = include_host
        self.paths = paths
        self.registry = registry
        self._publish = publish
        self.assembler = EventAssembler(timeout=settings.event_timeout_seconds, ordered=settings.mode == "file")
        self.limiter = RateLimiter(settings.max_events_per_second_per_container)
        self.rules = AuditRules(settings.rule_key)
        self.counters: Counter[str] = Counter()
        self._owner: dict[int, Container | None] = {}  # serial -> container, resolved at first record
        self._gone: set[int] = set()  # serials whose process was gone (or a host process)
        self._root_devs: dict[str, str] = {}  # "maj:min" of a container's root fs -> container id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.error = ""
        self._tail_from: tuple[int, int] | None = None

    # --- life cycle --------------------------------------------------------------------
    def start(self, ctx: AgentContext | None = None) -> None:
        """Open the reader, install managed rules, start the thread. A host without audit support
        (or without CAP_AUDIT_READ) leaves the source inactive with the reason in ``status()``."""
        try:
            self.open()
        except AuditUnavailable as exc:
            self.error = str(exc)
            log.warning("audit_source_unavailable", mode=self.settings.mode, reason=str(exc))
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            if self.settings.manage_rules:
                self.rules.clear()
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="audit-reader", daemon=True)
        self._thread.start()
        log.info("audit_source_started", mode=self.settings.mode, managed_rules=len(self.rules.installed))

    def open(self) -> None:
        """Open the reader and install managed rules; raises ``AuditUnavailable``."""
        if self.settings.mode == "netlink":
            self._sock = open_netlink(self.settings.receive_buffer_bytes)
        else:
            try:
                st = self.settings.log_file.stat()
            except OSError as exc:
                raise AuditUnavailable(f"audit log {self.settings.log_file}: {exc}") from exc
            self._tail_from = (st.st_ino, st.st_size)  # start reading at the end, from now on
        if self.settings.manage_rules:
            self.rules.clear()
            for rule in self.settings.rules:
                self.rules.add(rule)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.settings.manage_rules:
            self.rules.clear()
            log.info("audit_rules_removed", key=self.settings.rule_key)
        for ev in self.assembler.flush():
            self._deliver(ev)

    def status(self) -> Mapping[str, Any]:
        st = self.assembler.stats
        return {
            "mode": self.settings.mode,
            "running": self._thread is not None and self._thread.is_alive(),
            "error": self.error,
            "records": st.records,
            "events": st.events,
            "malformed": st.malformed + self.counters["malformed_records"],
            "malformed_by_reason": {k: v for k, v in self.counters.items() if k.startswith("skipped_")},
            "timed_out": st.timed_out,
            "lost": self.counters["lost"],
            "published": self.counters["published"],
            "host_ignored": self.counters["host_ignored"],
            "attributed_by_device": self.counters["attributed_by_device"],
            "unattributed_gone": self.counters["unattributed_gone"],
            "rate_limited": dict(self.limiter.dropped),
            "managed_rules": list(self.rules.installed),
        }

    # --- reading -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self._sock is not None:
                for item in read_netlink(self._sock, self._stop, self._lost):
                    if item is None:
                        self._tick()
                    elif item[0] < 0:
                        self.counters["malformed_records"] += 1
                    else:
                        self.feed_netlink(item[0], item[1])
            else:
                for line in tail_lines(self.settings.log_file, self._stop, self._tail_from):
                    if line is None:
                        self._tick()
                    else:
                        self.feed_line(line)
        except Exception as exc:  # the reader must report, not vanish silently
            self.error = repr(exc)
            log.error("audit_reader_failed", error=repr(exc))

    def _lost(self) -> None:
        self.counters["lost"] += 1
        log.warning("audit_records_lost", reason="ENOBUFS")

    def _tick(self) -> None:
        for ev in self.assembler.expire(time.monotonic()):
            self._deliver(ev)

    def feed_netlink(self, msg_type: int, payload: bytes) -> None:
        """Decode one netlink message and advance assembly (public so tests feed captures)."""
        if msg_type < 1100:  # netlink control (NLMSG_*) and AUDIT_GET… replies are not records
            return
        try:
            rec = parse_netlink_payload(msg_type, payload)
        except (MalformedRecord, ValueError):
            self.counters["malformed_records"] += 1
            return
        self._feed_isolated(rec)

    def feed_line(self, line: str) -> None:
        """Decode one audit.log line and advance assembly."""
        if not line.strip():
            return
        try:
            rec = parse_log_line(line)
        except (MalformedRecord, ValueError):
            self.counters["malformed_records"] += 1
            return
        self._feed_isolated(rec)

    def _feed_isolated(self, rec: AuditRecord) -> None:
        """``feed_record``; a record that makes assembly fail is counted and skipped (the reader
        goes on for every other record and container)."""
        try:
            self.feed_record(rec)
        except Exception as exc:
            self.counters["malformed_records"] += 1
            self.counters[f"skipped_{type(exc).__name__}"] += 1
            if self.counters[f"skipped_{type(exc).__name__}"] == 1:
                log.warning("audit_record_skipped", serial=rec.serial, error=repr(exc)[:300])

    def feed_record(self, rec: AuditRecord) -> None:
        if rec.serial not in self._owner and "pid" in rec.fields:
            # Resolve the container now: the process may exit milliseconds later.
            owner = self._resolve(rec.fields)
            self._owner[rec.serial] = owner
            if owner is None and not self._alive(rec.fields):
                self._gone.add(rec.serial)
        elif rec.type == "PATH" and rec.serial in self._gone and rec.fields.get("item") == "0":
            # The process was already gone: fall back to the device of the executed file. Each
            # container's overlay root is its own anonymous device ("00:27"), so a PATH on it
            # names the container (files on volumes or host mounts stay unattributed).
            owner = self.container_of_dev(rec.fields.get("dev", ""))
            self._owner[rec.serial] = owner
            self._gone.discard(rec.serial)
            self.counters["attributed_by_device" if owner else "unattributed_gone"] += 1
        for ev in self.assembler.add(rec, time.monotonic()):
            self._deliver(ev)
        for ev in self.assembler.expire(time.monotonic()):
            self._deliver(ev)

    def _resolve(self, fields: Mapping[str, str]) -> Container | None:
        try:
            pid = int(fields.get("pid", "0"))
        except ValueError:
            return None
        return container_of_pid(self.paths, self.registry, pid) if pid > 0 else None

    def _alive(self, fields: Mapping[str, str]) -> bool:
        pid = fields.get("pid", "")
        return pid.isdigit() and self.paths.pid_dir(int(pid)).exists()

    def container_of_dev(self, dev: str) -> Container | None:
        """The container whose root filesystem is on device ``dev`` (audit's ``maj:min`` hex)."""
        if not dev or dev == "00:00":
            return None
        for attempt in (0, 1):
            if attempt or not self._root_devs:
                self._root_devs = {}
                for c in self.registry.all():
                    try:
                        st = self.paths.pid_root(c.init_pid).stat()
                    except OSError:
                        continue
                    self._root_devs[f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"] = c.id
            cid = self._root_devs.get(dev)
            if cid is not None:
                return self.registry.get(cid)
        return None

    def _deliver(self, ev: AuditEvent) -> None:
        owner = self._owner.pop(ev.serial, None)
        self._gone.discard(ev.serial)
        if len(self._owner) > 4 * self.assembler.max_pending:  # serials that never assembled
            self._owner.clear()
            self._gone.clear()
        if owner is None:
            if not self.include_host:
                self.counters["host_ignored"] += 1
                return
        else:
            if not self.limiter.allow(owner.id):
                return
            ev = dataclasses.replace(ev, container=owner.ref(), cgroup_id=owner.cgroup_id)
        self.counters["published"] += 1
        self._publish(ev)


def build(ctx: AgentContext) -> AuditSource | None:
    """The audit source component, or ``None`` when ``audit.enabled`` is false."""
    settings = ctx.config.audit
    if not settings.enabled:
        return None
    if settings.mode == "file" and settings.log_file == AuditSettings().log_file:
        settings = settings.model_copy(update={"log_file": ctx.paths.audit_log})
    src = AuditSource(settings, ctx.paths, ctx.registry, ctx.publish, ctx.config.runtime.include_host)
    ctx.control("audit.status", lambda _params: dict(src.status()))
    ctx.metrics.register(
        StatusCollector(
            "riskguard_audit",
            src.status,
            [
                ("records", "Audit records read"),
                ("events", "Audit events assembled"),
                ("malformed", "Audit records or events that could not be parsed (skipped)"),
                ("lost", "Receive-queue overflows of the netlink socket (ENOBUFS): records lost"),
                ("published", "Audit events published"),
                ("host_ignored", "Audit events of host processes (ignored)"),
                ("rate_limited", "Audit events dropped by the per-container rate limit"),
            ],
        )
    )
    return src
