# SPDX-License-Identifier: Apache-2.0
"""The eBPF source: loads the probes in ``probes/`` with bcc and turns their output into events.

Stages, in order (``EbpfSource.start``):

1. ``detect_support``: root, tracefs, bcc importable, ring buffer map type (else perf buffer).
   Anything missing is reported in ``status()``; the agent keeps running without this source.
2. ``compile_probes``: the selected probes are assembled into one program (one shared container
   filter map, one compilation); when that fails each probe is compiled alone to find the
   culprit, and the others are loaded without it.
3. run-time settings go into maps: monitored cgroup ids (from the registry, kept current by a
   listener), ``include_host``, the per-container rate limit, the sensitive path prefixes.
4. one reader thread drains every ring (or perf) buffer in batches, decodes records
   (``agent.decoders.ebpf``), completes them from /proc (stdio, ppid, parent comm) and publishes;
   one window thread flips the syscall-count generation every ``behavior.window_seconds`` and
   publishes one ``SyscallWindow`` per cgroup.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import posixpath
import re
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.context import AgentContext
from agent.decoders.ebpf import PRIV_SYSCALLS, PROBES, DecodeError, change_parent, decode_record
from agent.events import Event, FileChange, NetConnect, ProcessExec, SyscallWindow
from agent.hostfs import HostPaths
from agent.resources import data_dir
from agent.runtime.cgroups import ProcessGone, cgroup_id_of, read_proc_cgroup
from agent.runtime.model import Container
from agent.settings.sources import EbpfSettings
from agent.sources import procnet
from agent.syscall_table import syscall_number

log = structlog.get_logger("agent.sources.ebpf")

PROBES_DIR = data_dir("probes")

# Event probes and the output map each one declares (RG_OUTPUT in probes/<name>.bpf.c).
OUTPUTS: Mapping[str, str] = {
    "exec": "rg_exec_events",
    "net": "rg_net_events",
    "files": "rg_open_events",
    "priv": "rg_priv_events",
}
# Every probe hooks syscalls through the two raw syscall tracepoints of probes/sysdispatch.h
# (appended after them); rg_sys_kind (probes/task.h) routes x86_64 syscall numbers to the
# loaded probes' handlers. RG_KIND_* values (probes/task.h): files 1-3 and 9-16, priv 4,
# exec 5-6 and 17-18, net 7-8.
SYSDISPATCH = "sysdispatch.h"
_KINDS_BY_NAME: Mapping[str, Mapping[str, int]] = {
    "files": {
        "open": 1,
        "openat": 2,
        "openat2": 3,
        "unlink": 9,
        "unlinkat": 10,
        "rename": 11,
        "renameat": 12,
        "renameat2": 12,
        "utimensat": 13,
        "utimes": 14,
        "futimesat": 15,
        "utime": 16,
    },
    "priv": dict.fromkeys(PRIV_SYSCALLS, 4),
    "exec": {"execve": 5, "execveat": 6, "exit": 17, "exit_group": 18},
    "net": {"listen": 7, "accept": 8, "accept4": 8},
}
SYSCALL_KINDS: Mapping[str, Mapping[int, int]] = {
    probe: {syscall_number(name): kind for name, kind in kinds.items()} for probe, kinds in _KINDS_BY_NAME.items()
}
CONF_ALL, CONF_RATE, CONF_GEN = 0, 1, 2
MATCH_ANY, MATCH_WRITE = 1, 2
PREFIX_LEN = 64  # RG_PREFIX_LEN in probes/files.h
BPF_MAP_TYPE_RINGBUF = 27  # include/uapi/linux/bpf.h
BPF_MAP_TYPE_TASK_STORAGE = 29
# The reader's wait for a wakeup is bounded (ms): a record whose producer raced with the
# reader's last drain is read at the latest this much later; also the idle reader's wakeups.
IDLE_POLL_MS = 100
_INCLUDE = re.compile(r'^#include "([A-Za-z0-9_.-]+)"\s*$', re.M)


# --- program text ----------------------------------------------------------------------------
def available_probes(probes_dir: Path = PROBES_DIR) -> list[str]:
    """Names of the probes shipped in ``probes_dir`` (``<name>.bpf.c``)."""
    return sorted(p.name.removesuffix(".bpf.c") for p in probes_dir.glob("*.bpf.c"))


def probe_hooks(name: str, probes_dir: Path = PROBES_DIR) -> str:
    """The header comment of a probe (its purpose, hooks, maps and caveats)."""
    text = (probes_dir / f"{name}.bpf.c").read_text()
    m = re.search(r"/\*(.*?)\*/", text, re.S)
    return m.group(1).strip() if m else ""


def cflags(settings: EbpfSettings, ringbuf: bool, task_storage: bool = False) -> dict[str, str]:
    """Load-time constants of the probes, passed as ``-D`` flags."""
    flags = {
        "RG_RINGBUF_PAGES": str(settings.ring_buffer_pages),
        "RG_MAX_CGROUPS": str(settings.max_cgroups),
        "RG_ARGV_MAX": str(settings.argv_max),
    }
    if ringbuf:
        flags["RG_RINGBUF"] = "1"
        if settings.poll_interval_ms > 0:
            flags["RG_RB_GAP_NS"] = f"{settings.poll_interval_ms * 1_000_000}ULL"
    if task_storage:
        flags["RG_TASK_STORAGE"] = "1"
    return flags


def _inline(name: str, probes_dir: Path, seen: set[str]) -> str:
    if name in seen:
        return ""
    seen.add(name)
    path = probes_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"probe source {path} does not exist")
    text = path.read_text()
    return _INCLUDE.sub(lambda m: _inline(m.group(1), probes_dir, seen), text)


def program_text(names: Sequence[str], defines: Mapping[str, str], probes_dir: Path = PROBES_DIR) -> str:
    """The final program: ``#define`` lines for the cflags, then the probes with their local
    headers inlined (each once). This is exactly what is compiled and what ``probes --print``
    shows."""
    seen: set[str] = set()
    head = "".join(f"#define {k} {v}\n" for k, v in sorted(defines.items()))
    parts = [_inline(f"{n}.bpf.c", probes_dir, seen) for n in names]
    if names:
        parts.append(_inline(SYSDISPATCH, probes_dir, seen))
    body = "\n".join(parts)
    return f"/* riskguard probes: {' '.join(names)} */\n{head}\n{body}"


# --- support detection -------------------------------------------------------------------------
@dataclass
class Support:
    """What this host offers the eBPF source; ``problems`` say why it cannot run."""

    problems: list[str] = field(default_factory=list)
    ringbuf: bool = False
    btf: bool = False
    task_storage: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def ringbuf_supported() -> bool:
    """Probe the kernel for BPF_MAP_TYPE_RINGBUF (5.8+) with libbpf, not from the version."""
    return map_type_supported(BPF_MAP_TYPE_RINGBUF)


def map_type_supported(map_type: int) -> bool:
    """Ask the kernel whether it has a BPF map type (libbpf_probe_bpf_map_type)."""
    name = ctypes.util.find_library("bpf")
    if not name:
        return False
    try:
        lib = ctypes.CDLL(name)
        probe = lib.libbpf_probe_bpf_map_type
    except (OSError, AttributeError):
        return False
    probe.argtypes = [ctypes.c_int, ctypes.c_void_p]
    probe.restype = ctypes.c_int
    return bool(probe(map_type, None) == 1)


def detect_support(paths: HostPaths) -> Support:
    s = Support()
    if os.geteuid() != 0:
        s.problems.append("not running as root (loading BPF programs needs CAP_BPF + CAP_PERFMON)")
    if not (paths.tracefs / "events").is_dir():
        s.problems.append(f"tracefs is not mounted at {paths.tracefs} (mount -t tracefs tracefs {paths.tracefs})")
    try:
        import bcc  # noqa: F401
    except Exception as exc:  # ImportError, or libbcc failing to load
        s.problems.append(f"bcc is not importable ({exc}); install python3-bpfcc")
    s.btf = paths.btf_vmlinux.exists()
    if not s.problems:
        s.ringbuf = ringbuf_supported()
        # Task storage maps need kernel BTF (bpf_get_current_task_btf) and 5.11+.
        s.task_storage = s.btf and map_type_supported(BPF_MAP_TYPE_TASK_STORAGE)
    return s


# --- compilation ---------------------------------------------------------------------------------
class CompileError(Exception):
    """bcc could not compile or load a program; the message carries clang's/the verifier's reason."""


@contextlib.contextmanager
def _capture_fd2() -> Iterator[Callable[[], str]]:
    """Redirect file descriptor 2 to a temp file; yield a function returning what was written."""
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)

        def read() -> str:
            tmp.flush()
            tmp.seek(0)
            return tmp.read().decode("utf-8", "replace")

        try:
            yield read
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _diag_summary(text: str) -> str:
    """The error lines of a clang diagnostic, or the tail of a verifier log."""
    errors = [ln.strip() for ln in text.splitlines() if "error:" in ln]
    if errors:
        return "; ".join(errors[:3])
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(";")]
    return " | ".join(lines[-3:])


# --- the source ---------------------------------------------------------------------------------
class _Collector(Collector):
    def __init__(self, source: EbpfSource) -> None:
        self.source = source

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        lost = CounterMetricFamily(
            "riskguard_events_lost", "Events lost before user space (buffer full)", labels=["source", "probe"]
        )
        limited = CounterMetricFamily(
            "riskguard_events_rate_limited",
            "Events dropped by the per-container rate limit",
            labels=["source", "probe"],
        )
        delivered = CounterMetricFamily(
            "riskguard_events_delivered", "Events decoded and published", labels=["source", "probe"]
        )
        active = GaugeMetricFamily("riskguard_probe_active", "1 when the probe is loaded", labels=["probe"])
        lost_now = self.source.lost_counts()
        limited_now = self.source.rate_limited_counts()
        for p in PROBES:
            lost.add_metric(["ebpf", p], lost_now.get(p, 0))
            limited.add_metric(["ebpf", p], limited_now.get(p, 0))
            delivered.add_metric(["ebpf", p], self.source.delivered.get(p, 0))
            active.add_metric([p], 1.0 if p in self.source.active else 0.0)
        yield lost
        yield limited
        yield delivered
        yield active


# madvise(2) advice: reclaim these pages now (Linux >= 5.4); clean file pages are simply dropped
# and fault back in from the file if the code runs again.
_MADV_PAGEOUT = 21
# The compiler bcc links in: only needed while probes compile.
_COMPILER_LIBRARIES = ("libLLVM", "libclang-cpp", "libclang.so", "libclang-")


def release_compiler_memory(paths: HostPaths) -> int:
    """Give back what compiling the probes left resident: clang's freed heap (``malloc_trim``)
    and the pages of the LLVM/clang libraries (``MADV_PAGEOUT``). Returns the bytes released
    from our RSS (best effort: 0 where the kernel or libc does not support it).

    bcc compiles in-process; afterwards LLVM's code pages (~85 MiB here) and clang's malloc
    arenas stay counted in the agent's RSS although nothing runs them until the next compile.
    """
    me = psutil.Process()
    before = me.memory_info().rss
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    try:
        libc.malloc_trim(0)
    except AttributeError:  # not glibc
        pass
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    try:
        maps = (paths.proc / "self" / "maps").read_text().splitlines()
    except OSError:
        maps = []
    for line in maps:
        parts = line.split()
        if len(parts) < 6 or not any(lib in parts[5] for lib in _COMPILER_LIBRARIES):
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        libc.madvise(start, end - start, _MADV_PAGEOUT)
    return max(0, before - me.memory_info().rss)


class EbpfSource:
    """bcc loader and reader of the riskguard probes (see the module docstring for the stages)."""

    name = "ebpf"

    def __init__(self, settings: EbpfSettings, window_seconds: float, include_host: bool) -> None:
        self.settings = settings
        self.window_seconds = window_seconds
        self.include_host = include_host
        self.ctx: AgentContext | None = None
        self.bpf: Any = None
        self.support = Support()
        self.active: list[str] = []
        self.inactive: dict[str, str] = {}
        self.delivered: Counter[str] = Counter()
        self.malformed = 0
        self.perf_lost: Counter[str] = Counter()
        self.windows_published = 0
        self.syscalls_counted = 0
        self.count_map_full = 0
        self.changes_filtered = 0  # relative unlinks/renames that resolved outside the watched set
        self.poll_batches = 0
        self.reader_cpu_seconds = 0.0  # CPU time of the reader thread (poll + decode + publish)
        self._batch: list[tuple[str, bytes]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._mono_offset = time.time() - time.monotonic()
        self._gen = 0
        self._window_start = time.time()
        self._monitored: set[int] = set()
        self._cgroup_of: dict[str, int] = {}  # container id -> cgroup id in the kernel filter
        self._collector: _Collector | None = None
        self._on_event: Callable[[Event], object] | None = None
        # "auto" (ring buffer when the kernel has one), "ringbuf" or "perfbuf" (tests, benches).
        self.output = "auto"
        # "auto" (task storage when the kernel has it) or "lru" (the LRU-hash fallback).
        self.prev_store = "auto"
        self.probes_dir = PROBES_DIR
        self.compiler_memory_released = 0

    # --- lifecycle ----------------------------------------------------------------------
    def start(self, ctx: AgentContext) -> None:
        """Load what can be loaded; never raises for a missing kernel feature."""
        self.ctx = ctx
        self._on_event = ctx.publish
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
            self._collector = _Collector(self)
            ctx.metrics.register(self._collector)
        if "ebpf.status" not in ctx.control_methods:
            ctx.control("ebpf.status", lambda _params: self.status())

    def _compile(self, names: Sequence[str]) -> Any:
        from bcc import BPF

        flags = cflags(self.settings, self.support.ringbuf, self.support.task_storage)
        text = program_text(names, flags, self.probes_dir)
        # libbcc prints clang's diagnostics and the verifier log on fd 2 and raises only
        # "Failed to compile BPF module"; capture fd 2 so status() can say why.
        with _capture_fd2() as diag:
            try:
                # Warnings of the generic kernel headers are noise here; errors still raise.
                return BPF(text=text.encode(), cflags=["-Wno-unused-function", "-Wno-macro-redefined"])
            except Exception as exc:
                detail = diag()
                raise CompileError(f"{exc}: {_diag_summary(detail)}") from None

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
        self._open_outputs([p for p in loaded if p in OUTPUTS])
        self.active = loaded
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
            reader = threading.Thread(target=self._read_loop, name="ebpf-reader", daemon=True)
            reader.start()
            self._threads.append(reader)
        if "syscalls" in loaded:
            self._window_start = time.time()
            win = threading.Thread(target=self._window_loop, name="ebpf-windows", daemon=True)
            win.start()
            self._threads.append(win)

    def _configure(self, loaded: Sequence[str]) -> None:
        assert self.bpf is not None
        conf = self.bpf[b"rg_conf"]
        conf[ctypes.c_int(CONF_ALL)] = ctypes.c_ulonglong(1 if self.include_host else 0)
        conf[ctypes.c_int(CONF_RATE)] = ctypes.c_ulonglong(self.settings.max_events_per_second_per_container)
        conf[ctypes.c_int(CONF_GEN)] = ctypes.c_ulonglong(self._gen)
        kinds = {nr: kind for p in loaded for nr, kind in SYSCALL_KINDS.get(p, {}).items()}
        if kinds:
            table = self.bpf[b"rg_sys_kind"]
            for nr, kind in kinds.items():
                table[ctypes.c_int(nr)] = ctypes.c_uint(kind)
        if "files" in loaded:
            self.set_sensitive(self.settings.sensitive_paths, self.settings.sensitive_write_prefixes)
            self.set_change_prefixes(self.settings.change_watch_prefixes)

    def set_sensitive(self, any_open: Sequence[str], write_only: Sequence[str]) -> None:
        """Replace the kernel's sensitive prefix set (an LPM trie: longest prefix wins)."""
        assert self.bpf is not None
        trie = self.bpf[b"rg_sensitive"]
        trie.clear()
        entries: dict[str, int] = {}
        for p in write_only:
            entries[p] = entries.get(p, 0) | MATCH_WRITE
        for p in any_open:
            entries[p] = entries.get(p, 0) | MATCH_ANY
        for prefix, kind in entries.items():
            data = prefix.encode()[:PREFIX_LEN]
            k = trie.Key()
            k.prefixlen = len(data) * 8
            k.data = data  # a c_char array field: assignment copies (k.data reads a bytes copy)
            trie[k] = ctypes.c_uint(kind)

    def set_change_prefixes(self, prefixes: Sequence[str]) -> None:
        """Replace the prefixes whose unlinks and renames the kernel reports (``rg_change_paths``)."""
        assert self.bpf is not None
        trie = self.bpf[b"rg_change_paths"]
        trie.clear()
        for prefix in prefixes:
            data = prefix.encode()[:PREFIX_LEN]
            k = trie.Key()
            k.prefixlen = len(data) * 8
            k.data = data
            trie[k] = ctypes.c_uint(1)

    def _open_outputs(self, names: Sequence[str]) -> None:
        assert self.bpf is not None
        for probe in names:
            table = self.bpf[OUTPUTS[probe].encode()]
            cb = self._make_callback(probe)
            if self.support.ringbuf:
                # bcc's open_ring_buffer wraps every record's callback in another Python frame
                # (try/except, int()); at 50K records/s that is measurable, so the ctypes
                # callback is registered directly, kept alive on the table as bcc does.
                from bcc.libbcc import _RINGBUF_CB_TYPE

                fn = _RINGBUF_CB_TYPE(cb)
                self.bpf._open_ring_buffer(table.map_fd, fn, None)
                table._cbs[0] = fn
            else:
                table.open_perf_buffer(cb, page_cnt=self.settings.ring_buffer_pages, lost_cb=self._make_lost_cb(probe))

    def _make_callback(self, probe: str) -> Callable[[Any, Any, int], int]:
        append = self._batch.append
        string_at = ctypes.string_at

        def _cb(_ctx: Any, data: Any, size: int) -> int:
            append((probe, string_at(data, size)))
            return 0

        return _cb

    def _make_lost_cb(self, probe: str) -> Callable[[int], None]:
        def _lost(n: int) -> None:
            self.perf_lost[probe] += n

        return _lost

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=3)
        self._threads.clear()
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
    def on_container(self, what: str, c: Container) -> None:
        """Registry listener: keep the kernel's monitored-cgroup map equal to the registry."""
        bpf = self.bpf
        if bpf is None or (not c.cgroup_id and what != "removed"):
            return
        table = bpf[b"rg_cgroups"]
        with self._lock:
            # An update may move a container to another cgroup: forget the old id first.
            old = self._cgroup_of.pop(c.id, None)
            if old is not None and (what == "removed" or old != c.cgroup_id):
                try:
                    del table[ctypes.c_ulonglong(old)]
                except KeyError:
                    pass
                self._monitored.discard(old)
            if what != "removed":
                table[ctypes.c_ulonglong(c.cgroup_id)] = ctypes.c_ubyte(1)
                self._monitored.add(c.cgroup_id)
                self._cgroup_of[c.id] = c.cgroup_id

    def monitor_cgroup(self, cgroup_id: int, on: bool = True) -> None:
        """Add (or remove) one cgroup id to the kernel filter directly (benchmarks, tests)."""
        bpf = self.bpf
        if bpf is None:
            return
        table = bpf[b"rg_cgroups"]
        with self._lock:
            if on:
                table[ctypes.c_ulonglong(cgroup_id)] = ctypes.c_ubyte(1)
                self._monitored.add(cgroup_id)
            else:
                try:
                    del table[ctypes.c_ulonglong(cgroup_id)]
                except KeyError:
                    pass
                self._monitored.discard(cgroup_id)

    # --- reading --------------------------------------------------------------------------
    def _read_loop(self) -> None:
        bpf = self.bpf
        # With a gap (probes/common.h rg_rb_flags): the first record after a quiet gap wakes
        # us; the ones written within the gap do not, so after each batch sleep the gap and
        # drain every ring again, until a drain comes back empty.
        gapped = self.support.ringbuf and self.settings.poll_interval_ms > 0
        gap = self.settings.poll_interval_ms / 1000
        while not self._stop.is_set() and bpf is not None:
            try:
                if self.support.ringbuf:
                    bpf.ring_buffer_poll(IDLE_POLL_MS)
                    if gapped:
                        bpf.ring_buffer_consume()
                else:
                    bpf.perf_buffer_poll(IDLE_POLL_MS)
                while self._batch:
                    self.process_batch()
                    self.reader_cpu_seconds = time.thread_time()
                    if not gapped or self._stop.is_set():
                        break
                    time.sleep(gap)
                    bpf.ring_buffer_consume()
            except Exception as exc:  # EINTR and friends: keep reading
                log.warning("ebpf_poll_failed", error=repr(exc))
                time.sleep(0.1)

    def process_batch(self) -> int:
        """Decode, complete and publish the records gathered by the last poll."""
        batch = self._batch[:]
        del self._batch[: len(batch)]
        self.poll_batches += 1
        publish = self._on_event
        paths = self.ctx.paths if self.ctx is not None else HostPaths()
        offset = self._mono_offset
        counts: Counter[str] = Counter()
        for probe, raw in batch:
            try:
                ev = decode_record(raw, offset)
            except DecodeError as exc:
                self.malformed += 1
                log.debug("ebpf_record_malformed", probe=probe, error=str(exc))
                continue
            if probe == "exec" and isinstance(ev, ProcessExec):
                ev = complete_exec(ev, paths)
            elif isinstance(ev, FileChange):
                change = complete_change(ev, paths, self.settings.change_watch_prefixes, change_parent(raw))
                if change is None:
                    self.changes_filtered += 1
                    continue
                ev = change
            elif probe == "net" and isinstance(ev, NetConnect) and ev.op == "accept" and not ev.dport:
                ev = complete_accept(ev, paths)
            counts[probe] += 1
            if publish is not None:
                publish(ev)
        self.delivered.update(counts)
        return sum(counts.values())

    # --- syscall windows ------------------------------------------------------------------
    def _window_loop(self) -> None:
        while not self._stop.wait(self.window_seconds):
            try:
                self.flush_window()
            except Exception as exc:
                log.error("ebpf_window_failed", error=repr(exc))

    def flush_window(self) -> list[SyscallWindow]:
        """Flip the count generation, read and delete the old one, publish per-cgroup windows."""
        bpf = self.bpf
        if bpf is None or "syscalls" not in self.active:
            return []
        with self._lock:
            old = self._gen
            self._gen ^= 1
            bpf[b"rg_conf"][ctypes.c_int(CONF_GEN)] = ctypes.c_ulonglong(self._gen)
            start, end = self._window_start, time.time()
            self._window_start = end
        # Programs that read the old generation just before the flip finish within
        # microseconds (they run with preemption disabled); give them a moment.
        time.sleep(0.002)
        per_cg: dict[int, tuple[dict[int, int], dict[tuple[int, int], int]]] = {}
        trans = bpf[b"rg_sc_trans"]
        for k, v in list(trans.items()):
            if k.gen != old:
                continue
            n = sum(v)
            del trans[k]
            counts, tr = per_cg.setdefault(k.cgroup_id, ({}, {}))
            tr[(k.prev, k.cur)] = tr.get((k.prev, k.cur), 0) + n
            # count(nr) is the sum of the transitions into nr (probes/syscalls.bpf.c).
            counts[k.cur] = counts.get(k.cur, 0) + n
            self.syscalls_counted += n
        full = bpf[b"rg_sc_full"]
        self.count_map_full = sum(full[ctypes.c_int(0)])
        out = []
        for cg, (c, t) in per_cg.items():
            w = SyscallWindow(ts=end, cgroup_id=cg, start=start, end=end, counts=c, transitions=t)
            out.append(w)
            if self._on_event is not None:
                self._on_event(w)
        self.windows_published += len(out)
        return out

    # --- counters -------------------------------------------------------------------------
    def lost_counts(self) -> dict[str, int]:
        """Events lost per probe: ring/perf buffer full in the kernel, plus perf lost callbacks."""
        out: Counter[str] = Counter(self.perf_lost)
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
            "delivered": dict(self.delivered),
            "lost": self.lost_counts(),
            "rate_limited": self.rate_limited_counts(by_cgroup=True),
            "malformed": self.malformed,
            "reader_cpu_seconds": round(self.reader_cpu_seconds, 3),
            "windows_published": self.windows_published,
            "syscalls_counted": self.syscalls_counted,
            "count_map_full": self.count_map_full,
            "changes_filtered": self.changes_filtered,
        }


