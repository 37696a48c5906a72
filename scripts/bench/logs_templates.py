#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: template mining on raw lines, our miner vs drain3 (the library, default settings).

(a) Grouping accuracy (GA, Zhu et al., ICSE-SEIP 2019; definition in ../shared/datasets/README.md)
on the eight loghub-dev systems. Both get the raw line, as a user would give it: ours through
``Structurer`` (the code of ``riskguard-agent logs parse``: parsers, header detection, masks,
tree), drain3 through ``TemplateMiner().add_log_message`` with its default config (no masks,
no header handling: it has none).

(b) Lines per CPU-second on varied lines: the 16,000 loghub-dev lines of all eight systems
interleaved round-robin (every system's templates at once), cold miners, ``RUNS`` interleaved runs
pinned to CPU 0; and a 100,000-line synthetic corpus of 30 templates (longer-lived, cache-friendly).
Four paths in the same runs: the miner alone, the structuring path (``Structurer.structure``:
sanitise, parsers, fields, miner; what ``logs parse`` and the live analyzer run per line), the
``logs parse`` command end to end (reads the file as bytes, writes JSON lines to /dev/null) and
drain3; printed as ratios to the miner alone and to drain3, since the machine may be shared (the
load average is printed at the start and the end).

    .venv/bin/python scripts/bench/logs_templates.py
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Hashable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from drain3 import TemplateMiner as Drain3  # noqa: E402

from agent.logs.cli import cmd_parse  # noqa: E402
from agent.logs.miner import TemplateMiner  # noqa: E402
from agent.logs.structure import Structurer  # noqa: E402

DEV = REPO.parent / "shared" / "datasets" / "loghub-dev"
SYSTEMS = ("HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "HPC", "Thunderbird", "Windows")
RUNS = 5
SYNTH_LINES = 100_000

SYNTH_TEMPLATES = [
    "Receiving block blk_{blk} src: /{ip}:{port} dest: /{ip}:{port}",
    "PacketResponder {n} for block blk_{blk} terminating",
    "BLOCK* NameSystem.addStoredBlock: blockMap updated: {ip}:{port} is added to blk_{blk} size {n}",
    "Failed password for {user} from {ip} port {port} ssh2",
    "Failed password for invalid user {user} from {ip} port {port} ssh2",
    "Accepted publickey for {user} from {ip} port {port} ssh2: RSA SHA256:{b64}",
    "pam_unix(sshd:session): session opened for user {user} by (uid={n})",
    "Connection closed by authenticating user {user} {ip} port {port} [preauth]",
    "request_id={hex} method=GET path={path} status={status} duration_ms={f}",
    "worker {hex} picked job {n} from queue {queue}",
    "worker {hex} finished job {n} in {f}s",
    "cache miss for key user:{n}:profile, loading from db",
    "db query took {f} ms rows={n} table={table}",
    "connection pool size {n} idle {n} busy {n}",
    "GC pause {f}ms heap {n}MB -> {n}MB",
    "Started container {hex} in {f} seconds",
    "health check ok latency={f}ms upstream={ip}:{port}",
    "retrying upstream {ip}:{port} attempt {n} of {n}",
    "TLS handshake failed with {ip}: certificate expired at {n}",
    "user {user} uploaded file {path} size {n} bytes",
    "rate limit exceeded for {ip} bucket {queue} tokens {n}",
    "scheduled task {queue} ran in {f}ms next run in {n}s",
    "error: cannot open /var/lib/app/{table}.db: errno {n}",
    "Deleting block blk_{blk} file /mnt/hadoop/dfs/data/current/subdir{n}/blk_{blk}",
    "Verification succeeded for blk_{blk}",
    "Received disconnect from {ip} port {port}:11: disconnected by user",
    "session {hex} expired after {n} seconds of inactivity",
    "upstream {ip}:{port} marked down after {n} failures",
    "snapshot {n} written to {path} in {f} ms",
    "config reloaded from {path} ({n} keys)",
]
LEVELS = ["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"]


def synthetic(n: int, seed: int = 42) -> tuple[list[str], list[int]]:
    """Lines with an ISO timestamp, a level and a component header; the true template of each."""
    rnd = random.Random(seed)
    users = ["root", "admin", "alice", "bob", "oracle", "test", "ubuntu", "git"]
    paths = ["/", "/index.html", "/api/v1/items", "/api/v1/cart", "/login", "/static/app.js"]
    queues, tables = ["default", "mail", "reports", "billing"], ["users", "orders", "sessions", "events"]

    def val(kind: str) -> str:
        if kind == "ip":
            return ".".join(str(rnd.randrange(1, 255)) for _ in range(4))
        if kind == "port":
            return str(rnd.randrange(1024, 65535))
        if kind == "blk":
            return str(rnd.randrange(-(10**19), 10**19))
        if kind == "n":
            return str(rnd.randrange(0, 10 ** rnd.randrange(1, 7)))
        if kind == "f":
            return f"{rnd.random() * 10 ** rnd.randrange(1, 4):.{rnd.randrange(1, 4)}f}"
        if kind == "hex":
            return f"{rnd.getrandbits(64):016x}"
        if kind == "b64":
            return "".join(
                rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(43)
            )
        if kind == "status":
            return rnd.choice(["200", "200", "304", "404", "500"])
        return rnd.choice({"user": users, "path": paths, "queue": queues, "table": tables}[kind])

    lines, labels = [], []
    weights = [rnd.random() ** 2 + 0.01 for _ in SYNTH_TEMPLATES]
    for _ in range(n):
        t = rnd.choices(range(len(SYNTH_TEMPLATES)), weights)[0]
        parts = SYNTH_TEMPLATES[t].split("{")
        out = [parts[0]]
        for p in parts[1:]:
            kind, rest = p.split("}", 1)
            out.append(val(kind) + rest)
        day, hh, mm, ss, ms = (
            rnd.randrange(1, 29),
            rnd.randrange(24),
            rnd.randrange(60),
            rnd.randrange(60),
            rnd.randrange(1000),
        )
        ts = f"2026-11-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{ms:03d}Z"
        thread = rnd.choice(["main", "worker-1", "worker-2"])
        lines.append(f"{ts} {rnd.choice(LEVELS)} [{thread}] app.{t % 7}.Service: {''.join(out)}")
        labels.append(t)
    return lines, labels


def grouping_accuracy(pred: list[Hashable], truth: list[Hashable]) -> float:
    by_pred: dict[Hashable, set[int]] = defaultdict(set)
    by_truth: dict[Hashable, set[int]] = defaultdict(set)
    for i, (p, t) in enumerate(zip(pred, truth, strict=True)):
        by_pred[p].add(i)
        by_truth[t].add(i)
    return sum(len(ix) for ix in by_pred.values() if ix == by_truth[truth[next(iter(ix))]]) / len(pred)


def ours_ids(lines: list[str]) -> list[Hashable]:
    st = Structurer()
    ids = [st.structure(line).template_id for line in lines]
    return [st.templates.resolve(i) for i in ids]


def drain3_ids(lines: list[str]) -> list[Hashable]:
    miner = Drain3()
    # drain3's ids are final: a cluster keeps its id as its template generalises.
    return [miner.add_log_message(line)["cluster_id"] for line in lines]


def loghub() -> dict[str, tuple[list[str], list[str]]]:
    out = {}
    for s in SYSTEMS:
        with (DEV / s / f"{s}_2k.log_structured_corrected.csv").open(encoding="utf-8", newline="") as fh:
            truth = [row["EventId"] for row in csv.DictReader(fh)]
        raw = (DEV / s / f"{s}_2k.log").read_bytes().decode("utf-8", "replace").split("\n")[: len(truth)]
        out[s] = (raw, truth)
    return out


def rate(fn: Callable[[list[str]], object], lines: list[str]) -> float:
    t0 = time.process_time()
    fn(lines)
    return len(lines) / (time.process_time() - t0)


def miner_only(lines: list[str]) -> None:
    m = TemplateMiner()
    for line in lines:
        m.add(line)


def structurer(lines: list[str]) -> None:
    st = Structurer()
    for line in lines:
        st.structure(line)


def drain3_only(lines: list[str]) -> None:
    d = Drain3()
    for line in lines:
        d.add_log_message(line)


def parse_command(path: Path) -> Callable[[list[str]], object]:
    """``riskguard-agent logs parse FILE`` end to end (read bytes, structure, JSON lines to
    /dev/null), on a file holding the lines."""

    def run(_lines: list[str]) -> None:
        real = sys.stdout
        with Path(os.devnull).open("w", encoding="utf-8") as sink:
            sys.stdout = sink
            try:
                cmd_parse(argparse.Namespace(file=str(path), format="jsonl"))
            finally:
                sys.stdout = real

    return run


def speed(name: str, lines: list[str]) -> None:
    """Lines per CPU-second of each path, cold, interleaved; ratios to the miner alone and drain3."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lines.log"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        paths: dict[str, Callable[[list[str]], object]] = {
            "miner alone (ours)": miner_only,
            "structuring (Structurer)": structurer,
            "logs parse command": parse_command(path),
            "drain3": drain3_only,
        }
        runs: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(RUNS):
            for k, fn in paths.items():
                runs[k].append(rate(fn, lines))
    miner = statistics.median(runs["miner alone (ours)"])
    base = statistics.median(runs["drain3"])
    print(f"\n{name}: {len(lines):,} lines, {RUNS} interleaved cold runs, lines per CPU-second (median; runs)")
    print(f"  {'path':<26} {'median':>10}  {'/miner':>6}  {'/drain3':>7}")
    for k, v in runs.items():
        med = statistics.median(v)
        print(f"  {k:<26} {med:>10,.0f}  {med / miner:6.2f}  {med / base:7.2f}  ({', '.join(f'{x:,.0f}' for x in v)})")


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    if not DEV.is_dir():
        print(f"loghub-dev not found at {DEV}", file=sys.stderr)
        return 2
    data = loghub()
    print("(a) grouping accuracy on loghub-dev (raw lines; drain3 default config)")
    print(f"  {'system':<12} {'ours':>7} {'drain3':>7}")
    ours_all, drain_all = [], []
    for s, (lines, truth) in data.items():
        o, d = grouping_accuracy(ours_ids(lines), truth), grouping_accuracy(drain3_ids(lines), truth)
        ours_all.append(o)
        drain_all.append(d)
        print(f"  {s:<12} {o:7.4f} {d:7.4f}")
    print(f"  {'average':<12} {statistics.mean(ours_all):7.4f} {statistics.mean(drain_all):7.4f}")
    mixed = [data[s][0][i] for i in range(2000) for s in SYSTEMS]
    speed("(b) loghub-dev, 8 systems interleaved", mixed)
    synth, labels = synthetic(SYNTH_LINES)
    speed("(b) synthetic, 30 templates with headers", synth)
    print(
        f"\nsynthetic GA: ours {grouping_accuracy(ours_ids(synth), labels):.4f}, "
        f"drain3 {grouping_accuracy(drain3_ids(synth), labels):.4f}"
    )
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
