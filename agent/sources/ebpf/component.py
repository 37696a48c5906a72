# SPDX-License-Identifier: Apache-2.0
"""The eBPF source as the agent runs it: ``EbpfSource`` loads the probes (``loader``), writes the
run-time settings and the monitored-cgroup filter into their maps, runs the reader and the
syscall-window threads (``reader``), and reports its status and metrics; ``build`` makes it
from the config."""

from __future__ import annotations

import ctypes
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from agent.context import AgentContext
from agent.decoders.ebpf import PROBES
from agent.events import KnownActivity, SyscallWindow
from agent.findings import Finding, taints
from agent.hostfs import HostPaths
from agent.runtime.executables import runtime_executables
from agent.runtime.model import Container
from agent.settings.response import KernelStopSettings
from agent.settings.sources import EbpfSettings
from agent.sources.ebpf.act import ActReader, KernelActs
from agent.sources.ebpf.counts import SyscallCounts
from agent.sources.ebpf.known import KnownSet
from agent.sources.ebpf.loader import (
    Support,
    compile_program,
    detect_support,
    fill_open_hint,
    fill_prefix_trie,
    fill_runtime_exes,
    release_compiler_memory,
    sensitive_entries,
)
from agent.sources.ebpf.metrics import EbpfCollector
from agent.sources.ebpf.program import CONF_ALL, CONF_GEN, CONF_RATE, OUTPUTS, PROBES_DIR, SYSCALL_KINDS
from agent.sources.ebpf.reader import Reader

log = structlog.get_logger("agent.sources.ebpf")


