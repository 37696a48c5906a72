#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Cost of one armed audit rule on a syscall loop (root; auditd may run).

The loop is ``dd if=/dev/zero of=/dev/null bs=1 count=N``: one read and one write syscall per
byte, in C, forked by a shell running as a throwaway uid. Four conditions, interleaved run by run
(the order rotates every round):

* ``unaudited``: a ``-a never,task -F uid=<throwaway>`` rule, so the loop's task is created
  without an audit context: what syscalls cost with no auditing at all (the rest of the host is
  not affected: the rule matches only our uid);
* ``none``: auditing enabled (auditd running), no rule of ours: with ``audit=1`` every task gets
  an audit context at fork (kernel/auditsc.c ``audit_alloc``), so every syscall already passes
  the audit entry/exit hooks;
* ``execve``: the agent's default managed rule (``-S execve,execveat``), which never matches
  the loop's syscalls but arms syscall auditing for every task;
* ``read-nomatch``: a rule on ``read`` whose ``uid`` filter never matches, so the rule is
  evaluated on every read of the loop without producing records.

Prints ns per syscall for each condition (median of the runs) and the ratio against ``none``
measured in the same run. Rules carry a throwaway key and are removed in a ``finally``.

Usage: ``.venv/bin/python scripts/bench/audit_rule_cost.py [--runs 9] [--count 300000]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

KEY = f"rgbench{os.getpid()}"
UID = 54320
RULES = {
    "unaudited": ["-a", "never,task", "-F", f"uid={UID}"],
    "none": [],
    "execve": ["-a", "always,exit", "-F", "arch=b64", "-S", "execve,execveat"],
    "read-nomatch": ["-a", "always,exit", "-F", "arch=b64", "-S", "read", "-F", "uid=54321"],
}


def auditctl(*args: str) -> None:
    subprocess.run(["auditctl", *args], check=False, capture_output=True)


def loop_seconds(count: int) -> float:
    # The shell forks dd as UID (the task filter runs at fork, with the parent's credentials);
    # dd's own time is read from its output, not the shell's start-up.
    cmd = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "sh", "-c",
           f"dd if=/dev/zero of=/dev/null bs=1 count={count}; true"]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stderr
    # "400000 bytes (400 kB, 391 KiB) copied, 0.3412 s, 1.2 MB/s"
    return float(out.strip().splitlines()[-1].split(" copied, ")[1].split(" s")[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--count", type=int, default=300_000)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("auditctl") is None:
        print("needs root and auditctl (scripts/setup-host.sh installs auditd)", file=sys.stderr)
        return 0
    names = list(RULES)
    times: dict[str, list[float]] = {n: [] for n in names}
    auditctl("-D", "-k", KEY)
    try:
        loop_seconds(args.count // 4)  # warm the page cache and the dd binary
        for r in range(args.runs):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                auditctl("-D", "-k", KEY)
                if RULES[name]:
                    auditctl(*RULES[name], "-k", KEY)
                times[name].append(loop_seconds(args.count))
    finally:
        auditctl("-D", "-k", KEY)
    syscalls = 2 * args.count
    med = {n: statistics.median(v) for n, v in times.items()}
    result = {
        "syscalls_per_run": syscalls,
        "runs": args.runs,
        "ns_per_syscall": {n: round(med[n] / syscalls * 1e9, 1) for n in names},
        "ratio_vs_none": {n: round(med[n] / med["none"], 3) for n in names},
        "ratio_vs_unaudited": {n: round(med[n] / med["unaudited"], 3) for n in names},
        # The fastest run is the least disturbed by other load on a shared machine.
        "min_ns_per_syscall": {n: round(min(v) / syscalls * 1e9, 1) for n, v in times.items()},
        "min_ratio_vs_unaudited": {n: round(min(times[n]) / min(times["unaudited"]), 3) for n in names},
        "spread_pct": {n: round((max(v) - min(v)) / med[n] * 100, 1) for n, v in times.items()},
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"audit rule cost: dd bs=1 loop, {syscalls} syscalls per run, {args.runs} interleaved runs each")
    print(
        f"{'condition':<14} {'median ns':>10} {'vs none':>8} {'vs unaudited':>13}"
        f" {'min ns':>8} {'min vs unaud.':>14} {'spread%':>8}"
    )
    for n in names:
        print(
            f"{n:<14} {result['ns_per_syscall'][n]:>10} {result['ratio_vs_none'][n]:>8}"
            f" {result['ratio_vs_unaudited'][n]:>13} {result['min_ns_per_syscall'][n]:>8}"
            f" {result['min_ratio_vs_unaudited'][n]:>14} {result['spread_pct'][n]:>8}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
