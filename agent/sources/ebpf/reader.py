# SPDX-License-Identifier: Apache-2.0
"""Reading what the probes report: the event records of every probe's ring (or perf) buffer,
decoded, completed from /proc and published in batches (``Reader``). The in-kernel syscall
transition counts are read by ``counts.SyscallCounts``."""

from __future__ import annotations

import ctypes
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from agent.decoders.ebpf import DecodeError, decode_record
from agent.events import Event, FileChange, NetConnect, ProcessExec
from agent.hostfs import HostPaths
from agent.settings.sources import EbpfSettings
from agent.sources.ebpf.complete import complete_accept, complete_change, complete_exec
from agent.sources.ebpf.known import KnownSet
from agent.sources.ebpf.program import OUTPUTS

log = structlog.get_logger("agent.sources.ebpf")

# The reader's wait for a wakeup is bounded (ms): a record whose producer raced with the
# reader's last drain is read at the latest this much later; also the idle reader's wakeups.
IDLE_POLL_MS = 100

Publish = Callable[[Event], object]


class Reader:
    """Drains the probes' output buffers in batches: decode (``agent.decoders.ebpf``), complete
    from /proc, publish; counts what it delivered, what did not decode and what was lost."""

    def __init__(self, settings: EbpfSettings, paths: HostPaths) -> None:
        self.settings = settings
        self.paths = paths
        self.publish: Publish | None = None
        self.ringbuf = True
        self.batch: list[tuple[str, bytes]] = []
        self.delivered: Counter[str] = Counter()
        self.malformed = 0
        self.perf_lost: Counter[str] = Counter()
        self.changes_filtered = 0  # relative unlinks/renames that resolved outside the watched set
        self.poll_batches = 0
        self.cpu_seconds = 0.0  # CPU time of the reader thread (poll + decode + publish)
        self._mono_offset = time.time() - time.monotonic()
        # Learns the images' known execs and connects (known.py): the records of learning
        # cgroups are handed to it; the others never are (one set membership per record).
        self.known: KnownSet | None = None

    def open(self, bpf: Any, names: Sequence[str], ringbuf: bool) -> None:
        """Register a callback on the output buffer of each event probe in ``names``."""
        self.ringbuf = ringbuf
        for probe in names:
            table = bpf[OUTPUTS[probe].encode()]
            cb = self._make_callback(probe)
            if ringbuf:
                # bcc's open_ring_buffer wraps every record's callback in another Python frame
                # (try/except, int()); at 50K records/s that is measurable, so the ctypes
                # callback is registered directly, kept alive on the table as bcc does.
                from bcc.libbcc import _RINGBUF_CB_TYPE

                fn = _RINGBUF_CB_TYPE(cb)
                bpf._open_ring_buffer(table.map_fd, fn, None)
                table._cbs[0] = fn
            else:
                table.open_perf_buffer(cb, page_cnt=self.settings.ring_buffer_pages, lost_cb=self._make_lost_cb(probe))

    def _make_callback(self, probe: str) -> Callable[[Any, Any, int], int]:
        append = self.batch.append
        string_at = ctypes.string_at

        def _cb(_ctx: Any, data: Any, size: int) -> int:
            append((probe, string_at(data, size)))
            return 0

        return _cb

    def _make_lost_cb(self, probe: str) -> Callable[[int], None]:
        def _lost(n: int) -> None:
            self.perf_lost[probe] += n

        return _lost

    def run(self, bpf: Any, stop: threading.Event) -> None:
        """The reader thread: wait for records, drain them in batches, until ``stop`` is set."""
        # With a gap (probes/common.h rg_rb_flags): the first record after a quiet gap wakes
        # us; the ones written within the gap do not, so after each batch sleep the gap and
        # drain every ring again, until a drain comes back empty.
        gapped = self.ringbuf and self.settings.poll_interval_ms > 0
        gap = self.settings.poll_interval_ms / 1000
        cpu_read = 0.0
        while not stop.is_set() and bpf is not None:
            try:
                if self.ringbuf:
                    bpf.ring_buffer_poll(IDLE_POLL_MS)
                    if gapped:
                        bpf.ring_buffer_consume()
                else:
                    bpf.perf_buffer_poll(IDLE_POLL_MS)
                while self.batch:
                    self.process_batch()
                    now = time.monotonic()
                    if now - cpu_read >= 0.1:  # the thread's CPU clock is a slow call in a VM
                        self.cpu_seconds, cpu_read = time.thread_time(), now
                    if not gapped or stop.is_set():
                        break
                    time.sleep(gap)
                    bpf.ring_buffer_consume()
            except Exception as exc:  # EINTR and friends: keep reading
                log.warning("ebpf_poll_failed", error=repr(exc))
                time.sleep(0.1)

    def process_batch(self) -> int:
        """Decode, complete and publish the records gathered by the last poll."""
        batch = self.batch[:]
        del self.batch[: len(batch)]
        self.poll_batches += 1
        publish = self.publish
        paths = self.paths
        offset = self._mono_offset
        prefixes = self.settings.change_watch_prefixes
        known = self.known
        learning = known.learning_cgroups if known is not None else frozenset()
        counts: Counter[str] = Counter()
        for probe, raw in batch:
            try:
                ev = decode_record(raw, offset)
                if learning and ev.cgroup_id in learning and known is not None:
                    if isinstance(ev, ProcessExec):
                        known.learn_exec(ev.cgroup_id, raw, ev.ts)
                    elif isinstance(ev, NetConnect):
                        known.learn_conn(ev, ev.ts)
                if probe == "exec" and isinstance(ev, ProcessExec):
                    ev = complete_exec(ev, paths)
                elif isinstance(ev, FileChange):
                    change = complete_change(ev, paths, prefixes)
                    if change is None:
                        self.changes_filtered += 1
                        continue
                    ev = change
                elif probe == "net" and isinstance(ev, NetConnect) and ev.op == "accept" and not ev.dport:
                    ev = complete_accept(ev, paths)
            except DecodeError as exc:
                self.malformed += 1
                log.debug("ebpf_record_malformed", probe=probe, error=str(exc))
                continue
            except Exception as exc:  # one record no check foresaw: skipped, the batch goes on
                self.malformed += 1
                log.warning("ebpf_record_skipped", probe=probe, error=repr(exc)[:300])
                continue
            counts[probe] += 1
            if publish is not None:
                publish(ev)
        self.delivered.update(counts)
        return sum(counts.values())
