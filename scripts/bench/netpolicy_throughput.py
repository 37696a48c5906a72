#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""TCP throughput across the agent's bridge with least-privilege rules vs without, interleaved.

Two network namespaces (held by ``unshare -n sleep``) are wired like managed containers
(``agent.network.wiring``: veth pair, host end on the agent's bridge, address from the pool).
A receiver in B counts bytes per connection; a sender in A streams 256 KiB writes for
``--seconds``. Runs alternate between "rules" (the enforce-mode ``riskguard_lp`` table in both
namespaces: A may send to B:5001, B accepts 5001 — so conntrack is on, as in production) and
"none" (tables removed). Throughput is measured by the receiver; the ratio is rules/none of the
medians from the same run, and the median of the paired ratios of adjacent runs (target: at
most 5 % lower).

Usage: ``.venv/bin/python scripts/bench/netpolicy_throughput.py [--runs 9] [--seconds 1.5]`` (root).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.network import nft, wiring
from agent.network.allowlist import Allowlist
from agent.settings.network import EgressRule, IngressRule

RECEIVER = r"""
import socket, sys, time
s = socket.create_server((sys.argv[1], 5001))
print("ready", flush=True)
while True:
    c, _ = s.accept()
    n, t0 = 0, time.perf_counter()
    buf = bytearray(1 << 18)
    while True:
        k = c.recv_into(buf)
        if not k:
            break
        n += k
    print(n, time.perf_counter() - t0, flush=True)
    c.close()
"""

SENDER = r"""
import socket, sys, time
c = socket.create_connection((sys.argv[1], 5001))
data = b"x" * (1 << 18)
end = time.perf_counter() + float(sys.argv[2])
while time.perf_counter() < end:
    c.sendall(data)
c.close()
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=1.5)
    args = ap.parse_args()
    tag = uuid.uuid4().hex[:5]
    bridge = f"rgbt{tag}"
    pool = wiring.Pool.of("10.213.241.0/24")
    holders = [subprocess.Popen(["unshare", "-n", "sleep", "600"]) for _ in range(2)]
    time.sleep(0.3)
    ids = [f"{tag}a{uuid.uuid4().hex}", f"{tag}b{uuid.uuid4().hex}"]
    receiver = None
    results: dict[str, list[float]] = {"none": [], "rules": []}
    pairs: list[float] = []  # rules/none of adjacent runs: cancels slow drifts in host load
    try:
        wired = [
            wiring.wire(Path(f"/proc/{p.pid}/ns/net"), p.pid, cid, bridge, pool, pool.first + i)
            for i, (p, cid) in enumerate(zip(holders, ids, strict=True))
        ]
        a_ns, b_ns = (Path(f"/proc/{p.pid}/ns/net") for p in holders)
        b_addr = wired[1].address
        rules = {
            a_ns: nft.ruleset(Allowlist(egress=(EgressRule(cidr=b_addr, ports=(5001,)),)), "enforce"),
            b_ns: nft.ruleset(Allowlist(ingress=(IngressRule(ports=(5001,)),)), "enforce"),
        }
        receiver = subprocess.Popen(
            ["nsenter", "-t", str(holders[1].pid), "-n", sys.executable, "-c", RECEIVER, b_addr],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert receiver.stdout is not None
        assert receiver.stdout.readline().strip() == "ready"

        def one(kind: str) -> float:
            for ns, cmds in rules.items():
                if kind == "rules":
                    nft.apply(ns, cmds)
                else:
                    nft.remove(ns)
            subprocess.run(
                ["nsenter", "-t", str(holders[0].pid), "-n", sys.executable, "-c", SENDER, b_addr, str(args.seconds)],
                check=True,
            )
            line = receiver.stdout.readline().split()  # type: ignore[union-attr]
            return int(line[0]) * 8 / float(line[1]) / 1e9

        one("none")  # warm-up
        for i in range(args.runs):
            for kind in ("none", "rules") if i % 2 == 0 else ("rules", "none"):
                results[kind].append(one(kind))
            pairs.append(results["rules"][-1] / results["none"][-1])
        table = nft.read(a_ns)
        denied = table["counters"] if table else {}
    finally:
        if receiver is not None:
            receiver.kill()
        for p in holders:
            p.kill()
        for cid in ids:
            wiring.unwire(cid)
        wiring.delete_bridge(bridge)
    none, with_rules = results["none"], results["rules"]
    print(f"runs: {args.runs} each, {args.seconds:.1f} s TCP stream per run, interleaved (veth + bridge, 2 netns)")
    print(
        f"no rules   Gbit/s: median {statistics.median(none):.2f}  mean {statistics.mean(none):.2f}  "
        f"min {min(none):.2f}  max {max(none):.2f}"
    )
    print(
        f"with rules Gbit/s: median {statistics.median(with_rules):.2f}  mean {statistics.mean(with_rules):.2f}  "
        f"min {min(with_rules):.2f}  max {max(with_rules):.2f}"
    )
    ratio = statistics.median(with_rules) / statistics.median(none)
    print(f"ratio rules/none (medians): {ratio:.3f}  ({(1 - ratio) * 100:+.1f} % lower; target <= 5 %)")
    print(
        f"paired ratio rules/none: median {statistics.median(pairs):.3f}  "
        f"quartiles {statistics.quantiles(pairs, n=4)[0]:.3f}..{statistics.quantiles(pairs, n=4)[2]:.3f}"
    )
    print(f"deny counters in the sender netns after the runs: {denied}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
