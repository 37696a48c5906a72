# SPDX-License-Identifier: Apache-2.0
"""Per-probe overhead: what each probe costs a monitored container (for probes/README.md).

Run as root: ``.venv/bin/python scripts/bench/ebpf_probes.py [--rounds 5]``. Exits 0 (prints
"skipped" when root, Docker, gcc or the test image is missing).

Each probe is loaded alone, once. Then, ``--rounds`` times, interleaved: the container is taken
out of the probe's filter map ("filtered": the probe still runs and leaves at its first
instruction) and put back ("monitored"), and micro-workloads run in the container:
200K getpid calls, 50K open+close of /etc/passwd, 500 fork+exec of /bin/true, 50K unlinks of a
missing file in /tmp and 50K utimensat(path, NULL) calls (both filtered out in the kernel: the
cost every ordinary rm and touch pays). Reported per
probe: median CPU time (user + system, where BPF programs are charged) per operation, and the
added ns per operation of "monitored" over "filtered". A separate line compares "nothing
loaded" with "all probes loaded, container filtered" (the cost every unmonitored task pays).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ebpf_overhead import HELPER_C, IMAGE, Bench, agent_on, new_ctx  # noqa: E402

from agent.config import AgentConfig  # noqa: E402
from agent.hostfs import HostPaths  # noqa: E402
from agent.runtime.docker import container_from_inspect  # noqa: E402
from agent.sources.ebpf import EbpfSource  # noqa: E402

OPS = {"getpid": 200_000, "openclose": 50_000, "forkexec": 500, "unlink": 50_000, "utimes": 50_000}
PROBES = ("syscalls", "exec", "net", "files", "priv")


def measure(bench: Bench) -> dict[str, float]:
    """CPU ns per operation of each micro-workload."""
    out = {}
    out["getpid"] = bench.timed("getpid", str(OPS["getpid"]))[1] / OPS["getpid"] * 1e9
    out["openclose"] = bench.timed("openclose", str(OPS["openclose"]), "/etc/passwd")[1] / OPS["openclose"] * 1e9
    cpu = bench.timed(
        "time", "/bin/sh", "-c", f"i=0; while [ $i -lt {OPS['forkexec']} ]; do /bin/true; i=$((i+1)); done"
    )[1]
    out["forkexec"] = cpu / OPS["forkexec"] * 1e9
    out["unlink"] = bench.timed("unlink", str(OPS["unlink"]), "/tmp/rg-missing")[1] / OPS["unlink"] * 1e9
    out["utimes"] = bench.timed("utimes", str(OPS["utimes"]), "/etc/hostname")[1] / OPS["utimes"] * 1e9
    return out


def row(name: str, base: dict[str, list[float]], with_: dict[str, list[float]]) -> str:
    """One table row: median ns per operation with the probe(s), and the added ns over ``base``."""
    cells = []
    for k in OPS:
        f, m = statistics.median(base[k]), statistics.median(with_[k])
        cells.append(f"{m:8.0f} (+{m - f:6.0f})")
    return f"{name:9} " + " ".join(f"{c:>22}" for c in cells)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--probes", default=",".join(PROBES), help="comma-separated probes to measure alone")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # figures survive a crash
    if os.geteuid() != 0:
        print("ebpf_probes: skipped: needs root")
        return 0
    gcc = shutil.which("gcc")
    if not gcc:
        print("ebpf_probes: skipped: needs gcc")
        return 0
    try:
        import docker

        client = docker.from_env()
        client.images.get(IMAGE)
    except Exception as exc:
        print(f"ebpf_probes: skipped: needs dockerd and {IMAGE}: {exc}")
        return 0
    work = Path(tempfile.mkdtemp(prefix="rg-bench-probes-"))
    (work / "helper.c").write_text(HELPER_C)
    subprocess.run([gcc, "-static", "-O2", "-o", str(work / "helper"), str(work / "helper.c")], check=True)
    c = client.containers.run(
        IMAGE,
        ["sleep", "600"],
        detach=True,
        network_mode="none",
        labels={"riskguard.test": "1"},
        volumes={str(work): {"bind": "/rg", "mode": "ro"}},
    )
    try:
        c.reload()
        rec = container_from_inspect(HostPaths(), c.attrs)
        assert rec is not None and rec.cgroup_id
        bench = Bench(c, rec)
        measure(bench)  # warm up
        print(f"== per-probe cost, CPU ns per operation (median of {args.rounds}, interleaved) ==")
        print(f"{'probe':9} " + " ".join(f"{k:>22}" for k in OPS))
        for probe in [p for p in args.probes.split(",") if p]:
            cfg = AgentConfig.model_validate({"ebpf": {"probes": [probe]}, "behavior": {"window_seconds": 3600}})
            ctx = new_ctx(cfg)
            src = EbpfSource(cfg.ebpf, 3600, False)
            src.start(ctx)
            try:
                filt: dict[str, list[float]] = {k: [] for k in OPS}
                mon: dict[str, list[float]] = {k: [] for k in OPS}
                for _ in range(args.rounds):
                    src.monitor_cgroup(rec.cgroup_id, False)
                    for k, v in measure(bench).items():
                        filt[k].append(v)
                    src.monitor_cgroup(rec.cgroup_id, True)
                    for k, v in measure(bench).items():
                        mon[k].append(v)
            finally:
                src.stop()
                ctx.store.close()
            print(row(probe, filt, mon))
        off: dict[str, list[float]] = {k: [] for k in OPS}
        unmon: dict[str, list[float]] = {k: [] for k in OPS}
        for _ in range(args.rounds):
            for k, v in measure(bench).items():
                off[k].append(v)
            with agent_on(rec, monitored=False):
                for k, v in measure(bench).items():
                    unmon[k].append(v)
        print(row("filtered", off, unmon) + "   (all probes loaded, none monitored)")
        print("(+N): added CPU ns per operation, monitored vs filtered (last line: filtered vs nothing loaded)")
    finally:
        c.remove(force=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