def _read_link(p: Path) -> str:
    try:
        return os.readlink(p)
    except OSError:
        return ""


def _ppid_of(paths: HostPaths, pid: int) -> int:
    try:
        for line in (paths.pid_dir(pid) / "status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _comm_of(paths: HostPaths, pid: int) -> str:
    try:
        return (paths.pid_dir(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def complete_exec(ev: ProcessExec, paths: HostPaths) -> ProcessExec:
    """Fill what the kernel record lacks from /proc, best effort (the process may be gone):
    stdio targets, ppid and parent comm when the probe did not see the fork, exe origin."""
    import dataclasses

    fd_dir = paths.pid_dir(ev.pid) / "fd"
    stdio = tuple(_read_link(fd_dir / str(i)) for i in range(3))
    changes: dict[str, Any] = {}
    if any(stdio):
        changes["stdio"] = stdio
    ppid = ev.ppid or _ppid_of(paths, ev.pid)
    if ppid != ev.ppid:
        changes["ppid"] = ppid
    if not ev.parent_comm and ppid:
        changes["parent_comm"] = _comm_of(paths, ppid)
    exe = _read_link(paths.pid_dir(ev.pid) / "exe")
    if exe.startswith("/memfd:") or ev.filename.startswith("/memfd:"):
        changes["exe_origin"] = "memfd"
    elif exe.endswith(" (deleted)"):
        changes["exe_origin"] = "deleted"
    return dataclasses.replace(ev, **changes) if changes else ev


def socket_tuple(paths: HostPaths, pid: int, fd: int, local_port: int = 0) -> tuple[int, str, int, str, int] | None:
    """(family, local addr, local port, remote addr, remote port) of a connected TCP socket of
    ``pid``, read from its own /proc/<pid>/net/tcp{,6} (its network namespace): the socket at
    ``fd``, else (the task may have moved it, e.g. busybox nc dup2s it to stdin) any connected
    socket of the process on ``local_port``. None when the process or socket is gone."""
    inodes: dict[int, int] = {}
    try:
        fds = list((paths.pid_dir(pid) / "fd").iterdir())
    except OSError:
        return None
    for entry in fds:
        m = re.fullmatch(r"socket:\[(\d+)\]", _read_link(entry))
        if m:
            inodes[int(m.group(1))] = int(entry.name) if entry.name.isdigit() else -1
    best: tuple[int, str, int, str, int] | None = None
    for r in procnet.read_tables(paths, pid, ("tcp", "tcp6"), unmap=True):
        if r.inode not in inodes:
            continue
        family = socket.AF_INET6 if r.table == "tcp6" else socket.AF_INET
        t = (family, r.local, r.local_port, r.remote, r.remote_port)
        if inodes[r.inode] == fd:
            return t
        if local_port and r.local_port == local_port and r.remote_port and best is None:
            best = t
    return best


def complete_accept(ev: NetConnect, paths: HostPaths) -> NetConnect:
    """Fill an accepted connection's addresses from /proc when the probe could not read them
    (the task passed no sockaddr to accept(), or the listener predates the probe)."""
    import dataclasses

    t = socket_tuple(paths, ev.pid, ev.fd, ev.sport)
    if t is None:
        return ev
    family, la, lp, ra, rp = t
    return dataclasses.replace(ev, family=family, saddr=la, sport=lp, daddr=ra, dport=rp)


_FD_PATH = re.compile(r"/proc/(\d+)/fd/(\d+)(?:/(.*))?")


def _same_cgroup(paths: HostPaths, pid: int, cgroup_id: int) -> bool:
    try:
        v2 = read_proc_cgroup(paths, pid).v2
    except ProcessGone:
        return False
    return v2 is not None and cgroup_id_of(paths, v2) == cgroup_id


def resolve_path(path: str, pid: int, paths: HostPaths, ppid: int = 0, cgroup_id: int = 0) -> str | None:
    """The absolute path (as the container sees it) of a path a task passed: relative ones
    against /proc/<pid>/cwd, else the cwd of its parent ``ppid`` when that is in the same cgroup
    (the task may be gone: ``rm`` is short-lived, its shell is not); ``/proc/<pid>/fd/<n>[/rest]``
    (from a directory fd) through the fd's link. None when it cannot be resolved any more."""
    if not path:
        return None
    if path.startswith("/proc/"):
        m = _FD_PATH.fullmatch(path)
        if m is None or int(m.group(1)) != pid:
            return path
        target = _read_link(paths.pid_dir(pid) / "fd" / m.group(2))
        if not target.startswith("/"):
            return None
        return posixpath.normpath(posixpath.join(target, m.group(3))) if m.group(3) else target
    if path.startswith("/"):
        return path
    cwd = _read_link(paths.pid_dir(pid) / "cwd")
    if not cwd.startswith("/") and ppid and _same_cgroup(paths, ppid, cgroup_id):
        cwd = _read_link(paths.pid_dir(ppid) / "cwd")
    return posixpath.normpath(posixpath.join(cwd, path)) if cwd.startswith("/") else None


def change_watched(path: str, prefixes: Sequence[str]) -> bool:
    """Is an absolute path one whose unlink/rename is reported (the kernel's rule: below a
    prefix, or a basename ending in ``_history``/``.history``)?"""
    return any(path.startswith(p) for p in prefixes) or path.endswith(("_history", ".history"))


def complete_change(ev: FileChange, paths: HostPaths, prefixes: Sequence[str], ppid: int = 0) -> FileChange | None:
    """Resolve a change's relative or fd-relative paths; None when an unlink/rename the kernel
    let through only because it was relative turns out to be outside the watched set."""
    import dataclasses

    path = resolve_path(ev.path, ev.pid, paths, ppid, ev.cgroup_id)
    new = resolve_path(ev.new_path, ev.pid, paths, ppid, ev.cgroup_id) if ev.new_path else ""
    if ev.op != "utimes":
        sides = [p for p in (path, new) if p is not None and p != ""]
        unresolved = path is None or (ev.new_path != "" and new is None)
        if not unresolved and not any(change_watched(p, prefixes) for p in sides):
            return None
    path, new = path or ev.path, new or ev.new_path
    if (path, new) == (ev.path, ev.new_path):
        return ev
    return dataclasses.replace(ev, path=path, new_path=new)


def build(ctx: AgentContext) -> EbpfSource | None:
    """The eBPF source of this agent, or ``None`` when ``ebpf.enabled`` is false."""
    cfg = ctx.config
    if not cfg.ebpf.enabled:
        return None
    return EbpfSource(cfg.ebpf, cfg.behavior.window_seconds, cfg.runtime.include_host)