class EbpfSource:
    """bcc loader and reader of the riskguard probes (see the package docstring for the stages)."""

    name = "ebpf"

    def __init__(
        self,
        settings: EbpfSettings,
        window_seconds: float,
        include_host: bool,
        kernel_stop: KernelStopSettings | None = None,
        acts: KernelActs | None = None,
        credential_comms: Sequence[str] = (),
        runtime_comms: Sequence[str] = (),
        runtime_names: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        # runtime.executables: their tasks' syscalls are the runtime's (probes/task.h)
        self.runtime_names = tuple(runtime_names)
        self.runtime_exes = 0
        self._runtime_exes_at = -60.0
        # The in-kernel first response (probes/act.h): its tables and must-act reader; acts is
        # the response's fast path (None: the kernel stops nothing); the comms are the detectors'
        # exceptions by name (detectors.credential_consumers, detectors.runtime_comms).
        self.act = ActReader(kernel_stop or KernelStopSettings(), credential_comms, runtime_comms)
        self.act.acts = acts
        self.window_seconds = window_seconds
        self.include_host = include_host
        self.ctx: AgentContext | None = None
        self.bpf: Any = None
        self.support = Support()
        self.active: list[str] = []
        self.inactive: dict[str, str] = {}
        self.reader = Reader(settings, HostPaths())
        self._lock = threading.Lock()
        self.counts = SyscallCounts(self._lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._monitored: set[int] = set()
        self._cgroup_of: dict[str, int] = {}  # container id -> cgroup id in the kernel filter
        self._collector: EbpfCollector | None = None
        # "auto" (ring buffer when the kernel has one), "ringbuf" or "perfbuf" (tests, benches).
        self.output = "auto"
        # "auto" (task storage when the kernel has it) or "lru" (the LRU-hash fallback).
        self.prev_store = "auto"
        self.probes_dir = PROBES_DIR
        self.compiler_memory_released = 0
        # Known execs/connects counted in the kernel (known.py), made at start from the store;
        # known_filter False sends every event (benches measure the per-event cost with it).
        self.known: KnownSet | None = None
        self.known_filter = True

    @property
    def delivered(self) -> Counter[str]:
        """Events decoded and published, per probe."""
        return self.reader.delivered

    @property
    def reader_cpu_seconds(self) -> float:
        """CPU time of the reader thread (poll + decode + publish)."""
        return self.reader.cpu_seconds

    # --- lifecycle ----------------------------------------------------------------------
    def start(self, ctx: AgentContext) -> None:
        """Load what can be loaded; never raises for a missing kernel feature."""
        self.ctx = ctx
        self.reader.publish = ctx.publish
        self.reader.paths = ctx.paths
        wanted = [p for p in self.settings.probes if p in PROBES]
        self.support = detect_support(ctx.paths)
        if not self.support.ok:
            reason = "; ".join(self.support.problems)
            self.inactive = {p: reason for p in wanted}
            log.warning("ebpf_unavailable", reason=reason)
        else:
            if self.output != "auto":
                self.support.ringbuf = self.output == "ringbuf" and self.support.ringbuf
            if self.prev_store == "lru":
                self.support.task_storage = False
            self._load(ctx, wanted)
        if self._collector is None:
            self._collector = EbpfCollector(self)
            ctx.metrics.register(self._collector)
        if "ebpf.status" not in ctx.control_methods:
            ctx.control("ebpf.status", lambda _params: self.status())

    def _compile(self, names: Sequence[str]) -> Any:
        return compile_program(names, self.settings, self.support, self.probes_dir)

    def _load(self, ctx: AgentContext, wanted: list[str]) -> None:
        t0 = time.monotonic()
        try:
            self.bpf = self._compile(wanted)
            loaded = list(wanted)
        except Exception as exc:
            log.warning("ebpf_compile_failed", probes=wanted, error=str(exc)[-500:])
            good: list[str] = []
            for p in wanted:
                try:
                    b = self._compile([p])
                    b.cleanup()
                    good.append(p)
                except Exception as one:
                    self.inactive[p] = f"compile/load failed: {str(one).strip()[-300:]}"
            loaded = good
            self.bpf = None
            if good:
                try:
                    self.bpf = self._compile(good)
                except Exception as again:
                    for p in good:
                        self.inactive[p] = f"compile/load failed with the others: {again}"
                    loaded = []
        self.compiler_memory_released = released = release_compiler_memory(ctx.paths)
        if self.bpf is None:
            return
        self._configure(loaded)
        self.counts.enabled = "syscalls" in loaded  # count slots for the monitored cgroups
        self.reader.open(self.bpf, [p for p in loaded if p in OUTPUTS], self.support.ringbuf)
        self.act.open(self.bpf)
        self.active = loaded
        if self.known_filter and "exec" in loaded and "net" in loaded and self.support.offsets:
            self.known = self.reader.known = _known_set(ctx)
        for c in ctx.registry.all():
            self.on_container("added", c)
        log.info(
            "ebpf_probes_loaded",
            probes=loaded,
            inactive=sorted(self.inactive),
            ringbuf=self.support.ringbuf,
            seconds=round(time.monotonic() - t0, 2),
            compiler_memory_released_mib=round(released / 2**20, 1),
        )
        self._stop.clear()
        if any(p in OUTPUTS for p in loaded):  # the syscalls probe alone has no buffer to read
            reader = threading.Thread(
                target=self.reader.run, args=(self.bpf, self._stop), name="ebpf-reader", daemon=True
            )
            reader.start()
            self._threads.append(reader)
        if self.act.available:
            act = threading.Thread(target=self.act.run, args=(self._stop,), name="ebpf-act", daemon=True)
            rules = threading.Thread(
                target=self.act.refresh, args=(self._stop, ctx.registry.all), name="ebpf-act-rules", daemon=True
            )
            for t in (act, rules):
                t.start()
                self._threads.append(t)
        if self.known is not None:
            args = (self.bpf, self._stop, self.reader.publish)
            known = threading.Thread(target=self.known.run, args=args, name="ebpf-known", daemon=True)
            known.start()
            self._threads.append(known)
        if "syscalls" in loaded:
            self.counts.window_start = time.time()
            win = threading.Thread(target=self._window_loop, name="ebpf-windows", daemon=True)
            win.start()
            self._threads.append(win)

    def _configure(self, loaded: Sequence[str]) -> None:
        assert self.bpf is not None
        conf = self.bpf[b"rg_conf"]
        conf[ctypes.c_int(CONF_ALL)] = ctypes.c_ulonglong(1 if self.include_host else 0)
        conf[ctypes.c_int(CONF_RATE)] = ctypes.c_ulonglong(self.settings.max_events_per_second_per_container)
        conf[ctypes.c_int(CONF_GEN)] = ctypes.c_ulonglong(self.counts.gen)
        kinds = {nr: kind for p in loaded for nr, kind in SYSCALL_KINDS.get(p, {}).items()}
        if kinds:
            table = self.bpf[b"rg_sys_kind"]
            for nr, kind in kinds.items():
                table[ctypes.c_int(nr)] = ctypes.c_uint(kind)
        self.refresh_runtime_exes()
        if "files" in loaded:
            self.set_sensitive(self.settings.sensitive_paths, self.settings.sensitive_write_prefixes)
            self.set_change_prefixes(self.settings.change_watch_prefixes)

    def set_sensitive(self, any_open: Sequence[str], write_only: Sequence[str]) -> None:
        """Replace the kernel's sensitive prefix set (an LPM trie: longest prefix wins), with the
        in-kernel response's open and connect stop paths (``response.kernel_stop``)."""
        assert self.bpf is not None
        ks = self.act.settings
        stop_open = ks.open_paths if ks.enabled and "open" in ks.rules else ()
        stop_connect = ks.connect_paths if ks.enabled and "runtime_socket" in ks.rules else ()
        # Connects to the runtime sockets are reported in every mode (RG-0011); truncations of
        # the logs RG-0016 watches (``detectors.log_dirs``).
        detectors = getattr(self.ctx.config, "detectors", None) if self.ctx is not None else None
        logs = tuple(getattr(detectors, "log_dirs", ("/var/log/",)))
        entries = sensitive_entries(any_open, write_only, stop_open, stop_connect, ks.connect_paths, logs)
        fill_prefix_trie(self.bpf[b"rg_sensitive"], entries)
        fill_open_hint(self.bpf[b"rg_open_hint"], entries)  # the read-only open filter in front of it

    def set_change_prefixes(self, prefixes: Sequence[str]) -> None:
        """Replace the prefixes whose unlinks and renames the kernel reports (``rg_change_paths``)."""
        assert self.bpf is not None
        fill_prefix_trie(self.bpf[b"rg_change_paths"], dict.fromkeys(prefixes, 1))

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=3)
        self._threads.clear()
        self.act.close()
        if self.bpf is not None:
            try:
                self.bpf.cleanup()
            except Exception as exc:
                log.warning("ebpf_cleanup_failed", error=repr(exc))
            self.bpf = None
        if self._collector is not None and self.ctx is not None:
            try:
                self.ctx.metrics.unregister(self._collector)
            except KeyError:
                pass
            self._collector = None
        self.active = []

    # --- container filter ---------------------------------------------------------------
    def refresh_runtime_exes(self) -> None:
        """The runtime's executables into the kernel (its syscalls are not the container's),
        looked up again at most once a minute (a runtime upgrade replaces the file)."""
        now = time.monotonic()
        if self.bpf is not None and now - self._runtime_exes_at >= 60:
            self._runtime_exes_at = now
            self.runtime_exes = fill_runtime_exes(self.bpf, runtime_executables(self.reader.paths, self.runtime_names))

    def on_container(self, what: str, c: Container) -> None:
        """Registry listener: keep the kernel's monitored-cgroup map equal to the registry."""
        bpf = self.bpf
        if bpf is None or (not c.cgroup_id and what != "removed"):
            return
        if what == "added":
            self.refresh_runtime_exes()
        with self._lock:
            # An update may move a container to another cgroup: forget the old id first.
            old = self._cgroup_of.pop(c.id, None)
            if old is not None and (what == "removed" or old != c.cgroup_id):
                self.counts.release(bpf, old)
                self._monitored.discard(old)
            if what != "removed":
                self.counts.admit(bpf, c.cgroup_id)
                self._monitored.add(c.cgroup_id)
                self._cgroup_of[c.id] = c.cgroup_id
            if self.known is not None:
                if old is not None:
                    self.known.track(old, None)
                if what != "removed":
                    self.known.track(c.cgroup_id, self.known.key_of(c.ref()))
            if old is not None and old != c.cgroup_id:
                self.act.forget(old)
            self.act.update(c, removed=what == "removed")

    def on_finding(self, f: Finding) -> None:
        """Findings bus: a finding that suggests a container did something wrong (``taints``)
        takes back what it taught the known-event filter while its image learns."""
        if self.known is None or f.container is None or not taints(f):
            return
        cgroup_id = self._cgroup_of.get(f.container.id)
        if cgroup_id:
            self.known.taint(cgroup_id, time.time())

    def monitor_cgroup(self, cgroup_id: int, on: bool = True) -> None:
        """Add (or remove) one cgroup id to the kernel filter directly (benchmarks, tests)."""
        bpf = self.bpf
        if bpf is None:
            return
        with self._lock:
            if on:
                self.counts.admit(bpf, cgroup_id)
                self._monitored.add(cgroup_id)
            else:
                self.counts.release(bpf, cgroup_id)
                self._monitored.discard(cgroup_id)

    # --- reading ------------------------------------------------------------------------
    def process_batch(self) -> int:
        """Decode, complete and publish the records gathered by the last poll."""
        return self.reader.process_batch()

    # --- syscall windows ------------------------------------------------------------------
    def _window_loop(self) -> None:
        while not self._stop.wait(self.window_seconds):
            try:
                self.flush_window()
            except Exception as exc:
                log.error("ebpf_window_failed", error=repr(exc))

    def flush_window(self) -> list[SyscallWindow]:
        """Flip the count generation, read and delete the old one, publish per-cgroup windows."""
        if self.bpf is None or "syscalls" not in self.active:
            return []
        return self.counts.flush(self.bpf, self.reader.publish)

    # --- counters -------------------------------------------------------------------------
    def lost_counts(self) -> dict[str, int]:
        """Events lost per probe: ring/perf buffer full in the kernel, plus perf lost callbacks."""
        out: Counter[str] = Counter(self.reader.perf_lost)
        bpf = self.bpf
        if bpf is not None:
            try:
                table = bpf[b"rg_lost"]
                for i, p in enumerate(PROBES):
                    out[p] += sum(table[ctypes.c_int(i)])
            except Exception:  # stopped concurrently
                pass
        return dict(out)

    def rate_limited_counts(self, by_cgroup: bool = False) -> dict[str, int]:
        """Events dropped by the per-container rate limit, per probe (or per "cgroup/probe")."""
        out: Counter[str] = Counter()
        bpf = self.bpf
        if bpf is None:
            return {}
        try:
            for k, v in bpf[b"rg_ratedrop"].items():
                probe = PROBES[k.value & 7] if (k.value & 7) < len(PROBES) else str(k.value & 7)
                out[f"{k.value >> 3}/{probe}" if by_cgroup else probe] += v.value
        except Exception:
            pass
        return dict(out)

    def drain_known(self, now: float) -> list[KnownActivity]:
        """The kernel's known-exec/connect counts since the last read (the window aggregator
        calls this as it closes a window); nothing when the filter is off or not loaded."""
        known, bpf = self.known, self.bpf
        if known is None or bpf is None:
            return []
        return known.drain(bpf, now)

    def status(self) -> dict[str, Any]:
        return {
            "active": list(self.active),
            "inactive": dict(self.inactive),
            "problems": list(self.support.problems),
            "output": ("ringbuf" if self.support.ringbuf else "perfbuf") if self.active else "",
            "btf": self.support.btf,
            "task_storage": self.support.task_storage,
            "monitored_cgroups": len(self._monitored),
            "include_host": self.include_host,
            "compiler_memory_released_bytes": self.compiler_memory_released,
            "delivered": dict(self.reader.delivered),
            "lost": self.lost_counts(),
            "rate_limited": self.rate_limited_counts(by_cgroup=True),
            "malformed": self.reader.malformed,
            "reader_cpu_seconds": round(self.reader.cpu_seconds, 3),
            "windows_published": self.counts.windows_published,
            "syscalls_counted": self.counts.syscalls_counted,
            "count_map_full": self.counts.count_map_full,
            "count_slots": self.counts.status(),
            "changes_filtered": self.reader.changes_filtered,
            "kernel_stop": self.act.status(),
            "known": self.known.status() if self.known is not None else {},
        }


def _known_set(ctx: AgentContext) -> KnownSet:
    """The known-exec/connect filter: learning as the images' baselines learn (behaviour's
    learning period); shells, interpreters and the detectors' writable directories never known."""
    from agent.behavior.allowances import Allowances

    cfg = ctx.config
    allowances = Allowances(ctx.store, cfg.behavior)
    registry, paths = ctx.registry, ctx.paths

    def root_of(cgroup_id: int) -> Path | None:
        c = registry.by_cgroup_id(cgroup_id)
        return paths.pid_root(c.init_pid) if c is not None and c.init_pid else None

    never = (*cfg.detectors.shells, *cfg.detectors.interpreters, "busybox")
    dirs = cfg.detectors.writable_exec_dirs
    return KnownSet(ctx.store, allowances.learning, never, dirs, key_of=allowances.key_of, root_of=root_of)


def build(ctx: AgentContext, acts: KernelActs | None = None) -> EbpfSource | None:
    """The eBPF source of this agent, or ``None`` when ``ebpf.enabled`` is false; ``acts`` (the
    response's fast path) makes the kernel stop tasks in enforcing containers."""
    cfg = ctx.config
    if not cfg.ebpf.enabled:
        return None
    return EbpfSource(
        cfg.ebpf,
        cfg.behavior.window_seconds,
        cfg.runtime.include_host,
        cfg.response.kernel_stop,
        acts,
        cfg.detectors.credential_consumers,
        cfg.detectors.runtime_comms,
        cfg.runtime.executables,
    )
