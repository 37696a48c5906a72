# SPDX-License-Identifier: Apache-2.0
"""Synthetic behaviour windows and traces for the behaviour unit tests.

``normal_window`` imitates a small web server answering a steady request loop (accept, read,
write, close, a shell exec'ing a client now and then) with seeded noise; the attack helpers add
exactly one kind of new behaviour, so tests can assert which features explain it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from agent.events import BehaviorWindow, ContainerRef
from agent.settings.behavior import BehaviorSettings
from agent.syscall_table import syscall_number as nr

IMAGE = "example/web:1"


# The settings tests/fixtures/behavior was written with (scripts/fixtures/capture_behavior_models.py)
# and is read back with (test_model_archive.py). Few trees keep the files small; the format is the
# same as with the default 100.
ARCHIVE_SETTINGS = BehaviorSettings(
    window_seconds=2.0,
    learning_seconds=60.0,
    min_windows=30,
    refit_seconds=0,
    fit_in_subprocess=False,
    iforest_trees=20,
    iforest_max_samples=64,
)


def container(i: int = 0, image: str = IMAGE, labels: dict[str, str] | None = None) -> ContainerRef:
    return ContainerRef(id=f"{i:02d}" * 32, name=f"web-{i}", image=image, labels=labels or {})


def normal_window(rng: random.Random, start: float, c: ContainerRef, seconds: float = 2.0) -> BehaviorWindow:
    req = rng.randint(18, 22)
    calls = {
        nr("accept4"): req,
        nr("read"): req * 2 + rng.randint(0, 3),
        nr("write"): req + rng.randint(0, 2),
        nr("close"): req * 2,
        nr("epoll_wait"): req + rng.randint(0, 4),
        nr("openat"): req,
        nr("newfstatat"): req,
        nr("clone"): 2,
        nr("execve"): 2,
        nr("wait4"): 2,
        nr("mmap"): 10 + rng.randint(0, 3),
        nr("nanosleep"): 4,
    }
    trans = {
        (nr("epoll_wait"), nr("accept4")): req,
        (nr("accept4"), nr("read")): req,
        (nr("read"), nr("openat")): req,
        (nr("openat"), nr("newfstatat")): req,
        (nr("newfstatat"), nr("read")): req,
        (nr("read"), nr("write")): req,
        (nr("write"), nr("close")): req,
        (nr("close"), nr("close")): req,
        (nr("close"), nr("epoll_wait")): req,
        (nr("clone"), nr("execve")): 2,
        (nr("execve"), nr("mmap")): 2,
        (nr("mmap"), nr("mmap")): 8,
        (nr("wait4"), nr("nanosleep")): 2,
        (nr("nanosleep"), nr("clone")): 2,
    }
    return BehaviorWindow(
        ts=start + seconds,
        container=c,
        start=start,
        end=start + seconds,
        syscalls=calls,
        transitions=trans,
        execs=2,
        binaries=frozenset({"/bin/wget", "/bin/sleep"}),
        connects=req,
        accepts=req,
        peers=frozenset({"127.0.0.1"}),
        dst_ports=frozenset({8080}),
        bytes_in=req * 120 + rng.randint(0, 50),
        bytes_out=req * 900 + rng.randint(0, 200),
        cpu_seconds=0.02 * seconds + rng.random() * 0.01,
        rss_bytes=(3 << 20) + rng.randint(0, 1 << 16),
        fds=8 + rng.randint(0, 1),
        processes=2,
        threads=2,
        sources=frozenset({"ebpf", "procfs"}),
    )


def with_shadow_read(w: BehaviorWindow) -> BehaviorWindow:
    """The same window plus a shell that reads /etc/shadow."""
    return _add(w, execs=w.execs + 2, sensitive_opens=1, binaries=w.binaries | {"/bin/sh", "/bin/cat"},
                new_binaries=frozenset({"/bin/cat"}), processes=w.processes + 1)  # fmt: skip


def with_cpu_burner(w: BehaviorWindow) -> BehaviorWindow:
    return _add(w, cpu_seconds=(w.end - w.start) * 0.98, processes=w.processes + 1)


def with_reverse_shell(w: BehaviorWindow) -> BehaviorWindow:
    """accept → dup2 x3 → execve(/bin/sh): the kernel transitions of a bind/reverse shell."""
    calls = dict(w.syscalls)
    calls[nr("dup2")] = 3
    calls[nr("execve")] = calls.get(nr("execve"), 0) + 1
    trans = dict(w.transitions)
    trans[(nr("accept4"), nr("dup2"))] = 1
    trans[(nr("dup2"), nr("dup2"))] = 2
    trans[(nr("dup2"), nr("execve"))] = 1
    return replace(w, syscalls=calls, transitions=trans)


def with_setns(w: BehaviorWindow) -> BehaviorWindow:
    calls = dict(w.syscalls)
    calls[nr("setns")] = 1
    trans = dict(w.transitions)
    trans[(nr("openat"), nr("setns"))] = 1
    return replace(w, syscalls=calls, transitions=trans)


def _add(w: BehaviorWindow, **changes: Any) -> BehaviorWindow:
    return replace(w, **changes)


def normal_trace(rng: random.Random, length: int = 400) -> list[int]:
    """A syscall sequence of a request loop, as a recorded trace would hold it."""
    loop = [[nr(n) for n in ("epoll_wait", "accept4", "read", "openat", "newfstatat", "read", "write", "close")],
            [nr(n) for n in ("epoll_wait", "accept4", "read", "write", "close", "close")],
            [nr(n) for n in ("nanosleep", "clone", "wait4")]]  # fmt: skip
    seq: list[int] = []
    while len(seq) < length:
        seq += loop[rng.choices((0, 1, 2), weights=(6, 3, 1))[0]]
    return seq[:length]


def attack_trace(rng: random.Random) -> list[int]:
    seq = normal_trace(rng, 200)
    shell = [nr(n) for n in ("accept4", "dup2", "dup2", "dup2", "execve", "brk", "openat", "read", "ptrace")]
    return seq[:100] + shell * 3 + seq[100:]
