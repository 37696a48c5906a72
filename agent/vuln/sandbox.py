# SPDX-License-Identifier: Apache-2.0
"""Run one parse of untrusted input in a child process with an address-space, CPU and time limit.

``run_isolated(fn, *args, limits=...)`` starts ``fn(*args)`` in a child forked from the
multiprocessing fork server (a small single-threaded process, so the daemon's threads and locks
are never forked), sets ``RLIMIT_AS`` and ``RLIMIT_CPU`` in the child, and waits at most
``limits.timeout`` seconds for a JSON result of at most ``limits.result_bytes``. The result is
JSON, never pickle: a child that parsed hostile bytes is not trusted to hand us objects.

Any way the child can fail (exception, memory, CPU, wall clock, a result too large, a crash)
becomes a ``SandboxError`` with a ``kind`` (``error``, ``memory``, ``cpu``, ``timeout``,
``result``, ``crashed``) and a one-line reason; the child is killed and reaped. Called inside a
child already, ``fn`` runs in-process (the outer child's limits hold).
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_IN_CHILD = False
_PRELOAD = ["agent.vuln.inventory", "agent.vuln.rpmdb", "agent.vuln.scanner"]


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Bounds of one isolated parse."""

    timeout: float = 120.0  # wall-clock seconds until the child is killed
    memory_bytes: int = 1 << 30  # RLIMIT_AS of the child
    cpu_seconds: int = 90  # RLIMIT_CPU of the child (SIGXCPU, then SIGKILL one second later)
    result_bytes: int = 128 << 20  # the JSON result


class SandboxError(Exception):
    """The isolated parse failed; ``kind`` says how, the message says why."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def in_child() -> bool:
    """True inside a sandbox child."""
    return _IN_CHILD


def _child(
    conn: multiprocessing.connection.Connection, fn: Callable[..., Any], args: tuple[Any, ...], mem: int, cpu: int
) -> None:
    global _IN_CHILD
    _IN_CHILD = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:  # under the service's MemoryMax the kernel's OOM killer must pick this child, never the agent
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass
    try:
        out = {"ok": fn(*args)}
    except MemoryError:
        out = {"kind": "memory", "error": f"more than {mem >> 20} MiB of memory"}
    except RecursionError:
        out = {"kind": "error", "error": "nested too deeply"}
    except Exception as exc:  # the child reports every failure as data
        out = {"kind": "error", "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    try:
        data = json.dumps(out, ensure_ascii=True).encode()
    except (TypeError, ValueError, MemoryError) as exc:
        data = json.dumps({"kind": "error", "error": f"result not JSON: {exc}"[:300]}).encode()
    try:
        conn.send_bytes(data)
    except (OSError, MemoryError):
        pass
    conn.close()


def _context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def run_isolated(fn: Callable[..., Any], *args: Any, limits: SandboxLimits | None = None) -> Any:
    """``fn(*args)`` in a limited child; its JSON-able return value, or ``SandboxError``."""
    lim = limits or SandboxLimits()
    if _IN_CHILD:
        return fn(*args)
    ctx = _context()
    reader, writer = ctx.Pipe(duplex=False)
    proc = ctx.Process(  # type: ignore[attr-defined]
        target=_child, args=(writer, fn, args, lim.memory_bytes, lim.cpu_seconds), daemon=True, name="rg-vuln-parse"
    )
    try:
        proc.start()
    except (OSError, ValueError) as exc:  # no fork server (no temp dir, no fork): the scan fails, clearly
        reader.close()
        writer.close()
        raise SandboxError("error", f"cannot start the parser process: {exc}") from None
    writer.close()
    data: bytes | None = None
    problem: SandboxError | None = None
    try:
        if reader.poll(lim.timeout):
            try:
                data = reader.recv_bytes(lim.result_bytes)
            except EOFError:
                data = None  # died before answering: the exit code says why
            except OSError:
                problem = SandboxError("result", f"result larger than {lim.result_bytes} bytes")
        else:
            problem = SandboxError("timeout", f"no result after {lim.timeout:g} s")
    finally:
        reader.close()
        if problem is not None or data is None:
            proc.kill()
        proc.join(5.0)
        if proc.is_alive():
            proc.kill()
            proc.join(5.0)
    exitcode = proc.exitcode
    if not proc.is_alive():
        proc.close()
    if problem is not None:
        raise problem
    if data is None:
        raise _exit_reason(exitcode)
    out = json.loads(data)
    if "ok" in out:
        return out["ok"]
    raise SandboxError(str(out.get("kind", "error")), str(out.get("error", "failed")))


def _exit_reason(code: int | None) -> SandboxError:
    if code in (-signal.SIGXCPU, -signal.SIGKILL):
        return SandboxError("cpu", "CPU time limit reached")
    if code == -signal.SIGSEGV:
        return SandboxError("crashed", "the parser crashed (SIGSEGV)")
    return SandboxError("crashed", f"the parser exited without a result (exit code {code})")
