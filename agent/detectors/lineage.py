# SPDX-License-Identifier: Apache-2.0
"""Process lineage per container: who runs what, decided from executables and interpreters.

A process's ``comm`` is the file name the kernel exec'd, so a shell script ``20-check.sh`` has
comm ``20-check.sh`` and looks like "a service" to a rule that trusts comm. ``ProcessTree``
instead records, for every exec, the executable, the interpreter named on a script's ``#!`` line
(read through the container's root with ``openat2(RESOLVE_IN_ROOT)``, at most 256 bytes) and the
program that really runs (the interpreter for a script, the applet for busybox); the program's
*role* (shell, interpreter, scheduler, init, supervisor, runtime, package_manager, wrapper,
other) comes from the detectors settings. Gaps (processes forked before the agent started,
fork-only children, host-side parents such as ``containerd-shim``) are filled from ``/proc``;
entries go on exit and on a periodic sweep of dead pids, since no source publishes every exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.detectors.dedup import Dedup
from agent.detectors.lineage_exe import parent_by_exe, read_head_in_root
from agent.detectors.lineage_names import ROLES, busybox_program, parse_shebang, role_of, script_arg
from agent.detectors.spec import basename, container_key, program_names
from agent.events import ProcessExec, ProcessExit
from agent.hostfs import HostPaths
from agent.settings.detectors import DetectorsSettings
from agent.textsafe import no_surrogates

__all__ = ["ROLES", "ProcInfo", "ProcessTree", "parse_shebang", "read_head_in_root", "role_of"]

CMDLINE_BYTES = 4096
HEAD_CACHE_SECONDS = 10.0  # a script's interpreter is re-read this often (a replaced file)
HEAD_CACHE_ENTRIES = 8192
SWEEP_GRACE_SECONDS = 5.0  # a dead process's entry outlives it this long (queued child execs)
MAX_DEPTH = 32  # ancestors walked at most (a pid cycle from reused pids cannot loop)


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """One process as lineage knows it.

    ``exe`` is the file exec'd (the event's filename, else ``/proc/<pid>/exe``), ``interpreter``
    the interpreter of a script ("" for a binary), ``program`` what really runs (basename of the
    interpreter for a script, else of the executable, busybox applets resolved), ``script`` the
    script a shell or interpreter runs when known, ``source`` "exec" (seen exec'ing), "proc"
    (filled from /proc), "name" (a gone fork known by the file its comm names, run earlier in the
    same container), "kernel" (a gone parent known by the executable the kernel read) or "event"
    (only named by a child's event's parent comm).
    """

    pid: int
    ppid: int
    exe: str
    interpreter: str
    program: str
    argv: tuple[str, ...]
    role: str
    stdio: tuple[str, ...] = ()
    start_ts: float = 0.0
    script: str = ""
    source: str = "exec"
    # False when the exec'd file could not be read (a relative path, the process already gone):
    # a script's interpreter may then be unknown, so /proc is asked again when it matters.
    resolved: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The evidence form: what a finding records about this process."""
        out: dict[str, Any] = {"pid": self.pid, "program": self.program, "role": self.role, "exe": self.exe}
        if self.interpreter:
            out["interpreter"] = self.interpreter
        if self.script:
            out["script"] = self.script
        return out


@dataclass
class ProcessTree:
    """Per-container process lineage: exec events, exits, and /proc for what they missed."""

    settings: DetectorsSettings = field(default_factory=DetectorsSettings)
    # None: memory only (no /proc, no container root: unit tests of rules on bare events).
    paths: HostPaths | None = None
    # container key -> host pid of its init process (0 unknown): the root to read scripts from
    # when the exec'ing process is already gone.
    init_pid: Callable[[str], int] = field(default=lambda _cid: 0)
    max_entries: int = 65536
    procs: OrderedDict[tuple[str, int], ProcInfo] = field(default_factory=OrderedDict)
    counters: dict[str, int] = field(default_factory=dict)
    _btime: float = -1.0
    # (container key, comm form of an exec'd file's name) -> what running that file was: a
    # forked child keeps its parent's comm, so a parent that exited before lineage saw it is
    # still known by the file it ran ("20-check.sh" is a shell script, "httpd" a server).
    names: dict[tuple[str, str], ProcInfo] = field(default_factory=dict)
    # (container key, path) -> (monotonic time read, first bytes): the #! line of a file is read
    # once per HEAD_CACHE_SECONDS, not at every exec of it.
    _heads: dict[tuple[str, str], tuple[float, bytes]] = field(default_factory=dict)
    max_names: int = 16384
    # (container key, pid) -> what the process ran before its latest exec (an entrypoint script
    # that exec'd its server): rules judging an event from before that exec ask for it.
    previous: dict[tuple[str, int], ProcInfo] = field(default_factory=dict)
    # The last exec recorded: (event, procs key, entry).
    _last: tuple[object, tuple[str, int], ProcInfo | None] = (None, ("", 0), None)
    # One copy of each string and argv/stdio tuple the entries hold (shared with ``Activity``).
    dedup: Dedup = field(default_factory=Dedup)

    # --- events ----------------------------------------------------------------------
    def on_exec(self, ev: ProcessExec) -> ProcInfo:
        """Record the program ``ev`` starts (its script's interpreter read from the container)."""
        key = ev.container.id if ev.container is not None else ""
        d = self.dedup
        name = program_names(ev)[0]
        exe = d.string(ev.filename)
        interpreter = ""
        program = name
        if self.paths is None:
            head, resolved = None, True
        else:
            head = self._read_head(key, ev.pid, exe)
            resolved = head is not None or exe.startswith(("/proc/", "/dev/fd/"))
        if head is not None:
            interp, prog = parse_shebang(head)
            if interp:
                interpreter, program = interp, prog
        elif self.paths is not None and ev.filename and name == basename(ev.filename):
            # Unreadable file (relative path, process gone): the kernel rewrote argv of a
            # script to "interpreter [arg] script ..." and /proc/<pid>/exe is the interpreter.
            found = self._interp_from_proc(ev)
            if found:
                interpreter, program = found
                resolved = True
        role = role_of(program, self.settings, exe=exe)
        script = ""
        if interpreter:
            script = exe
        elif role in ("shell", "interpreter"):
            script = script_arg(ev.argv)
        if script:
            role = role_of(program, self.settings, script=script, exe=exe)
        argv = d.strings(ev.argv if type(ev.argv) is tuple else tuple(ev.argv))
        stdio = d.strings(ev.stdio if type(ev.stdio) is tuple else tuple(ev.stdio))
        info = ProcInfo(
            ev.pid,
            ev.ppid,
            exe,
            d.string(interpreter),
            d.string(program),
            argv,
            role,
            stdio,
            ev.ts,
            d.string(script),
            "exec",
            resolved,
        )
        k = (key, ev.pid)
        old = self.procs.get(k)
        if old is not None and old.start_ts <= ev.ts and (old.exe != exe or old.argv != argv):
            if len(self.previous) >= self.max_names:
                self.previous.clear()
            self.previous[k] = old
        self._put(key, info, k)
        self._last = (ev, k, info)
        self.counters["execs"] = self.counters.get("execs", 0) + 1
        return info

    def on_exit(self, ev: ProcessExit) -> None:
        """Forget the process that exited."""
        self.procs.pop((container_key(ev), ev.pid), None)
        self.previous.pop((container_key(ev), ev.pid), None)

    def forget_container(self, container_id: str) -> None:
        for k in [k for k in self.procs if k[0] == container_id]:
            del self.procs[k]
        for h in [h for h in self._heads if h[0] == container_id]:
            del self._heads[h]
        for n in [n for n in self.names if n[0] == container_id]:
            del self.names[n]
        for p in [p for p in self.previous if p[0] == container_id]:
            del self.previous[p]

    # --- queries ---------------------------------------------------------------------
    def info_for(self, ev: ProcessExec) -> ProcInfo:
        """The lineage entry made from ``ev`` (recorded now if it was not yet)."""
        last = self._last
        mine = last[2]
        if last[0] is ev and mine is not None and self.procs.get(last[1]) is mine:
            return mine  # several rules ask about the exec just recorded
        info = self.procs.get((container_key(ev), ev.pid))
        if (
            info is not None
            and info.source == "exec"
            and info.start_ts == ev.ts
            and info.exe == ev.filename
            and info.argv == tuple(ev.argv)
        ):
            return info
        return self.on_exec(ev)

    def get(self, container_key: str, pid: int) -> ProcInfo | None:
        """What is known of ``pid`` in that container (memory only)."""
        return self.procs.get((container_key, pid))

    def lookup(self, container_key: str, pid: int) -> ProcInfo | None:
        """``get``, else ``fill_from_proc``."""
        if pid <= 0:
            return None
        info = self.procs.get((container_key, pid))
        if info is not None and not info.resolved:
            # Its exec'd file was unreadable: /proc shows the interpreter while it runs.
            refreshed = self.fill_from_proc(container_key, pid)
            if refreshed is not None:
                self._count("refreshed_from_proc")
                return refreshed
        if info is not None:
            return info
        return self.fill_from_proc(container_key, pid)

    def parent(self, ev: ProcessExec) -> ProcInfo | None:
        """The parent of ``ev``'s process: lineage, else /proc, else the executable the kernel
        read (``source="kernel"``), else a guess from the event's parent comm (``source="event"``:
        the parent exited before anyone looked)."""
        key = container_key(ev)
        info = self.lookup(key, ev.ppid)
        if info is not None:
            return info
        init = self.init_pid(key) if key and self.paths is not None else 0
        by_exe = parent_by_exe(ev, self.paths.pid_root(init) if init and self.paths else None, self.settings)
        if by_exe is not None:  # the executable the kernel read (a fork-only parent, gone)
            self._count("parent_from_kernel_exe")
            exe, program, role = by_exe
            return ProcInfo(
                pid=ev.ppid, ppid=0, exe=exe, interpreter="", program=program, argv=(), role=role, source="kernel"
            )
        comm = ev.parent_comm
        if not comm or comm == "exe":
            return None
        known = self.names.get((key, comm))
        if known is not None:
            self._count("parent_from_name")
            return dataclasses.replace(known, pid=ev.ppid, ppid=0, argv=(), stdio=(), source="name")
        self._count("parent_from_comm")
        return ProcInfo(
            pid=ev.ppid,
            ppid=0,
            exe="",
            interpreter="",
            program=comm,
            argv=(),
            role=role_of(comm, self.settings),
            source="event",
        )

    def ancestors(self, container_key: str, pid: int) -> list[ProcInfo]:
        """The ancestors of ``pid``, parent first, as far as lineage and /proc know them."""
        out: list[ProcInfo] = []
        me = self.lookup(container_key, pid)
        seen = {pid}
        ppid = me.ppid if me is not None else 0
        while ppid > 0 and ppid not in seen and len(out) < MAX_DEPTH:
            seen.add(ppid)
            info = self.lookup(container_key, ppid)
            if info is None:
                break
            out.append(info)
            if info.role == "runtime":
                break  # above the runtime is the host
            ppid = info.ppid
        return out

    def effective_parent(self, ev: ProcessExec) -> ProcInfo | None:
        """The parent of ``ev``'s process, looking through wrappers (``env``, ``timeout``,
        ``xargs``, ``find -exec`` …) to the process that chose to run it. A wrapper whose own
        parent is gone is returned with ``source="event"``: who chose is not known."""
        parent = self.parent(ev)
        depth = 0
        while parent is not None and parent.role == "wrapper" and depth < MAX_DEPTH:
            depth += 1
            nxt = self.lookup(container_key(ev), parent.ppid)
            if nxt is None:
                return dataclasses.replace(parent, source="event")
            parent = nxt
        return parent

    # --- /proc -----------------------------------------------------------------------
    def fill_from_proc(self, container_key: str, pid: int) -> ProcInfo | None:
        """Read ``pid`` from /proc (executable, argv, stdio, ppid, start time) and remember it;
        ``None`` when it is gone or lineage has no /proc."""
        if self.paths is None or pid <= 0:
            return None
        d = self.paths.pid_dir(pid)
        try:
            stat_text = (d / "stat").read_text()
        except OSError:
            self._count("proc_gone")
            return None
        try:
            fields = stat_text.rpartition(")")[2].split()
            ppid = int(fields[1])
            start_ticks = int(fields[19])
        except (ValueError, IndexError):
            self._count("proc_malformed")
            return None
        exe = _readlink(d / "exe")
        argv = _read_cmdline(d / "cmdline")
        stdio = tuple(_readlink(d / "fd" / str(i)) for i in range(3))
        program = busybox_program(exe, argv) if exe else (basename(argv[0]) if argv else "")
        role = role_of(program, self.settings, exe=exe)
        script = script_arg(argv) if role in ("shell", "interpreter") else ""
        interpreter = ""
        if script:
            interpreter = exe
            role = role_of(program, self.settings, script=script, exe=exe)
        dedup = self.dedup
        info = ProcInfo(
            pid=pid,
            ppid=ppid,
            exe=dedup.string(script or exe),
            interpreter=dedup.string(interpreter),
            program=dedup.string(program),
            argv=dedup.strings(argv),
            role=role,
            stdio=dedup.strings(stdio) if any(stdio) else (),
            start_ts=self._boot_time() + start_ticks / _CLK_TCK,
            script=dedup.string(script),
            source="proc",
        )
        self._put(container_key, info)
        self._count("filled_from_proc")
        return info

    def proc_start(self, pid: int) -> float:
        """When ``pid`` was created (its /proc stat start time, unchanged by exec), 0 unknown."""
        if self.paths is None or pid <= 0:
            return 0.0
        try:
            fields = (self.paths.pid_dir(pid) / "stat").read_text().rpartition(")")[2].split()
            return self._boot_time() + int(fields[19]) / _CLK_TCK
        except (OSError, ValueError, IndexError):
            return 0.0

    def sweep(self, now: float | None = None, grace: float = SWEEP_GRACE_SECONDS) -> int:
        """Forget the processes whose /proc entry is gone (missed exits) and that started more
        than ``grace`` seconds ago (their children's execs may still be queued); returns how many."""
        if self.paths is None:
            return 0
        paths = self.paths
        cutoff = (time.time() if now is None else now) - grace
        dead = [k for k, v in self.procs.items() if v.start_ts < cutoff and not paths.pid_dir(k[1]).is_dir()]
        for k in dead:
            del self.procs[k]
        return len(dead)

    # --- helpers ---------------------------------------------------------------------
    def _put(self, key: str, info: ProcInfo, k: tuple[str, int] | None = None) -> None:
        if k is None:
            k = (key, info.pid)
        self.procs[k] = info
        self.procs.move_to_end(k)
        while len(self.procs) > self.max_entries:
            self.procs.popitem(last=False)
        name = basename(info.exe)[:15]
        if name and name != "exe" and info.resolved:
            if len(self.names) >= self.max_names:
                self.names.clear()
            self.names[(key, name)] = info

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    def _boot_time(self) -> float:
        if self._btime < 0:
            self._btime = 0.0
            if self.paths is not None:
                with contextlib.suppress(OSError, ValueError):
                    for line in (self.paths.proc / "stat").read_text().splitlines():
                        if line.startswith("btime "):
                            self._btime = float(line.split()[1])
                            break
        return self._btime

    def _read_head(self, key: str, pid: int, path: str) -> bytes | None:
        """The first ``SHEBANG_BYTES`` of ``path`` in the container of ``pid`` (its root, else the
        container init's), resolved inside that root; ``None`` when it cannot be read."""
        if self.paths is None or not path or path.startswith(("/proc/", "/dev/fd/", "/memfd:")):
            return None
        roots = (pid, self.init_pid(key) if key else 0)
        if not path.startswith("/"):
            # Relative to the process's cwd (a CGI run as "status.cgi" after chdir), while it runs.
            cwd = _readlink(self.paths.pid_dir(pid) / "cwd")
            if not cwd.startswith("/"):
                self._count("script_unreadable")
                return None
            path, roots = posixpath.join(cwd, path), (pid, 0)
        now = time.monotonic()
        hit = self._heads.get((key, path))
        if hit is not None and now - hit[0] < HEAD_CACHE_SECONDS:
            return hit[1]
        for root_pid in roots:
            if root_pid <= 0:
                continue
            head = read_head_in_root(self.paths.pid_root(root_pid), path)
            if head is not None:
                if len(self._heads) >= HEAD_CACHE_ENTRIES:
                    self._heads.clear()
                # Only the #! line matters: an ELF's bytes are not kept.
                self._heads[(key, path)] = (now, head if head.startswith(b"#!") else b"")
                return head
        self._count("script_unreadable")
        return None

    def _interp_from_proc(self, ev: ProcessExec) -> tuple[str, str] | None:
        assert self.paths is not None
        # The kernel read the new program's argv at its exec; else /proc while it runs.
        argv = ev.exec_argv or _read_cmdline(self.paths.pid_dir(ev.pid) / "cmdline")
        # Kernel-rewritten argv of a script: [interpreter, (optional arg,) filename, args...].
        if len(argv) >= 2 and ev.filename in argv[1:3] and argv[0] != ev.filename:
            interp = argv[0]
            prog = basename(interp)
            if prog == "busybox":  # "#!/bin/busybox sh"
                prog = basename(argv[1])
            return interp, prog
        return None


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _readlink(p: os.PathLike[str]) -> str:
    try:
        # a non-UTF-8 name: U+FFFD (findings are stored as UTF-8)
        return no_surrogates(os.readlink(p))  # noqa: PTH115 - the link text exactly as the kernel wrote it; Path would normalise it
    except OSError:
        return ""


def _read_cmdline(p: Path) -> tuple[str, ...]:
    try:
        with p.open("rb") as f:
            raw = f.read(CMDLINE_BYTES)
    except OSError:
        return ()
    return tuple(a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")) if raw else ()
