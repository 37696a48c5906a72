# SPDX-License-Identifier: Apache-2.0
"""The eBPF source: loads the probes in ``probes/`` with bcc and turns their output into events.

Stages, in order (``EbpfSource.start``), and the module of each:

1. ``loader.detect_support``: root, tracefs, bcc importable, ring buffer and task storage map
   types (probed with libbpf), and ``btf.exe_offsets``: the struct offsets the exec probe
   reads (executables, new argv) from the running kernel's BTF. Anything missing is reported
   in ``status()``; the agent keeps running without this source.
2. ``program.program_text`` + ``loader.compile_program``: the selected probes are assembled
   into one program (one shared container filter map, one compilation); when that fails each
   probe is compiled alone to find the culprit, and the others are loaded without it.
3. ``component.EbpfSource``: run-time settings go into maps: monitored cgroup ids (from the
   registry; ``on_container`` keeps them current), ``include_host``, the per-container rate
   limit, the syscall routing table, the sensitive and change-watch path prefixes.
4. ``reader.Reader``: one thread drains every ring (or perf) buffer in batches, decodes records
   (``agent.decoders.ebpf``), completes them from /proc (``complete``: stdio, ppid, parent
   comm, accepted peers, file-change paths) and publishes; ``counts.SyscallCounts``: each
   monitored cgroup's count slot, and a window thread that flips the syscall-count generation
   every ``behavior.window_seconds`` and publishes one ``SyscallWindow`` per cgroup.
5. ``known.KnownSet``: learns each image's execs and connects while its baseline learns,
   installs them in the kernel afterwards (they are counted there, not sent) and publishes
   the counts as ``KnownActivity`` every 2 s.

``build`` (the app loads ``agent.sources.ebpf:build``) is defined in ``component``.
"""

from __future__ import annotations

from agent.sources.ebpf.complete import (
    change_watched,
    complete_accept,
    complete_change,
    complete_exec,
    resolve_path,
    socket_tuple,
)
from agent.sources.ebpf.component import EbpfSource, build
from agent.sources.ebpf.loader import CompileError, Support, detect_support, release_compiler_memory
from agent.sources.ebpf.program import (
    CONF_ALL,
    CONF_GEN,
    CONF_RATE,
    OUTPUTS,
    PROBES_DIR,
    SYSCALL_KINDS,
    available_probes,
    cflags,
    probe_hooks,
    program_text,
)

__all__ = [
    "CONF_ALL",
    "CONF_GEN",
    "CONF_RATE",
    "OUTPUTS",
    "PROBES_DIR",
    "SYSCALL_KINDS",
    "CompileError",
    "EbpfSource",
    "Support",
    "available_probes",
    "build",
    "cflags",
    "change_watched",
    "complete_accept",
    "complete_change",
    "complete_exec",
    "detect_support",
    "probe_hooks",
    "program_text",
    "release_compiler_memory",
    "resolve_path",
    "socket_tuple",
]
