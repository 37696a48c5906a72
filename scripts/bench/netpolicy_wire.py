#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Time to wire a managed container: pyroute2 backend vs the CNI chain, interleaved.

Starts ``--containers`` real ``--network none`` containers from riskguard-test/busybox, then
for each container and each backend (alternating which goes first) wires it (IPAM + veth + move +
address + route, or CNI bridge/host-local + firewall + bandwidth ADD) and unwires it again.
Reports p50/p99 per backend, the ratio pyroute2/CNI from the same run, and the 100 ms target.
A full ``handle_added`` (audit + wiring + nft rules + CIL write + secilc check) is timed too.

Usage: ``.venv/bin/python scripts/bench/netpolicy_wire.py [--containers 20]`` (root, dockerd).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import docker

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.network import wiring
from agent.network.component import NetpolicyComponent
from agent.runtime.docker import container_from_inspect
from agent.settings.network import NetworkSettings


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=20)
    args = ap.parse_args()
    tag = uuid.uuid4().hex[:5]
    client = docker.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="rg-bench-wire-"))
    # This run's own managed label: another agent on the host (default label riskguard.network)
    # would otherwise wire these containers too, on its rg0 bridge, and leave that behind.
    label = f"rgbench.network.{tag}"
    settings = {
        "pyroute2": NetworkSettings(
            bridge=f"rgb{tag}", subnet="10.213.240.0/24", counters_interval_seconds=600, managed_label=label
        ),
        "cni": NetworkSettings.model_validate(
            {
                "backend": "cni",
                "subnet": "10.214.240.0/24",
                "counters_interval_seconds": 600,
                "managed_label": label,
                "cni": {"bridge": f"rgbc{tag}", "network_name": f"rgbench{tag}"},
            }
        ),
    }
    comps: dict[str, NetpolicyComponent] = {}
    for name, s in settings.items():
        state = tmp / name
        ctx = AgentContext.in_state(state, AgentConfig(network=s))
        comp = NetpolicyComponent(s, 0)
        comp.start(ctx)
        comps[name] = comp
    containers = []
    times: dict[str, list[float]] = {"pyroute2": [], "cni": []}
    full: list[float] = []
    try:
        for _ in range(args.containers):
            c = client.containers.run(
                "riskguard-test/busybox",
                ["sleep", "300"],
                detach=True,
                network_mode="none",
                labels={"riskguard.test": "1", label: "managed"},
            )
            containers.append(c)
        for i, c in enumerate(containers):
            c.reload()
            rec = container_from_inspect(HostPaths(), c.attrs)
            assert rec is not None
            order = ["pyroute2", "cni"] if i % 2 == 0 else ["cni", "pyroute2"]
            for name in order:
                comp = comps[name]
                t0 = time.perf_counter()
                managed = comp._wire(rec, {})
                times[name].append((time.perf_counter() - t0) * 1000)
                assert managed["address"]
                comp.tracked.pop(rec.id, None)
                if name == "cni":
                    comp._cni_runner().delete(rec.id, f"/proc/{rec.init_pid}/ns/net", managed["result"])
                    comp._ipam.release(rec.id)  # type: ignore[union-attr]
                else:
                    wiring.unwire(rec.id)
                    comp._ipam.release(rec.id)  # type: ignore[union-attr]
            t0 = time.perf_counter()
            comps["pyroute2"].handle_added(rec)
            full.append((time.perf_counter() - t0) * 1000)
            comps["pyroute2"].handle_removed(rec)
    finally:
        for c in containers:
            c.remove(force=True)
        for comp in comps.values():
            comp.stop()
        wiring.delete_bridge(f"rgb{tag}")
        subprocess.run(["ip", "link", "del", f"rgbc{tag}"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    p = times["pyroute2"]
    c = times["cni"]
    print(f"containers: {args.containers} (real --network none containers, wired then unwired)")
    print(f"pyroute2 wire ms: p50 {pct(p, 0.5):.1f}  p99 {pct(p, 0.99):.1f}  mean {statistics.mean(p):.1f}")
    print(f"cni chain  ms:    p50 {pct(c, 0.5):.1f}  p99 {pct(c, 0.99):.1f}  mean {statistics.mean(c):.1f}")
    print(f"ratio pyroute2/cni (p50): {pct(p, 0.5) / pct(c, 0.5):.2f}")
    print(f"full handle_added (audit+wire+nft+CIL+secilc) ms: p50 {pct(full, 0.5):.1f}  p99 {pct(full, 0.99):.1f}")
    print(f"target <= 100 ms: pyroute2 p99/target {pct(p, 0.99) / 100:.2f}  cni p99/target {pct(c, 0.99) / 100:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
