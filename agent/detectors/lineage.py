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
import fnmatch
import os
import re
import stat
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.detectors.spec import basename, container_key, derived, name_set, program_names
from agent.events import ProcessExec, ProcessExit
from agent.hostfs import HostPaths
from agent.settings.detectors import DetectorsSettings
from agent.vuln.rootfs import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

SHEBANG_BYTES = 256  # the kernel's BINPRM_BUF_SIZE: it reads no more of a #! line either
CMDLINE_BYTES = 4096
MAX_DEPTH = 32  # ancestors walked at most (a pid cycle from reused pids cannot loop)

ROLES = (
    "shell",
    "interpreter",
    "scheduler",
    "init",
    "supervisor",
    "runtime",
    "package_manager",
    "wrapper",
    "other",
)
_VERSION = re.compile(r"[\d.]+$")


@dataclass(frozen=True, slots=True)
class ProcInfo:
    """One process as lineage knows it.

    ``exe`` is the file exec'd (the event's filename, else ``/proc/<pid>/exe``), ``interpreter``
    the interpreter of a script ("" for a binary), ``program`` what really runs (basename of the
    interpreter for a script, else of the executable, busybox applets resolved), ``script`` the
    script a shell or interpreter runs when known, ``source`` "exec" (seen exec'ing) or "proc"
    (filled from /proc) or "event" (only named by a child's event).
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

    def to_dict(self) -> dict[str, Any]:
        """The evidence form: what a finding records about this process."""
        out: dict[str, Any] = {"pid": self.pid, "program": self.program, "role": self.role, "exe": self.exe}
        if self.interpreter:
            out["interpreter"] = self.interpreter
        if self.script:
            out["script"] = self.script
        return out


def _matches(name: str, names: tuple[str, ...]) -> bool:
    """``name`` is one of ``names`` (or their 15-character comm form) or fits one of its globs."""
    if not name:
        return False
    if name in name_set(names):
        return True
    globs = derived(names, "globs", lambda: tuple(n for n in names if "*" in n or "?" in n))
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def role_of(program: str, settings: DetectorsSettings, script: str = "", exe: str = "") -> str:
    """The role of a process running ``program`` (and ``script``, when it is one)."""
    s = settings
    script_name = basename(script)
    # A script can itself be a scheduler or supervisor (supervisord is a Python script).
    for name in (script_name, program):
        if not name:
            continue
        if _matches(name, s.init_systems):
            return "init"
        if _matches(name, s.schedulers):
            return "scheduler"
        if _matches(name, s.supervisors):
            return "supervisor"
    if exe.startswith("/memfd:runc") or _matches(program, s.runtime_comms) or program.startswith("containerd-shim"):
        return "runtime"
    if _matches(program, s.shells):
        return "shell"
    if _matches(program, s.interpreters) or _matches(_VERSION.sub("", program), s.interpreters):
        return "interpreter"
    if _matches(program, s.package_managers) or _matches(program, s.language_package_managers):
        return "package_manager"
    if _matches(program, s.wrappers):
        return "wrapper"
    return "other"


def parse_shebang(head: bytes) -> tuple[str, str]:
    """``(interpreter path, program)`` named on a ``#!`` line, ("", "") when ``head`` has none.

    ``#!/usr/bin/env python3`` names ``python3`` (``env -S`` and env's options are skipped),
    ``#!/bin/busybox sh`` names ``sh``.
    """
    if not head.startswith(b"#!"):
        return "", ""
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    parts = line.split()
    if not parts:
        return "", ""
    interp = parts[0]
    program = basename(interp)
    rest = parts[1:]
    if program == "env":
        words = [w for w in rest if not w.startswith("-") and "=" not in w]
        if words:
            return words[0], basename(words[0])
    if program == "busybox" and rest:
        return interp, basename(rest[0])
    return interp, program


def _busybox_program(exe: str, argv: tuple[str, ...]) -> str:
    """The program of a process from its executable and argv (busybox applets by argv)."""
    name = basename(exe.removesuffix(" (deleted)"))
    if name == "busybox" or name == "exe":
        if argv and basename(argv[0]) != "busybox":
            return basename(argv[0])
        if len(argv) > 1:
            return basename(argv[1])
    return name


def _script_arg(argv: tuple[str, ...], start: int = 1) -> str:
    """The script a shell or interpreter runs: its first argument that is not an option."""
    for a in argv[start:]:
        if a in ("-c", "-e", "-m", "-E"):
            return ""  # inline code / module, not a file
        if not a.startswith("-"):
            return a
    return ""


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

    # --- events ----------------------------------------------------------------------
    def on_exec(self, ev: ProcessExec) -> ProcInfo:
        """Record the program ``ev`` starts (its script's interpreter read from the container)."""
        key = container_key(ev)
        name, _args = program_names(ev)
        exe = ev.filename
        interpreter = ""
        program = name
        head = self._read_head(key, ev.pid, ev.filename)
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
        role = role_of(program, self.settings, exe=exe)
        script = ""
        if interpreter:
            script = exe
        elif role in ("shell", "interpreter"):
            script = _script_arg(ev.argv)
        if script:
            role = role_of(program, self.settings, script=script, exe=exe)
        info = ProcInfo(
            pid=ev.pid,
            ppid=ev.ppid,
            exe=exe,
            interpreter=interpreter,
            program=program,
            argv=tuple(ev.argv),
            role=role,
            stdio=tuple(ev.stdio),
            start_ts=ev.ts,
            script=script,
            source="exec",
        )
        self._put(key, info)
        self._count("execs")
        return info

    def on_exit(self, ev: ProcessExit) -> None:
        """Forget the process that exited."""
        self.procs.pop((container_key(ev), ev.pid), None)

    def forget_container(self, container_id: str) -> None:
        for k in [k for k in self.procs if k[0] == container_id]:
            del self.procs[k]

    # --- queries ---------------------------------------------------------------------
    def info_for(self, ev: ProcessExec) -> ProcInfo:
        """The lineage entry made from ``ev`` (recorded now if it was not yet)."""
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
        if info is not None:
            return info
        return self.fill_from_proc(container_key, pid)

    def parent(self, ev: ProcessExec) -> ProcInfo | None:
        """The parent of ``ev``'s process: lineage, else /proc, else a guess from the event's
        parent comm (``source="event"``: the parent exited before anyone looked)."""
        key = container_key(ev)
        info = self.lookup(key, ev.ppid)
        if info is not None:
            return info
        comm = ev.parent_comm
        if not comm or comm == "exe":
            return None
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
        ``xargs``, ``find -exec`` …) to the process that chose to run it."""
        parent = self.parent(ev)
        depth = 0
        while parent is not None and parent.role == "wrapper" and depth < MAX_DEPTH:
            depth += 1
            nxt = self.lookup(container_key(ev), parent.ppid)
            if nxt is None:
                return parent
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
        program = _busybox_program(exe, argv) if exe else (basename(argv[0]) if argv else "")
        role = role_of(program, self.settings, exe=exe)
        script = _script_arg(argv) if role in ("shell", "interpreter") else ""
        interpreter = ""
        if script:
            interpreter = exe
            role = role_of(program, self.settings, script=script, exe=exe)
        info = ProcInfo(
            pid=pid,
            ppid=ppid,
            exe=script or exe,
            interpreter=interpreter,
            program=program,
            argv=argv,
            role=role,
            stdio=stdio if any(stdio) else (),
            start_ts=self._boot_time() + start_ticks / _CLK_TCK,
            script=script,
            source="proc",
        )
        self._put(container_key, info)
        self._count("filled_from_proc")
        return info

    def sweep(self) -> int:
        """Forget the processes whose /proc entry is gone (missed exits); returns how many."""
        if self.paths is None:
            return 0
        paths = self.paths
        dead = [k for k in self.procs if not paths.pid_dir(k[1]).is_dir()]
        for k in dead:
            del self.procs[k]
        return len(dead)

    # --- helpers ---------------------------------------------------------------------
    def _put(self, key: str, info: ProcInfo) -> None:
        k = (key, info.pid)
        self.procs[k] = info
        self.procs.move_to_end(k)
        while len(self.procs) > self.max_entries:
            self.procs.popitem(last=False)

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
        if self.paths is None or not path.startswith("/") or path.startswith(("/proc/", "/dev/fd/", "/memfd:")):
            return None
        for root_pid in (pid, self.init_pid(key) if key else 0):
            if root_pid <= 0:
                continue
            head = read_head_in_root(self.paths.pid_root(root_pid), path)
            if head is not None:
                return head
        self._count("script_unreadable")
        return None

    def _interp_from_proc(self, ev: ProcessExec) -> tuple[str, str] | None:
        assert self.paths is not None
        d = self.paths.pid_dir(ev.pid)
        argv = _read_cmdline(d / "cmdline")
        # Kernel-rewritten argv of a script: [interpreter, (optional arg,) filename, args...].
        if len(argv) >= 2 and ev.filename in argv[1:3] and argv[0] != ev.filename:
            interp = argv[0]
            prog = basename(interp)
            if prog == "busybox":  # "#!/bin/busybox sh"
                prog = basename(argv[1])
            return interp, prog
        return None


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def read_head_in_root(root: os.PathLike[str] | str, path: str, limit: int = SHEBANG_BYTES) -> bytes | None:
    """The first ``limit`` bytes of the regular file ``path`` inside ``root``, resolved by the
    kernel inside it (``RESOLVE_IN_ROOT``, no magic links: a symlink cannot lead out); ``None``
    when missing, not a regular file or unreadable. Never blocks on a FIFO (``O_NONBLOCK``)."""
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        rel = path.lstrip("/") or "."
        fd = openat2(root_fd, rel, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def _readlink(p: os.PathLike[str]) -> str:
    try:
        return os.readlink(p)
    except OSError:
        return ""


def _read_cmdline(p: os.PathLike[str]) -> tuple[str, ...]:
    try:
        with open(p, "rb") as f:
            raw = f.read(CMDLINE_BYTES)
    except OSError:
        return ()
    return tuple(a.decode("utf-8", "replace") for a in raw.rstrip(b"\0").split(b"\0")) if raw else ()
