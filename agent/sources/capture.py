# SPDX-License-Identifier: Apache-2.0
"""Per-container traffic capture: one AF_PACKET socket inside each container's network namespace,
a kernel BPF filter, flow features per window (``FlowWindow``), optional rolling pcap evidence.

Each container gets a dedicated thread that enters the container's netns with libc's ``setns(2)``:
for CLONE_NEWNET the switch affects only the calling thread, so the socket it opens sees the
container's interfaces and the rest of the agent stays in the host namespace. Loopback
traffic inside the container is not counted (it never leaves the container). Containers sharing
the host's netns (``--network host``) or with no network are skipped: capturing there would
account host traffic to a container.

The filter is compiled by libpcap (``pcap_compile``, called through ctypes) and attached with
SO_ATTACH_FILTER (frames queued before that are dropped unread, as libpcap does).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from agent.context import AgentContext
from agent.decoders.packets import FlowAccumulator, MalformedPacket, decode_frame
from agent.events import FlowWindow
from agent.hostfs import HostPaths
from agent.runtime.model import Container, ContainerRegistry
from agent.runtime.netns import enter_netns, host_netns_inodes, netns_inode
from agent.settings.sources import CaptureSettings
from agent.sources.collectors import StatusCollector
from agent.sources.ratelimit import RateLimiter

log = structlog.get_logger("agent.sources.capture")

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # linux/if_packet.h: sll_pkttype of a frame we sent
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SOL_PACKET = 263
PACKET_STATISTICS = 6
RECEIVE_BUFFER = 8 * 1024 * 1024
DLT_EN10MB = 1


class CaptureUnavailable(RuntimeError):
    """Capture cannot run for this container (reason in the message)."""


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _BpfProgram(ctypes.Structure):
    # struct bpf_program (pcap/bpf.h): { u_int bf_len; struct bpf_insn *bf_insns; }
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


_PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
_pcap: Any = None


def _libpcap() -> Any:
    """libpcap (libpcap0.8, a tcpdump dependency), loaded once. Called directly rather than
    through scapy's ``compile_filter``, whose import costs ~40 MiB of the agent's memory."""
    global _pcap
    if _pcap is None:
        name = ctypes.util.find_library("pcap") or "libpcap.so.0.8"
        lib = ctypes.CDLL(name)
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(_BpfProgram),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        _pcap = lib
    return _pcap


def attach_filter(sock: socket.socket, expression: str, snaplen: int = 65535) -> None:
    """Compile a tcpdump-syntax filter with libpcap and attach it to ``sock`` in the kernel.

    Raises ``ValueError`` with libpcap's message when the expression does not compile.
    """
    lib = _libpcap()
    handle = lib.pcap_open_dead(DLT_EN10MB, snaplen)
    if not handle:
        raise OSError("pcap_open_dead failed")
    prog = _BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1, _PCAP_NETMASK_UNKNOWN) != 0:
            raise ValueError(f"bad capture filter {expression!r}: {lib.pcap_geterr(handle).decode(errors='replace')}")
        try:
            fprog = _SockFprog(prog.bf_len, prog.bf_insns)
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)


# An idle capture thread wakes this often (ms) to read the kernel's drop counter.
IDLE_POLL_MS = 1000


class ContainerCapture:
    """The capture thread, flow accumulator and pcap writer of one container."""

    def __init__(self, c: Container, paths: HostPaths, settings: CaptureSettings, limiter: RateLimiter) -> None:
        self.container = c
        self.paths = paths
        self.settings = settings
        self.limiter = limiter
        self.flows = FlowAccumulator()
        self.lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.ready = threading.Event()
        self.error = ""
        self._stop = threading.Event()
        # Written by stop() to wake the capture thread out of poll(): an idle capture then
        # sleeps until a packet comes instead of waking on a timer.
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread: threading.Thread | None = None
        self._tcpdump: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.container.short_id}", daemon=True)
        self._thread.start()
        if self.settings.pcap_evidence:
            self._start_tcpdump()

    def stop(self) -> None:
        self._stop.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # already closed (stopped twice) or the pipe is full: awake anyway
            pass
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1
        if self._tcpdump is not None:
            self._tcpdump.terminate()
            try:
                self._tcpdump.wait(5)
            except subprocess.TimeoutExpired:
                self._tcpdump.kill()
                self._tcpdump.wait()

    @property
    def pcap_dir(self) -> Path:
        return self.settings.pcap_dir / self.container.id

    def _start_tcpdump(self) -> None:
        """Rolling evidence: at most ``pcap_files`` files of ``pcap_file_mb`` MB per container."""
        tcpdump, nsenter = shutil.which("tcpdump"), shutil.which("nsenter")
        if tcpdump is None or nsenter is None:
            self.counters["pcap_unavailable"] += 1
            log.warning(
                "pcap_evidence_unavailable", container_id=self.container.short_id, reason="tcpdump or nsenter missing"
            )
            return
        self.pcap_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # --immediate-mode and -U: each packet reaches the file at once. Without immediate mode
        # libpcap hands packets over in blocks with a 1 s timeout, so the last second before an
        # incident (or before the capture stops) could be missing from the evidence.
        cmd = [
            nsenter, f"--net={self.paths.pid_netns(self.container.init_pid)}", "--",
            tcpdump, "-i", "any", "-n", "-U", "--immediate-mode", "-Z", "root", "-s", str(self.settings.snaplen),
            "-C", str(self.settings.pcap_file_mb), "-W", str(self.settings.pcap_files),
            "-w", str(self.pcap_dir / "evidence.pcap"),
            f"not net 127.0.0.0/8 and not ip6 host ::1 and ({self.settings.bpf_filter})",
        ]  # fmt: skip
        self._tcpdump = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log.info("pcap_evidence_started", container_id=self.container.short_id, dir=str(self.pcap_dir))

    def _run(self) -> None:
        try:
            enter_netns(self.paths.pid_netns(self.container.init_pid))
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except OSError as exc:
            self.error = f"cannot open a capture socket in the container's netns: {exc}"
            log.warning("capture_failed", container_id=self.container.short_id, error=self.error)
            self.ready.set()
            return
        try:
            try:  # a burst must fit while we decode: SO_RCVBUFFORCE ignores net.core.rmem_max
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            attach_filter(sock, self.settings.bpf_filter)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):  # queued before the filter (a DAD probe from ::)
                while True:
                    sock.recv(1)
            self.ready.set()
            self._loop(sock)
        except Exception as exc:  # a broken capture must be visible in status, not kill the agent
            self.error = repr(exc)
            log.error("capture_failed", container_id=self.container.short_id, error=repr(exc))
        finally:
            self.ready.set()
            sock.close()

    def _loop(self, sock: socket.socket) -> None:
        buf = bytearray(self.settings.snaplen)
        view = memoryview(buf)
        cid = self.container.id
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            try:
                # MSG_TRUNC on a packet socket returns the frame's real length even when it is
                # longer than our buffer: bytes are counted exactly, headers fit the snaplen.
                n, addr = sock.recvfrom_into(buf, len(buf), socket.MSG_TRUNC)
            except BlockingIOError:
                # Drained: sleep until a packet (or stop()); a quiet second reads the drops.
                if not poller.poll(IDLE_POLL_MS):
                    self._read_drops(sock)
                continue
            ifname, _proto, pkttype = addr[0], addr[1], addr[2]
            if ifname == "lo":
                continue
            outgoing = pkttype == PACKET_OUTGOING
            now = time.time()
            if not self.limiter.allow(cid):
                with self.lock:  # over budget: size and direction only, no decoding
                    self.flows.count_only(outgoing, n)
                continue
            try:
                info = decode_frame(bytes(view[: min(n, len(buf))]), outgoing, wire_length=n)
            except Exception as exc:  # MalformedPacket, or a frame no check foresaw: one packet lost
                self.counters["malformed"] += 1
                if not isinstance(exc, MalformedPacket):
                    self.counters[f"malformed_{type(exc).__name__}"] += 1
                with self.lock:
                    self.flows.malformed += 1
                    self.flows.count_only(outgoing, n)
                continue
            with self.lock:
                self.flows.add(info, now)
            self.counters["packets"] += 1
            if self.counters["packets"] % 4096 == 0:
                self._read_drops(sock)

    def _read_drops(self, sock: socket.socket) -> None:
        """Add the kernel's drop count (PACKET_STATISTICS, reset on read) to our counters."""
        try:
            raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        except OSError:
            return
        _packets, drops = struct.unpack("II", raw)
        if drops:
            self.counters["kernel_drops"] += drops
            log.warning("capture_packets_dropped", container_id=self.container.short_id, drops=drops)

    def close_window(self, start: float, now: float) -> FlowWindow:
        with self.lock:
            fields = self.flows.close(now)
        c = self.container
        return FlowWindow(
            ts=now, cgroup_id=c.cgroup_id, pid=c.init_pid, container=c.ref(), start=start, end=now, **fields
        )


