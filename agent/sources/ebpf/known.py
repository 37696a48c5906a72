# SPDX-License-Identifier: Apache-2.0
"""Known execs and connects, counted in the kernel instead of sent one by one (probes/known.h).

While an image's baseline learns (``Allowances.learning``: ``behavior.learning_seconds`` from
its first window, not frozen), every exec and established connect its containers make is
recorded in the exact form the kernel compares: an exec as (path, parent comm, hash of the argv
bytes), a connect as (family, address, port). Once the image has learned, those entries go into
the kernel's maps under the image's slot, and each of the image's cgroups gets that slot: a
matching exec or connect is then counted in ``rg_known_hits`` and never reaches Python. Every
``SYNC_SECONDS`` the counts are read (deltas; a key is deleted only after its final read) and
published as ``KnownActivity`` per cgroup, which the window aggregator folds like the events
they stand for: behaviour windows keep their exec and connect counts, binaries, peers and
ports. The maps' lifecycle (room, pruning gone images, slot reuse, refusals) is
known_kernel.py's; an image whose baseline learns again after it had learned (relearn, reset)
forgets its entries and learns them anew.

Never learned as known (they always reach the detectors): shells and interpreters (by path or
by the executable the kernel ran: a script's interpreter), paths below the detectors' writable
directories or in /proc, /dev, memfd; relative paths; truncated argv; failed connects. The
learned entries are stored (table ``ebpf_known``), so a restart does not relearn them; at most
``MAX_PER_IMAGE`` per image and kind, ``max_entries`` in the kernel.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import posixpath
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog

from agent.decoders.ebpf import EXEC, HDR
from agent.events import ContainerRef, KnownActivity, NetConnect
from agent.sources.ebpf.known_kernel import GRACE_SECONDS, MAX_ENTRIES, KnownKernel
from agent.store import Store
from agent.vuln.rootfs import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

log = structlog.get_logger("agent.sources.ebpf")

SYNC_SECONDS = 2.0
MAX_PER_IMAGE = 1024
KNOWN_PATH = 128  # RG_KNOWN_PATH
ARGS_BYTES = 2048  # RG_ARGS_BYTES in probes/exec.h
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK64 = (1 << 64) - 1
_NEVER_DIRS = ("/proc/", "/dev/", "/memfd:", "/sys/")
_VERSION = re.compile(r"[\d.]+$")

_MIGRATIONS = [
    """CREATE TABLE ebpf_known (
        image TEXT NOT NULL,
        kind TEXT NOT NULL,
        entry BLOB NOT NULL,
        first_seen REAL NOT NULL,
        PRIMARY KEY (image, kind, entry)
    )""",
]

ExecEntry = tuple[bytes, bytes, int]  # path, parent comm, argv hash
ConnEntry = tuple[int, bytes, int]  # family, address (16 bytes), port


def argv_hash(args: bytes) -> int:
    """FNV-1a over the 64-bit little-endian words of ``args``, the last one zero-padded: the
    kernel's ``rg_argv_hash`` (probes/exec.bpf.c)."""
    h = _FNV_OFFSET
    for i in range(0, len(args), 8):
        h = ((h ^ int.from_bytes(args[i : i + 8], "little")) * _FNV_PRIME) & _MASK64
    return h


def _cstr(b: bytes) -> bytes:
    return b.split(b"\0", 1)[0]


def exec_entry(raw: bytes) -> tuple[ExecEntry, str, str] | None:
    """The known-exec entry of a raw exec record, the executable the kernel ran (basename) and
    argv[0]; None when the record can never be known (truncated argv, long path, no executable
    read, a deleted one)."""
    base = HDR.size
    if len(raw) < base + EXEC.size:
        return None
    _ppid, _argc, size, truncated, pcomm, filename, flags, nlink, *_parent, exe, _n, _p, _new = EXEC.unpack_from(
        raw, base
    )
    path = _cstr(filename)
    if truncated or size > ARGS_BYTES or not flags & 2 or not nlink or len(path) >= KNOWN_PATH:
        return None
    args = raw[base + EXEC.size : base + EXEC.size + size]
    argv0 = _cstr(args).decode("utf-8", "replace")
    return (path, _cstr(pcomm), argv_hash(args)), _cstr(exe).decode("utf-8", "replace"), argv0


def conn_entry(ev: NetConnect) -> ConnEntry | None:
    """The known-connect entry of an established TCP connect, else None."""
    if ev.op != "connect" or ev.state != "ESTABLISHED" or not ev.daddr:
        return None
    try:
        addr = ipaddress.ip_address(ev.daddr).packed
    except ValueError:
        return None
    return ev.family, addr.ljust(16, b"\0"), ev.dport


