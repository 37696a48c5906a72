# SPDX-License-Identifier: Apache-2.0
"""Benchmark of the eBPF source: workload slowdown, events/s to user space, syscalls counted/s.

Run as root: ``.venv/bin/python scripts/bench/ebpf_overhead.py [--rounds 5]``. Exits 0 (it says
"skipped" when root, Docker, gcc or the test image is missing).

1. Slowdown. One busybox container runs two workloads: ``build`` (tar + gzip of a generated
   source tree of 1,000 files) and ``openclose`` (a static C loop of open/close). Configurations,
   interleaved round by round (the order rotates each round), ``--rounds`` runs each; the
   workload's CPU time (user + system, where BPF programs are charged) is the main figure,
   wall time is printed too:
   ``off`` (nothing loaded), ``ebpf`` (all probes, the container monitored), ``ebpf-unmonitored``
   (all probes, the container not in the filter: the cost every other task pays),
   ``raw-enter-empty`` / ``raw-pair-empty`` (empty programs on raw_syscalls:sys_enter, and on
   sys_enter + sys_exit: the floor of any per-syscall hook on this kernel),
   ``auditd`` (one audit rule on openat/open/execve/connect/accept, key rg-bench-ebpf, removed
   afterwards) and ``bpftrace`` (a one-liner counting the container's syscalls per syscall id
   on raw_syscalls:sys_enter, if bpftrace is installed). Medians and ratios against ``off``.
2. Delivery. The container opens /etc/shadow at a paced rate (the files probe reports each);
   for several rates: events delivered per second through decode and the bus, events lost, the
   reader thread's CPU (poll + decode + publish) and the whole process's CPU (with the bus
   dispatcher and a counting subscriber) in % of one core.
3. Kernel counting. A getpid loop of 3M calls in the container with the syscalls probe on:
   syscalls counted in the kernel per second, and the loop's slowdown per syscall in ns.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agent.config import AgentConfig  # noqa: E402
from agent.context import AgentContext  # noqa: E402
from agent.events import Event, FileOpen  # noqa: E402
from agent.findings import Finding  # noqa: E402
from agent.hostfs import HostPaths  # noqa: E402
from agent.pipeline import Bus  # noqa: E402
from agent.runtime.docker import container_from_inspect  # noqa: E402
from agent.runtime.model import Container, ContainerRegistry  # noqa: E402
from agent.sources.ebpf import EbpfSource  # noqa: E402
from agent.store import Store  # noqa: E402

IMAGE = "riskguard-test/busybox"
AUDIT_KEY = "rg-bench-ebpf"
AUDIT_RULE = ["-F", "arch=b64", "-S", "openat,open,execve,connect,accept,accept4", "-F", f"key={AUDIT_KEY}"]

HELPER_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long tv_ns(struct timeval t) { return t.tv_sec * 1000000000LL + t.tv_usec * 1000LL; }

static long long now_ns(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    long long t0 = now_ns();
    if (!strcmp(argv[1], "openclose")) {            /* openclose N PATH */
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) { int fd = open(argv[3], O_RDONLY); if (fd >= 0) close(fd); }
    } else if (!strcmp(argv[1], "unlink")) {         /* unlink N PATH (a missing file: ENOENT) */
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) unlink(argv[3]);
    } else if (!strcmp(argv[1], "utimes")) {         /* utimes N PATH (times NULL: "now", as touch) */
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) utimensat(AT_FDCWD, argv[3], NULL, 0);
    } else if (!strcmp(argv[1], "getpid")) {        /* getpid N */
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) syscall(SYS_getpid);
    } else if (!strcmp(argv[1], "paced")) {          /* paced RATE SECONDS PATH */
        long rate = atol(argv[2]); double secs = atof(argv[3]);
        long total = (long)(rate * secs), done = 0;
        while (done < total) {
            long long target = t0 + (long long)(done * 1e9 / rate);
            while (now_ns() < target) { struct timespec s = {0, 200000}; nanosleep(&s, 0); }
            for (int k = 0; k < 100 && done < total; k++, done++) {
                int fd = open(argv[4], O_RDONLY); if (fd >= 0) close(fd);
            }
        }
    } else if (!strcmp(argv[1], "time")) {           /* time CMD ARGS... */
        pid_t p = fork();
        if (p == 0) { execv(argv[2], argv + 2); _exit(127); }
        int st; struct rusage ru; wait4(p, &st, 0, &ru);
        /* wall ns, CPU ns (user + system: BPF programs run in the task's system time) */
        printf("%lld %lld\n", now_ns() - t0, tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime));
        return 0;
    } else return 2;
    struct rusage ru; getrusage(RUSAGE_SELF, &ru);
    printf("%lld %lld\n", now_ns() - t0, tv_ns(ru.ru_utime) + tv_ns(ru.ru_stime));
    return 0;
}
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def skip(reason: str) -> int:
    print(f"ebpf_overhead: skipped: {reason}")
    return 0


def make_tree(root: Path, files: int = 1000) -> None:
    rnd = random.Random(7)
    words = [
        "static",
        "int",
        "return",
        "struct",
        "void",
        "char",
        "if",
        "else",
        "for",
        "while",
        "const",
        "unsigned",
        "long",
        "sizeof",
        "include",
        "define",
        "buffer",
        "count",
        "error",
        "value",
    ]
    for i in range(files):
        d = root / f"mod{i % 40:02d}"
        d.mkdir(parents=True, exist_ok=True)
        lines = [" ".join(rnd.choice(words) for _ in range(10)) + f" /* {rnd.random()} */" for _ in range(90)]
        (d / f"file{i}.c").write_text("\n".join(lines))


class Bench:
    def __init__(self, container: Any, record: Container) -> None:
        self.c = container
        self.record = record

    def timed(self, *cmd: str) -> tuple[float, float]:
        """(wall, CPU) seconds reported by the helper, timed inside the container."""
        p = subprocess.run(["docker", "exec", self.c.id, "/rg/helper", *cmd], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{cmd}: {p.stderr}")
        wall, cpu = p.stdout.strip().splitlines()[-1].split()
        return int(wall) / 1e9, int(cpu) / 1e9

    def run(self, *cmd: str) -> float:
        return self.timed(*cmd)[0]

    def build(self) -> tuple[float, float]:
        return self.timed("time", "/bin/tar", "-czf", "/tmp/out.tgz", "-C", "/src", ".")

    def openclose(self) -> tuple[float, float]:
        return self.timed("openclose", "200000", "/etc/passwd")


def new_ctx(config: AgentConfig) -> AgentContext:
    state = Path(tempfile.mkdtemp(prefix="rg-bench-ebpf-"))
    return AgentContext(
        config=config,
        paths=HostPaths().with_state(state, run=state / "run"),
        store=Store(state / "agent.db"),
        registry=ContainerRegistry(),
        events=Bus[Event]("events", maxsize=1_000_000),
        findings=Bus[Finding]("findings"),
    )


@contextlib.contextmanager
def agent_on(
    record: Container, monitored: bool, config: AgentConfig | None = None, open_hint: bool = True
) -> Iterator[EbpfSource]:
    ctx = new_ctx(config or AgentConfig.model_validate({"behavior": {"window_seconds": 3600}}))
    ctx.events.start()
    if monitored:
        ctx.registry.upsert(record)
    src = EbpfSource(ctx.config.ebpf, ctx.config.behavior.window_seconds, False)
    src.start(ctx)
    if len(src.active) != len(ctx.config.ebpf.probes):
        raise RuntimeError(f"probes not loaded: {src.status()}")
    if not open_hint:  # every open takes the string copy and the trie walk (probes/files.bpf.c)
        import ctypes

        src.bpf[b"rg_open_hint"][ctypes.c_int(1 << 12)] = ctypes.c_ubyte(0)
    try:
        yield src
    finally:
        src.stop()
        ctx.events.stop(1)
        ctx.store.close()


# The floor of any per-syscall hook: empty programs on the raw syscall tracepoints (what the
# probes attach to). No design that counts every syscall in the kernel can cost less.
FLOOR_PROGRAMS = {
    "raw-enter-empty": "RAW_TRACEPOINT_PROBE(sys_enter) { return 0; }",
    "raw-pair-empty": "RAW_TRACEPOINT_PROBE(sys_enter) { return 0; }\nRAW_TRACEPOINT_PROBE(sys_exit) { return 0; }",
}


@contextlib.contextmanager
def floor_on(name: str) -> Iterator[None]:
    from bcc import BPF

    b = BPF(text=FLOOR_PROGRAMS[name].encode())
    try:
        yield
    finally:
        b.cleanup()


@contextlib.contextmanager
def auditd_on() -> Iterator[None]:
    subprocess.run(["auditctl", "-a", "always,exit", *AUDIT_RULE], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run(["auditctl", "-d", "always,exit", *AUDIT_RULE], capture_output=True)


@contextlib.contextmanager
def bpftrace_on(record: Container) -> Iterator[None]:
    cg = f"/sys/fs/cgroup/unified{record.cgroup_v2}"
    prog = 'tracepoint:raw_syscalls:sys_enter /cgroup == cgroupid("' + cg + '")/ { @[args->id] = count(); }'
    p = subprocess.Popen(["bpftrace", "-e", prog], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.stdout is not None
    seen = []
    for _ in range(10):  # warnings (e.g. RLIMIT_MEMLOCK) may come before "Attaching 1 probe..."
        line = p.stdout.readline()
        seen.append(line)
        if "Attaching" in line or not line:
            break
    if "Attaching" not in seen[-1]:
        p.kill()
        raise RuntimeError(f"bpftrace did not start: {''.join(seen)}")
    time.sleep(0.2)
    try:
        yield
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


# The probes without the per-syscall transition count (syscalls): what counting costs.
NOCOUNT = AgentConfig.model_validate(
    {"behavior": {"window_seconds": 3600}, "ebpf": {"probes": ["exec", "net", "files", "priv"]}}
)


# Configurations measured on one load of the probes (--hot-path), toggled in the maps.
SHARED = ("ebpf", "ebpf-nohint", "ebpf-unmonitored")


def order_shared(order: list[str]) -> str:
    return next(c for c in order if c in SHARED)


def hint(src: EbpfSource, on: bool) -> None:
    """Turn the read-only open filter (probes/files.bpf.c rg_open_hint) on or off."""
    import ctypes

    src.bpf[b"rg_open_hint"][ctypes.c_int(1 << 12)] = ctypes.c_ubyte(1 if on else 0)


def slowdown(
    bench: Bench,
    rounds: int,
    configs: list[str],
    workloads: tuple[str, ...] = ("build", "openclose"),
    shared: bool = False,
) -> dict[str, dict[str, list[tuple[float, float]]]]:
    results: dict[str, dict[str, list[tuple[float, float]]]] = {c: {w: [] for w in workloads} for c in configs}
    if "build" in workloads:
        bench.build()  # warm the page cache
    bench.openclose()
    for r in range(rounds):
        order = configs[r % len(configs) :] + configs[: r % len(configs)]
        for cfg in order:
            if shared and cfg in SHARED and cfg != order_shared(order):
                continue  # measured with the first of the group, on one load of the probes
            if shared and cfg in SHARED:
                # ebpf, ebpf-nohint, ebpf-unmonitored on one load: the open filter and the
                # container's filter entry are toggled in the maps, in the group's rotating order.
                group = [c for c in order if c in SHARED]
                with agent_on(bench.record, True) as src:
                    for sub in group:
                        hint(src, sub != "ebpf-nohint")
                        src.monitor_cgroup(bench.record.cgroup_id, sub != "ebpf-unmonitored")
                        if "build" in workloads:
                            results[sub]["build"].append(bench.build())
                        results[sub]["openclose"].append(bench.openclose())
                continue
            if cfg == "off":
                ctxm: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
            elif cfg == "ebpf":
                ctxm = agent_on(bench.record, True)
            elif cfg == "ebpf-unmonitored":
                ctxm = agent_on(bench.record, False)
            elif cfg == "ebpf-nohint":
                ctxm = agent_on(bench.record, True, open_hint=False)
            elif cfg == "ebpf-nocount":
                ctxm = agent_on(bench.record, True, NOCOUNT)
            elif cfg == "auditd":
                ctxm = auditd_on()
            elif cfg in FLOOR_PROGRAMS:
                ctxm = floor_on(cfg)
            else:
                ctxm = bpftrace_on(bench.record)
            with ctxm:
                if "build" in workloads:
                    results[cfg]["build"].append(bench.build())
                results[cfg]["openclose"].append(bench.openclose())
        log(f"round {r + 1}/{rounds} done")
    return results


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def delivery(bench: Bench, rates: list[int], seconds: float) -> list[dict[str, float]]:
    cfg = AgentConfig.model_validate(
        {
            "behavior": {"window_seconds": 3600},
            "ebpf": {"max_events_per_second_per_container": 10_000_000, "ring_buffer_pages": 1024},
        }
    )
    out = []
    with agent_on(bench.record, True, cfg) as src:
        assert src.ctx is not None
        seen = [0]
        lock = threading.Lock()

        def count(ev: Event) -> None:
            if isinstance(ev, FileOpen):
                with lock:
                    seen[0] += 1

        src.ctx.events.subscribe(count, kind=FileOpen)
        for rate in rates:
            before_seen, before_lost = seen[0], sum(src.lost_counts().values())
            r0 = src.reader_cpu_seconds
            c0, t0 = cpu_seconds(), time.monotonic()
            bench.run("paced", str(rate), str(seconds), "/etc/shadow")
            src.ctx.events.drain(10)
            time.sleep(0.3)
            src.ctx.events.drain(10)
            c1, t1 = cpu_seconds(), time.monotonic()
            r1 = src.reader_cpu_seconds
            got = seen[0] - before_seen
            lost = sum(src.lost_counts().values()) - before_lost
            row = {
                "rate": rate,
                "delivered": got,
                "expected": int(rate * seconds),
                "lost": lost,
                "events_per_s": got / seconds,
                "cpu_pct": 100 * (c1 - c0) / (t1 - t0),
                "reader_cpu_pct": 100 * (r1 - r0) / (t1 - t0),
            }
            out.append(row)
            log(f"delivery {row}")
    return out


def kernel_counting(bench: Bench, n: int) -> dict[str, float]:
    base = statistics.median(bench.timed("getpid", str(n))[1] for _ in range(3))
    with agent_on(bench.record, True) as src:
        src.flush_window()
        on = []
        counted = 0
        for _ in range(3):
            on.append(bench.timed("getpid", str(n))[1])
            for w in src.flush_window():
                if w.cgroup_id == bench.record.cgroup_id:
                    counted = max(counted, w.counts.get(39, 0))  # getpid = 39 on x86_64
    t_on = statistics.median(on)
    return {
        "n": n,
        "seconds_off": base,
        "seconds_on": t_on,
        "getpid_counted": counted,
        "counted_per_s": counted / t_on,
        "ns_per_syscall_added": (t_on - base) / n * 1e9,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-slowdown", action="store_true")
    ap.add_argument(
        "--hot-path",
        action="store_true",
        help="only the open/close loop against the empty-hook floor: off, the floors, ebpf, ebpf-nohint "
        "(no read-only open filter), ebpf-nocount (no syscalls probe), ebpf-unmonitored; no delivery or counting",
    )
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # figures survive a crash
    if os.geteuid() != 0:
        return skip("needs root")
    gcc = shutil.which("gcc")
    if not gcc:
        return skip("needs gcc (libc6-dev) to build the workload helper")
    try:
        import docker

        client = docker.from_env()
        client.images.get(IMAGE)
    except Exception as exc:
        return skip(f"needs dockerd and the image {IMAGE}: {exc}")
    work = Path(tempfile.mkdtemp(prefix="rg-bench-ebpf-"))
    (work / "helper.c").write_text(HELPER_C)
    subprocess.run([gcc, "-static", "-O2", "-o", str(work / "helper"), str(work / "helper.c")], check=True)
    make_tree(work / "src")
    c = client.containers.run(
        IMAGE,
        ["sleep", "7200"],  # compiling the probes takes 20-30 s a load on a busy host
        detach=True,
        network_mode="none",
        labels={"riskguard.test": "1"},
        volumes={str(work): {"bind": "/rg", "mode": "ro"}, str(work / "src"): {"bind": "/src", "mode": "ro"}},
    )
    try:
        c.reload()
        rec = container_from_inspect(HostPaths(), c.attrs)
        assert rec is not None and rec.cgroup_id
        bench = Bench(c, rec)
        print(f"load average at the start: {Path('/proc/loadavg').read_text().split()[:3]}")
        workloads: tuple[str, ...] = ("build", "openclose")
        if args.hot_path:
            configs = ["off", *FLOOR_PROGRAMS, "ebpf", "ebpf-nohint", "ebpf-nocount", "ebpf-unmonitored"]
            workloads = ("openclose",)
        else:
            configs = ["off", "ebpf", "ebpf-unmonitored", *FLOOR_PROGRAMS, "auditd"]
            if shutil.which("bpftrace"):
                configs.append("bpftrace")
        print("== workload slowdown (median seconds, ratio vs off; runs interleaved) ==")
        if not args.skip_slowdown:
            res = slowdown(bench, args.rounds, configs, workloads, shared=args.hot_path)
            # CPU time (user + system) of the workload is the figure: BPF programs run in the
            # task's system time, and on a shared machine wall time mostly measures neighbours.
            for wl in workloads:
                for idx, what in ((1, "cpu"), (0, "wall")):
                    off = statistics.median(r[idx] for r in res["off"][wl])
                    for cfg in configs:
                        vals = [r[idx] for r in res[cfg][wl]]
                        med = statistics.median(vals)
                        runs = " ".join(f"{x:.3f}" for x in vals)
                        print(f"{wl:9} {what:4} {cfg:16} median {med:.3f}s ratio {med / off:.3f} runs: {runs}")
            # The issue's target for the hot path: monitored open/close within 10 points of the
            # floor (an empty raw sys_enter + sys_exit pair), from the same run's medians.
            off = statistics.median(r[1] for r in res["off"]["openclose"])
            floor = statistics.median(r[1] for r in res["raw-pair-empty"]["openclose"]) / off
            print("== open/close against the floor (CPU; points = 100 x (ratio - floor ratio)) ==")
            for cfg in configs:
                if cfg.startswith("ebpf"):
                    ratio = statistics.median(r[1] for r in res[cfg]["openclose"]) / off
                    pts = 100 * (ratio - floor)
                    verdict = "within" if pts <= 10 else "over"
                    print(f"openclose {cfg:16} ratio {ratio:.3f} floor {floor:.3f} +{pts:.1f} points ({verdict} +10)")
        print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")
        if args.hot_path:
            return 0
        print("== delivery to user space (files probe, paced opens of /etc/shadow, 3 s each) ==")
        for row in delivery(bench, [20_000, 50_000, 80_000], 3.0):
            print(
                f"rate {row['rate']:>6}/s  delivered {row['delivered']:>7}/{row['expected']:<7} "
                f"lost {row['lost']:<5} {row['events_per_s']:>9.0f} ev/s  reader thread {row['reader_cpu_pct']:.1f}% "
                f"/ whole agent process {row['cpu_pct']:.1f}% of one core"
            )
        print("== syscalls counted in the kernel (getpid loop) ==")
        k = kernel_counting(bench, 3_000_000)
        print(
            f"getpid x{k['n']}: off {k['seconds_off']:.3f}s on {k['seconds_on']:.3f}s, counted {k['getpid_counted']}, "
            f"{k['counted_per_s'] / 1e6:.2f}M syscalls/s counted, +{k['ns_per_syscall_added']:.0f} ns per syscall"
        )
    finally:
        c.remove(force=True)
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["auditctl", "-d", "always,exit", *AUDIT_RULE], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
