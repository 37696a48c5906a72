# SPDX-License-Identifier: Apache-2.0
"""Run one parse of untrusted input in a child process with an address-space, CPU and time limit.

``run_isolated(fn, *args, limits=...)`` starts a fresh, short-lived Python process (``fn`` named
by module and qualified name, ``args`` sent as JSON on its stdin), which sets ``RLIMIT_AS`` and
``RLIMIT_CPU`` on itself before it imports anything of ours, runs ``fn(*args)`` and writes a JSON
result of at most ``limits.result_bytes`` to a pipe of its own; the parent waits at most
``limits.timeout`` seconds. A new process (not a fork of the daemon) never inherits the daemon's
threads and locks, and nothing stays resident between scans: a multiprocessing fork server and
its resource tracker held 48 MiB for the daemon's lifetime. The result is JSON, never pickle: a
child that parsed hostile bytes is not trusted to hand us objects. Starting the child costs about
0.2 s of CPU per parse, once per container or image scanned.

Any way the child can fail (exception, memory, CPU, wall clock, a result too large, a crash)
becomes a ``SandboxError`` with a ``kind`` (``error``, ``memory``, ``cpu``, ``timeout``,
``result``, ``crashed``) and a one-line reason; the child is killed and reaped. Called inside a
child already, ``fn`` runs in-process (the outer child's limits hold).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_IN_CHILD = False
_BOOT = "from agent.vuln.sandbox import _child_main; _child_main()"


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


def _child_main() -> None:
    """The child's whole life: the request from stdin, limits, the call, the result to its pipe."""
    global _IN_CHILD
    _IN_CHILD = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    req = json.loads(sys.stdin.buffer.read())
    mem, cpu = int(req["mem"]), int(req["cpu"])
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:  # under the service's MemoryMax the kernel's OOM killer must pick this child, never the agent
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass
    try:
        module, _, qualname = str(req["fn"]).partition(":")
        fn: Any = importlib.import_module(module)
        for part in qualname.split("."):
            fn = getattr(fn, part)
        out = {"ok": fn(*req["args"])}
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
        view = memoryview(data)
        while view:
            view = view[os.write(int(req["fd"]), view) :]
    except (OSError, MemoryError):
        pass
    os._exit(0)


def _read_result(fd: int, limits: SandboxLimits) -> bytes:
    """The child's answer from ``fd`` (b"" when it closed without one) within the time limit."""
    deadline = time.monotonic() + limits.timeout
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise SandboxError("timeout", f"no result after {limits.timeout:g} s")
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limits.result_bytes:
            raise SandboxError("result", f"result larger than {limits.result_bytes} bytes")
        chunks.append(chunk)


def run_isolated(fn: Callable[..., Any], *args: Any, limits: SandboxLimits | None = None) -> Any:
    """``fn(*args)`` in a limited child; its JSON-able return value, or ``SandboxError``.

    ``fn`` must be a module-level function (the child imports it by name) and ``args`` JSON.
    """
    lim = limits or SandboxLimits()
    if _IN_CHILD:
        return fn(*args)
    reader, writer = os.pipe()
    call = {"fn": f"{fn.__module__}:{fn.__qualname__}", "args": list(args), "fd": writer}
    request = json.dumps(call | {"mem": lim.memory_bytes, "cpu": lim.cpu_seconds}).encode()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p or str(Path.cwd()) for p in sys.path))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-B", "-c", _BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(writer,),
            env=env,
            start_new_session=True,
        )
    except OSError as exc:  # no interpreter, no fork: the scan fails, clearly
        os.close(reader)
        os.close(writer)
        raise SandboxError("error", f"cannot start the parser process: {exc}") from None
    os.close(writer)
    data = b""
    problem: SandboxError | None = None
    try:
        assert proc.stdin is not None
        try:
            proc.stdin.write(request)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # died at once: the exit code says why
        data = _read_result(reader, lim)
    except SandboxError as exc:
        problem = exc
    finally:
        os.close(reader)
        if problem is not None or not data:
            proc.kill()
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
    if problem is not None:
        raise problem
    if not data:
        raise _exit_reason(proc.returncode)
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
