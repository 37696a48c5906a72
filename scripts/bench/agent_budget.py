#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The agent's resource budget on the demo host: RSS and CPU, idle and under load.

    .venv/bin/python scripts/bench/agent_budget.py [--learn-seconds 30] [--seconds 45]

Runs the demo host (scripts/demo.py: web, replica, worker, client, Debian, listener) and, one
after the other in the same run, two agents against it: "full" (every feature on, the demo's
settings, packet capture included) and "baseline" (discovery, store and control socket only:
every subsystem disabled). Each is measured idle (the demo's ordinary traffic) and under load
(the containers exec and connect in tight loops). Prints RSS (steady state, max) and CPU (% of
one core), and the ratios full/baseline and full/target. Targets (issue 9): RSS ≤ 120 MiB,
idle CPU ≤ 2 % of a core.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker
import psutil

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
RSS_TARGET_MIB = 120.0
IDLE_CPU_TARGET = 2.0

sys.path.insert(0, str(REPO))
from scripts import demo  # noqa: E402  (the checkout's root is on the path only now)

BASELINE = """
ebpf: {enabled: false}
audit: {enabled: false}
procfs: {enabled: false}
capture: {enabled: false}
behavior: {enabled: false}
logs: {enabled: false}
detectors: {enabled: false}
vuln: {enabled: false}
network: {enabled: false}
response: {enabled: false}
outputs: {alerts_file: null, metrics: {enabled: false}}
"""

# Load: every container execs and connects in a tight loop (the event sources' worst case).
LOAD = "while true; do wget -q -O /dev/null http://web:8080/ 2>/dev/null; ls / >/dev/null; done"


def tree_usage(proc: psutil.Process) -> tuple[float, float]:
    """(CPU seconds, RSS bytes) of the agent and its children (fit processes, tcpdump). A live
    process counts its own CPU and that of the children it has reaped, so a child that exits
    between two readings moves its CPU into its parent's sum instead of taking it away."""
    procs = [proc, *proc.children(recursive=True)]
    cpu = rss = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            cpu += t.user + t.system + t.children_user + t.children_system
            rss += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return cpu, rss


def measure(proc: psutil.Process, seconds: float) -> dict[str, float]:
    """CPU % of one core over ``seconds``, RSS median and max (sampled every second)."""
    cpu0, _ = tree_usage(proc)
    t0 = time.monotonic()
    samples = []
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        samples.append(tree_usage(proc)[1])
    cpu1, _ = tree_usage(proc)
    return {
        "cpu_percent": round(100.0 * (cpu1 - cpu0) / (time.monotonic() - t0), 2),
        "rss_mib": round(statistics.median(samples) / 2**20, 1),
        "rss_max_mib": round(max(samples) / 2**20, 1),
    }


def _wait_fitted(socket: Path, timeout: float) -> float:
    """Seconds until no baseline learns any more (a fit's child has exited a moment later), or
    -1 after ``timeout`` (the idle figure then includes the fit)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            rows = demo.ctl_json(socket, "baseline", "list")["baselines"]
        except RuntimeError:
            return 0.0  # no behaviour component (the baseline agent): nothing fits
        if rows and all(r.get("state") != "learning" for r in rows):
            time.sleep(5.0)  # the fit child's exit
            return round(time.monotonic() - t0, 1)
        time.sleep(1.0)
    return -1.0


def run_agent(work: Path, settings: str, host: Any, learn: float, seconds: float) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    (work / "run").mkdir(parents=True)
    socket = work / "run" / "agent.sock"
    cfg = work / "agent.yaml"
    cfg.write_text(f"state: {{dir: {work / 'state'}}}\ncontrol: {{socket: {socket}}}\n{settings}")
    cfg.chmod(0o600)
    with (work / "agent.log").open("w") as log:
        agent = subprocess.Popen(
            [str(VENV_BIN / "riskguard-agent"), "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            demo.wait_for(lambda: socket.exists() and demo.ctl(socket, "status").returncode == 0, 120, "agent")
            proc = psutil.Process(agent.pid)
            time.sleep(learn)  # learning, model fit, first scans: not the steady state
            # An image whose containers started windows later still learns, and its fit (a child
            # process importing scikit-learn) would land in the idle window: wait for the fits.
            fitted = _wait_fitted(socket, 120.0)
            idle = measure(proc, seconds)
            idle["waited_for_fits_s"] = fitted
            for role in ("worker", "client", "web-2"):
                host.exec_detached(role, LOAD)
            loaded = measure(proc, seconds)
            status = demo.ctl_json(socket, "status")
            return {"idle": idle, "load": loaded, "events": status.get("events"), "containers": status["containers"]}
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learn-seconds", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=45.0)
    # The product's default window (the demo learns with 2 s windows to be quick).
    parser.add_argument("--window-seconds", type=float, default=10.0)
    args = parser.parse_args()
    work = Path("/tmp/riskguard-budget")
    vulndb = work / "vulndb.sqlite"
    status = demo.host_debian_files()["var/lib/dpkg/status"].decode()
    demo.write_osv_fixture(work / "osv", status)
    subprocess.run(
        [str(VENV_BIN / "riskguard-agent"), "vulndb", "import", str(work / "osv"), "--db", str(vulndb)],
        check=True,
        capture_output=True,
    )
    results: dict[str, Any] = {}
    for name in ("full", "baseline"):
        host = demo.DemoHost(docker.from_env())
        host.start(prefix="rgbudget")
        try:
            settings = BASELINE
            if name == "full":
                settings = demo.demo_settings(work / name / "state", vulndb, args.learn_seconds, args.window_seconds)
            results[name] = run_agent(work / name, settings, host, args.learn_seconds + 10, args.seconds)
        finally:
            host.remove()
    full, base = results["full"], results["baseline"]
    print(json.dumps(results, indent=2))
    print()
    print(f"{'':28}{'full':>10}{'baseline':>10}{'full/base':>11}{'full/target':>13}")
    for cond in ("idle", "load"):
        f, b = full[cond], base[cond]
        print(
            f"RSS MiB ({cond}, median)      {f['rss_mib']:>10}{b['rss_mib']:>10}"
            f"{f['rss_mib'] / max(b['rss_mib'], 0.1):>11.2f}{f['rss_mib'] / RSS_TARGET_MIB:>13.2f}"
        )
        target = IDLE_CPU_TARGET if cond == "idle" else float("nan")
        print(
            f"CPU % of a core ({cond})      {f['cpu_percent']:>10}{b['cpu_percent']:>10}"
            f"{f['cpu_percent'] / max(b['cpu_percent'], 0.01):>11.2f}{f['cpu_percent'] / target:>13.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
