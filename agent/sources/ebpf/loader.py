# SPDX-License-Identifier: Apache-2.0
"""Loading the probes: what the kernel offers (support detection with libbpf, not version
guesses), compiling one program with bcc while capturing clang's and the verifier's diagnostics,
giving back the compiler's memory, and writing the run-time settings maps."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from agent.hostfs import HostPaths
from agent.resources import release_free_heap
from agent.runtime.executables import kernel_dev
from agent.settings.sources import EbpfSettings
from agent.sources.ebpf.btf import exe_offsets
from agent.sources.ebpf.program import (
    CONF_FILTER,
    MATCH_ANY,
    MATCH_CONNECT,
    MATCH_STOP_CONNECT,
    MATCH_STOP_OPEN,
    MATCH_TRUNC,
    MATCH_WRITE,
    PREFIX_LEN,
    cflags,
    program_text,
)

BPF_MAP_TYPE_RINGBUF = 27  # include/uapi/linux/bpf.h
BPF_MAP_TYPE_TASK_STORAGE = 29


@dataclass
class Support:
    """What this host offers the eBPF source; ``problems`` say why it cannot run."""

    problems: list[str] = field(default_factory=list)
    ringbuf: bool = False
    btf: bool = False
    task_storage: bool = False
    # -D offsets of the kernel structs the exec probe walks, from the kernel's BTF (btf.py).
    offsets: dict[str, str] = field(default_factory=dict)

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
        s.offsets = exe_offsets(paths.btf_vmlinux) if s.btf else {}
    return s


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
    release_free_heap()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
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


def compile_program(names: Sequence[str], settings: EbpfSettings, support: Support, probes_dir: Path) -> Any:
    """Compile and load the probes ``names`` as one bcc program; ``CompileError`` carries the
    compiler's error lines or the tail of the verifier log."""
    from bcc import BPF

    flags = {**cflags(settings, support.ringbuf, support.task_storage), **support.offsets}
    text = program_text(names, flags, probes_dir)
    # libbcc prints clang's diagnostics and the verifier log on fd 2 and raises only
    # "Failed to compile BPF module"; capture fd 2 so status() can say why.
    with _capture_fd2() as diag:
        try:
            # Warnings of the generic kernel headers are noise here; errors still raise.
            return BPF(text=text.encode(), cflags=["-Wno-unused-function", "-Wno-macro-redefined"])
        except Exception as exc:
            detail = diag()
            raise CompileError(f"{exc}: {_diag_summary(detail)}") from None


def fill_prefix_trie(trie: Any, entries: Mapping[str, int]) -> None:
    """Replace the contents of an LPM trie keyed by ``struct rg_prefix_key`` (probes/files.h):
    each prefix (cut at ``PREFIX_LEN`` bytes) -> its value; the longest prefix wins."""
    trie.clear()
    for prefix, value in entries.items():
        data = prefix.encode()[:PREFIX_LEN]
        k = trie.Key()
        k.prefixlen = len(data) * 8
        k.data = data  # a c_char array field: assignment copies (k.data reads a bytes copy)
        trie[k] = ctypes.c_uint(value)


# The read-only open filter in front of rg_sensitive (probes/files.bpf.c rg_open_hint): the first
# 8 bytes of a path, as a little-endian word, times HINT_MUL, top HINT_BITS bits.
HINT_BITS = 12
HINT_MUL = 0x9E3779B97F4A7C15
HINT_HEAD = 8


def open_hint_slots(entries: Mapping[str, int]) -> set[int] | None:
    """The ``rg_open_hint`` slots of the prefixes that report every open (MATCH_ANY); ``None``
    when one is shorter than HINT_HEAD bytes (the filter cannot cover it: it stays off)."""
    slots = set()
    for prefix, bits in entries.items():
        if not bits & MATCH_ANY:
            continue
        head = prefix.encode()[:PREFIX_LEN]
        if len(head) < HINT_HEAD:
            return None
        word = int.from_bytes(head[:HINT_HEAD], "little")
        slots.add(((word * HINT_MUL) & 0xFFFFFFFFFFFFFFFF) >> (64 - HINT_BITS))
    return slots