class CaptureSource:
    """Captures every eligible registered container and publishes one ``FlowWindow`` each per window."""

    name = "capture"

    def __init__(
        self,
        settings: CaptureSettings,
        paths: HostPaths,
        registry: ContainerRegistry,
        publish: Callable[[FlowWindow], Any],
        interval: float,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.registry = registry
        self._publish = publish
        self.interval = interval
        self.limiter = RateLimiter(settings.max_packets_per_second_per_container)
        self.captures: dict[str, ContainerCapture] = {}
        self.skipped: dict[str, str] = {}
        self._lock = threading.Lock()
        self._window_start = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def eligible(self, c: Container) -> str:
        """Why ``c`` cannot be captured ("" when it can)."""
        mode = str(c.details.get("network_mode", ""))
        if mode == "host" or mode == "none":
            return f"network mode {mode}"
        if mode.startswith("container:"):
            # --network container:<x> joins x's netns: its traffic is accounted to x.
            return f"shares the network namespace of {mode.removeprefix('container:')[:12]}"
        theirs = netns_inode(self.paths, c.init_pid)
        if not theirs:
            return f"netns unreadable: {self.paths.pid_netns(c.init_pid)}"
        # The host's netns: pid 1's, or ours when pid 1 is not readable (a sandboxed init);
        # the agent runs in the host network namespace.
        if theirs in host_netns_inodes(self.paths):
            return "shares the host network namespace"
        return ""

    def add(self, c: Container) -> ContainerCapture | None:
        """Start capturing ``c`` (no-op when already captured or not eligible)."""
        with self._lock:
            if c.id in self.captures:
                return self.captures[c.id]
            why = self.eligible(c)
            if why:
                self.skipped[c.id] = why
                log.info("capture_skipped", container_id=c.short_id, reason=why)
                return None
            cap = ContainerCapture(c, self.paths, self.settings, self.limiter)
            self.captures[c.id] = cap
        cap.start()
        return cap

    def remove(self, container_id: str) -> None:
        with self._lock:
            cap = self.captures.pop(container_id, None)
            self.skipped.pop(container_id, None)
        if cap is not None:
            cap.stop()

    def on_registry(self, what: str, c: Container) -> None:
        """Registry handler: open a capture for a new container, close it for a removed one."""
        if what == "removed":
            self.remove(c.id)
        elif what == "added":
            self.add(c)
        elif what == "updated":
            with self._lock:
                cap = self.captures.get(c.id)
            if cap is not None and (cap.container.init_pid, cap.container.netns_inode) != (c.init_pid, c.netns_inode):
                # A restarted container has a new init and a new netns: reopen the capture there.
                self.remove(c.id)
                self.add(c)

    def start(self, ctx: AgentContext | None = None) -> None:
        self._stop.clear()
        for c in self.registry.all():
            self.add(c)
        self._window_start = time.time()
        self._thread = threading.Thread(target=self._run, name="capture-windows", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for cid in list(self.captures):
            self.remove(cid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush(time.time())

    def flush(self, now: float) -> list[FlowWindow]:
        """Close the window of every captured container; publish and return the windows."""
        start, self._window_start = self._window_start, now
        with self._lock:
            caps = list(self.captures.values())
        out = [cap.close_window(start, now) for cap in caps]
        for w in out:
            self._publish(w)
        return out

    def counters_by_container(self) -> Mapping[str, Any]:
        """Per-container counters for Prometheus: {counter: {container id: n}}."""
        with self._lock:
            caps = dict(self.captures)
        out: dict[str, dict[str, int]] = {k: {} for k in ("packets", "malformed", "kernel_drops")}
        for cid, cap in caps.items():
            for k in out:
                out[k][cid] = cap.counters[k]
        out["rate_limited"] = dict(self.limiter.dropped)
        return out

    def status(self) -> Mapping[str, Any]:
        with self._lock:
            caps = dict(self.captures)
        return {
            "containers": {
                cid[:12]: {
                    "error": cap.error,
                    "malformed": cap.counters["malformed"],
                    "kernel_drops": cap.counters["kernel_drops"],
                    "packets": cap.counters["packets"],
                    "pcap_dir": str(cap.pcap_dir) if self.settings.pcap_evidence else "",
                }
                for cid, cap in caps.items()
            },
            "skipped": {cid[:12]: why for cid, why in self.skipped.items()},
            "rate_limited_packets": dict(self.limiter.dropped),
        }


def build(ctx: AgentContext) -> CaptureSource | None:
    """The capture source (``None`` unless ``capture.enabled``)."""
    settings = ctx.config.capture
    if not settings.enabled:
        return None
    settings = settings.model_copy(update={"pcap_dir": ctx.paths.in_state(settings.pcap_dir)})
    interval = settings.interval_seconds or ctx.config.behavior.window_seconds
    src = CaptureSource(settings, ctx.paths, ctx.registry, ctx.publish, interval)
    ctx.control("capture.status", lambda _params: dict(src.status()))
    ctx.metrics.register(
        StatusCollector(
            "riskguard_capture",
            src.counters_by_container,
            [
                ("packets", "Packets decoded"),
                ("malformed", "Packets that could not be decoded (counted, skipped)"),
                ("kernel_drops", "Packets the kernel dropped on our capture socket"),
                ("rate_limited", "Packets over the per-container budget (counted, not decoded)"),
            ],
        )
    )
    return src