class KnownSet:
    """Learns the images' known execs and connects, installs them in the kernel, reads counts."""

    def __init__(
        self,
        store: Store | None,
        learning: Callable[[str, float], bool],
        never_programs: Iterable[str] = (),
        never_dirs: Iterable[str] = (),
        max_per_image: int = MAX_PER_IMAGE,
        key_of: Callable[[ContainerRef], str] = lambda c: c.image or c.image_id or "unknown",
        root_of: Callable[[int], Path | None] = lambda _cg: None,
        max_entries: int = MAX_ENTRIES,
        grace_seconds: float = GRACE_SECONDS,
    ) -> None:
        self.store = store
        self.learning = learning
        # A container's baseline key; the root of a cgroup's container (its init's /proc root),
        # to tell a script from a busybox applet link.
        self.key_of = key_of
        self.root_of = root_of
        self._scripts: dict[tuple[int, bytes], bool] = {}
        self.never_programs = frozenset(never_programs)
        self.never_dirs = (*_NEVER_DIRS, *never_dirs)
        self.max_per_image = max_per_image
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self.cgroups: dict[int, str] = {}  # monitored cgroup -> baseline key
        self.learning_cgroups: frozenset[int] = frozenset()  # read by the reader, swapped whole
        self._learning_keys: set[str] = set()
        self.execs: dict[str, dict[ExecEntry, int]] = {}
        self.conns: dict[str, dict[ConnEntry, int]] = {}
        self.info: dict[int, tuple[str, str, int]] = {}  # id -> ("exec", path, 0) / ("conn", addr, port)
        self._next_id = 1
        # The kernel's maps (known_kernel.py): ``max_entries`` in total, an image's entries
        # pruned ``grace_seconds`` after its last container went.
        self.kernel = KnownKernel(max_entries, grace_seconds)
        self._learned_keys: set[str] = set()  # keys seen learned (stored: a later learning is a relearn)
        self._retired: set[int] = set()  # ids of forgotten entries, until their hits' final read
        self.counted = {"execs": 0, "connects": 0}
        self.refused = 0
        # While an image learns: the entries each cgroup made (a finding about its container
        # takes them back, ``taint``), and the cgroups whose container had such a finding (they
        # teach nothing more until they go).
        self._made: dict[int, set[tuple[str, ExecEntry | ConnEntry]]] = {}
        self.tainted: set[int] = set()
        self.untaught = 0  # entries taken back
        if store is not None:
            store.migrate("ebpf_known", _MIGRATIONS)
            for row in store.query("SELECT image, kind, entry FROM ebpf_known"):
                self._load(str(row[0]), str(row[1]), bytes(row[2]))

    # --- learning ----------------------------------------------------------------------
    def _load(self, key: str, kind: str, blob: bytes) -> None:
        if kind == "exec" and len(blob) == KNOWN_PATH + 16 + 8:
            path, pcomm, h = _cstr(blob[:KNOWN_PATH]), _cstr(blob[KNOWN_PATH : KNOWN_PATH + 16]), blob[-8:]
            self._add_exec(key, (path, pcomm, int.from_bytes(h, "little")))
        elif kind == "conn" and len(blob) == 20:
            self._add_conn(key, (int.from_bytes(blob[:2], "little"), blob[2:18], int.from_bytes(blob[18:], "little")))
        elif kind == "learned":
            self._learned_keys.add(key)

    def _new_id(self, kind: str, what: str, port: int) -> int:
        i = self._next_id
        self._next_id += 1
        self.info[i] = (kind, what, port)
        return i

    def _add_exec(self, key: str, e: ExecEntry) -> bool:
        table = self.execs.setdefault(key, {})
        if e in table or len(table) >= self.max_per_image:
            return False
        table[e] = self._new_id("exec", e[0].decode("utf-8", "replace"), 0)
        return True

    def _add_conn(self, key: str, e: ConnEntry) -> bool:
        table = self.conns.setdefault(key, {})
        if e in table or len(table) >= self.max_per_image:
            return False
        addr = ipaddress.ip_address(e[1][:4] if e[0] == socket.AF_INET else e[1])
        table[e] = self._new_id("conn", str(addr), e[2])
        return True

    def _never(self, name: str) -> bool:
        return name in self.never_programs or _VERSION.sub("", name) in self.never_programs

    def eligible(self, path: bytes, exe: str, cgroup_id: int = 0, argv0: str = "") -> bool:
        """May an exec of ``path`` (the kernel ran ``exe``, argv[0] ``argv0``) ever be counted
        instead of sent? Not a shell or interpreter (by name, or a script: ``exe`` is then its
        interpreter), not below a writable or pseudo directory; busybox re-executing itself for
        an applet (``/proc/self/exe``) is judged by the applet."""
        text = path.decode("utf-8", "replace")
        if text == "/proc/self/exe" and exe == "busybox":
            applet = posixpath.basename(argv0)
            return bool(applet) and applet != "busybox" and not self._never(applet)
        if not text.startswith("/") or text.startswith(self.never_dirs):
            return False
        name = posixpath.basename(text)
        if self._never(name) or (self._never(exe) and exe != "busybox"):
            return False
        # busybox runs its applets through links (/bin/true -> busybox) and shell scripts
        # (#!/bin/sh -> busybox) alike: only a file that is not a script may be known.
        return exe != "busybox" or not self._is_script(cgroup_id, path)

    def _is_script(self, cgroup_id: int, path: bytes) -> bool:
        """Does ``path`` in the cgroup's container start with ``#!`` (unreadable: assume so)?"""
        hit = self._scripts.get((cgroup_id, path))
        if hit is not None:
            return hit
        root = self.root_of(cgroup_id)
        head = _head(root, path.decode("utf-8", "replace")) if root is not None else None
        script = head is None or head.startswith(b"#!")
        if len(self._scripts) >= 4096:
            self._scripts.clear()
        self._scripts[(cgroup_id, path)] = script
        return script

    def learn_exec(self, cgroup_id: int, raw: bytes, now: float) -> None:
        """Record a raw exec record of a learning cgroup (the reader calls this)."""
        key = self.cgroups.get(cgroup_id)
        got = exec_entry(raw)
        if key is None or got is None:
            return
        entry, exe, argv0 = got
        if cgroup_id in self.tainted:
            return
        if not self.eligible(entry[0], exe, cgroup_id, argv0):
            self.refused += 1
            return
        with self._lock:
            added = self._add_exec(key, entry)
            self._made_by(cgroup_id, "exec", entry)
        if added and self.store is not None:
            self._save(key, "exec", _blob("exec", entry), now)

    def learn_conn(self, ev: NetConnect, now: float) -> None:
        """Record an established connect of a learning cgroup."""
        key = self.cgroups.get(ev.cgroup_id)
        entry = conn_entry(ev)
        if key is None or entry is None or ev.cgroup_id in self.tainted:
            return
        with self._lock:
            added = self._add_conn(key, entry)
            self._made_by(ev.cgroup_id, "conn", entry)
        if added and self.store is not None:
            self._save(key, "conn", _blob("conn", entry), now)

    def _made_by(self, cgroup_id: int, kind: str, entry: ExecEntry | ConnEntry) -> None:
        made = self._made.setdefault(cgroup_id, set())
        if len(made) < 2 * self.max_per_image:  # beyond, its image's tables are full anyway
            made.add((kind, entry))

    def taint(self, cgroup_id: int, now: float) -> int:
        """A finding suggests that the cgroup's container did something wrong while its image
        learns: every entry it made is taken back (also when another container made it too: the
        image learns it again from a clean one) and it teaches nothing more. A compromise during
        the learning period must not become traffic the kernel counts and the rules never see.
        Returns the entries taken back (0 when the image is not learning)."""
        key = self.cgroups.get(cgroup_id)
        if key is None or not self.learning(key, now):
            return 0
        with self._lock:
            self.tainted.add(cgroup_id)
            dropped: list[tuple[str, ExecEntry | ConnEntry]] = []
            for kind, entry in self._made.pop(cgroup_id, ()):
                table: dict[Any, int] | None = self.execs.get(key) if kind == "exec" else self.conns.get(key)
                if table is not None and table.pop(entry, None) is not None:
                    dropped.append((kind, entry))
            self.untaught += len(dropped)
        if self.store is not None:
            for kind, entry in dropped:
                self.store.execute(
                    "DELETE FROM ebpf_known WHERE image = ? AND kind = ? AND entry = ?", (key, kind, _blob(kind, entry))
                )
        log.warning("ebpf_known_tainted", image=key, cgroup_id=cgroup_id, entries_taken_back=len(dropped))
        return len(dropped)

    def _save(self, key: str, kind: str, blob: bytes, now: float) -> None:
        assert self.store is not None
        self.store.execute(
            "INSERT OR IGNORE INTO ebpf_known (image, kind, entry, first_seen) VALUES (?, ?, ?, ?)",
            (key, kind, blob, now),
        )

    # --- containers --------------------------------------------------------------------
    def track(self, cgroup_id: int, key: str | None) -> None:
        """Follow (``key``) or forget (None) a monitored cgroup."""
        with self._lock:
            if key is None:
                self.cgroups.pop(cgroup_id, None)
                self._made.pop(cgroup_id, None)
                self.tainted.discard(cgroup_id)
            else:
                self.cgroups[cgroup_id] = key
                if key in self._learning_keys:
                    self.learning_cgroups = self.learning_cgroups | {cgroup_id}

    # --- kernel ------------------------------------------------------------------------
    def sync(self, bpf: Any, now: float, publish: Callable[[KnownActivity], object] | None) -> list[KnownActivity]:
        """Refresh the learning state, make the kernel's maps follow it (known_kernel.py), read
        the counts."""
        with self._lock:
            cgroups = dict(self.cgroups)
        keys = set(cgroups.values())
        learning = {k for k in keys if self.learning(k, now)}
        for key in sorted(learning & self._learned_keys):
            self._relearn(bpf, key)
        for key in sorted(keys - learning - self._learned_keys):
            self._learned_keys.add(key)
            if self.store is not None:
                self._save(key, "learned", b"", now)
        self._learning_keys = learning
        self.learning_cgroups = frozenset(cg for cg, k in cgroups.items() if k in learning)
        with self._read_lock:  # the maps' state is the read's as well (a window's drain)
            self.kernel.sync(bpf, now, cgroups, learning, self._entries)
            return self._read(bpf, now, publish)

    def _entries(self, key: str) -> dict[tuple[str, Any], int]:
        with self._lock:  # the reader thread adds entries
            out: dict[tuple[str, Any], int] = {("exec", e): i for e, i in self.execs.get(key, {}).items()}
            out.update({("conn", e): i for e, i in self.conns.get(key, {}).items()})
        return out

    def _relearn(self, bpf: Any, key: str) -> None:
        """``key``'s baseline learns again (relearned, reset, unfrozen within its period): its
        entries leave the kernel and the store; what it learns now is installed once learned."""
        with self._lock:
            ids = [*self.execs.pop(key, {}).values(), *self.conns.pop(key, {}).values()]
        with self._read_lock:
            self.kernel.uninstall(bpf, key, "relearning", retire=ids)
        self._retired.update(ids)
        self._learned_keys.discard(key)
        if self.store is not None:
            self.store.execute("DELETE FROM ebpf_known WHERE image = ?", (key,))
        log.info("ebpf_known_relearning", image=key, entries_forgotten=len(ids))

    def drain(self, bpf: Any, now: float) -> list[KnownActivity]:
        """The hits since the last read, returned (not published): the window aggregator asks
        just before it closes a window, so counts made in a window land in that window instead
        of up to ``SYNC_SECONDS`` later (a short window would read 0 connects, then twice as many)."""
        return self.read(bpf, now, None)

    def read(self, bpf: Any, now: float, publish: Callable[[KnownActivity], object] | None) -> list[KnownActivity]:
        """The hits since the last read, one ``KnownActivity`` per cgroup that had any."""
        with self._read_lock:  # the sync thread and a window's drain: each hit counted once
            return self._read(bpf, now, publish)

    def _read(self, bpf: Any, now: float, publish: Callable[[KnownActivity], object] | None) -> list[KnownActivity]:
        out = self.kernel.read(bpf, now, self.info)
        if self._retired:  # their hits had their final read: their ids can go
            done = self._retired - self.kernel.settled_ids()
            with self._lock:
                for i in done:
                    self.info.pop(i, None)
            self._retired -= done
        for ev in out:
            self.counted["execs"] += ev.execs
            self.counted["connects"] += ev.connects
            if publish is not None:
                publish(ev)
        return out

    def status(self) -> dict[str, Any]:
        with self._read_lock:  # the sync thread changes the kernel side's tables
            kernel = self.kernel.status()
        return {
            **kernel,
            "entries": sum(len(t) for t in self.execs.values()) + sum(len(t) for t in self.conns.values()),
            "learning_cgroups": len(self.learning_cgroups),
            "counted": dict(self.counted),
            "refused": self.refused,
            "tainted_cgroups": len(self.tainted),
            "entries_taken_back": self.untaught,
        }

    def run(self, bpf: Any, stop: threading.Event, publish: Callable[[KnownActivity], object] | None) -> None:
        """The sync thread: every ``SYNC_SECONDS`` until ``stop`` is set."""
        while not stop.wait(SYNC_SECONDS):
            try:
                self.sync(bpf, time.time(), publish)
            except Exception as exc:  # a bad round must not end the thread
                log.error("ebpf_known_sync_failed", error=repr(exc))


def _blob(kind: str, entry: Any) -> bytes:
    """An entry as the store keeps it (``_load`` reads it back)."""
    if kind == "exec":
        return bytes(entry[0].ljust(KNOWN_PATH, b"\0") + entry[1].ljust(16, b"\0") + entry[2].to_bytes(8, "little"))
    return bytes(entry[0].to_bytes(2, "little") + entry[1] + entry[2].to_bytes(2, "little"))


def _head(root: Path, path: str) -> bytes | None:
    """The first 2 bytes of ``path`` resolved inside ``root``; None when it cannot be read."""
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = openat2(root_fd, path.lstrip("/"), os.O_RDONLY | os.O_NONBLOCK, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    with contextlib.closing(os.fdopen(fd, "rb", buffering=0)) as f:
        try:
            return f.read(2)
        except OSError:
            return None