def fill_open_hint(table: Any, entries: Mapping[str, int]) -> None:
    """Write ``rg_open_hint`` for the ``rg_sensitive`` entries: off while it is rewritten, on
    again only when every MATCH_ANY prefix is long enough for it."""
    on = ctypes.c_int(1 << HINT_BITS)
    table[on] = ctypes.c_ubyte(0)
    table.clear()
    slots = open_hint_slots(entries)
    if slots is None:
        return
    for slot in slots:
        table[ctypes.c_int(slot)] = ctypes.c_ubyte(1)
    table[on] = ctypes.c_ubyte(1)


def filter_changed(bpf: Any) -> None:
    """A cgroup left the filter (``rg_cgroups``): the answers tasks keep in their own storage
    (probes/task.h rg_wanted_task) expire."""
    conf = bpf[b"rg_conf"]
    key = ctypes.c_int(CONF_FILTER)
    conf[key] = ctypes.c_ulonglong(conf[key].value + 1)


def sensitive_entries(
    any_open: Sequence[str],
    write_only: Sequence[str],
    stop_open: Sequence[str] = (),
    stop_connect: Sequence[str] = (),
    connect: Sequence[str] = (),
    truncate: Sequence[str] = (),
) -> dict[str, int]:
    """The ``rg_sensitive`` trie's entries: prefix -> MATCH_ANY | MATCH_WRITE, plus the in-kernel
    response's MATCH_STOP_OPEN (an open stops the task: reported as any open too) and
    MATCH_STOP_CONNECT (an AF_UNIX connect stops the task), both for exact paths (a key ending in
    NUL; a stop path ending in "/" stays a prefix), MATCH_CONNECT (an AF_UNIX connect is
    reported) and MATCH_TRUNC (an open with O_TRUNC is reported)."""
    entries: dict[str, int] = {}
    for p in truncate:
        entries[p] = entries.get(p, 0) | MATCH_TRUNC
    for p in connect:
        entries[p] = entries.get(p, 0) | MATCH_CONNECT
    for p in write_only:
        entries[p] = entries.get(p, 0) | MATCH_WRITE
    for p in any_open:
        entries[p] = entries.get(p, 0) | MATCH_ANY
    # Stop paths are exact (the kernel response must not stop /etc/shadowsocks/... for
    # /etc/shadow): the key carries the path's NUL, and, since an LPM trie returns only the
    # longest match, the bits of every shorter entry that also covers the path.
    prefixes = dict(entries)
    for paths, bits in ((stop_open, MATCH_ANY | MATCH_STOP_OPEN), (stop_connect, MATCH_STOP_CONNECT)):
        for p in paths:
            key = p if p.endswith("/") else p + "\0"
            covered = 0
            for q, v in prefixes.items():
                if p.startswith(q):
                    covered |= v
            entries[key] = entries.get(key, 0) | covered | bits
    return entries


def fill_runtime_exes(bpf: Any, ids: frozenset[tuple[int, int]]) -> int:
    """Make ``rg_runtime_exe`` (probes/task.h) hold exactly the runtime's executables ``ids``
    ((st_dev, st_ino) from agent.runtime.executables); returns how many it holds."""
    table = bpf[b"rg_runtime_exe"]
    want = {(ino, kernel_dev(dev)) for dev, ino in ids}
    for k in list(table.keys()):
        if (k.ino, k.dev) not in want:
            del table[k]
    for ino, dev in sorted(want)[: table.max_entries]:
        key = table.Key()
        key.ino, key.dev = ino, dev
        table[key] = ctypes.c_ubyte(1)
    return min(len(want), int(table.max_entries))
