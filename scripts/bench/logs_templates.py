#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmark: template mining on raw lines, our miner vs drain3 (the library, default settings).

(a) Grouping accuracy (GA, Zhu et al., ICSE-SEIP 2019; definition in ../shared/datasets/README.md)
on the eight loghub-dev systems. Both get the raw line, as a user would give it: ours through
``Structurer`` (the code of ``riskguard-agent logs parse``: parsers, header detection, masks,
tree), drain3 through ``TemplateMiner().add_log_message`` with its default config (no masks,
no header handling: it has none).

(b) Lines per CPU-second on varied lines: the 16,000 loghub-dev lines of all eight systems
interleaved round-robin (every system's templates at once), cold miners and memos, ``RUNS`` interleaved runs
pinned to CPU 0; a 100,000-line synthetic corpus of 30 templates in one header format
(cache-friendly: half its lines repeat an earlier line's digit shape); and ``varied``: 50,000
synthetic lines of 300 templates in 13 header formats of common software (ISO + level + thread,
syslog, log4j, Python logging, klog, Go log, nginx error, JSON, logfmt, Spark, PostgreSQL, Redis,
Apache access), interleaved line by line, with values of varying length and letters, so almost
no line repeats an earlier line's digit shape. Four paths in the same runs: the miner alone, the
structuring path (``Structurer.structure``: sanitise, parsers, fields, miner; what ``logs parse``
and the live analyzer run per line), the ``logs parse`` command end to end (reads the file as
bytes, writes JSON lines to /dev/null) and drain3; with ``--before REV`` a fifth, the structuring
path of git revision REV (its ``agent/`` and ``config/`` extracted to a temporary folder, timed by
a child process on the same CPU) and its ``logs parse`` command, to compare before and after in
one run. A fourth corpus, ``long``, is the loghub-dev mix followed by nine more passes with every
digit drawn anew: the line shapes of a long log of those systems with values never seen
(``--only CORPUS`` times a subset). (c) times ``riskguard-agent logs parse FILE`` as a user
would, process start to exit, on each loghub-dev file, the mix and the long log (now and at REV). Rates are printed with
ratios to the miner alone and to drain3, since the machine may be shared (the load average is
printed at the start and the end).

    .venv/bin/python scripts/bench/logs_templates.py [--before REV] [--only command|loghub|long|synthetic|varied]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from drain3 import TemplateMiner as Drain3  # noqa: E402

from agent.logs import header, masking  # noqa: E402
from agent.logs.cli import cmd_parse  # noqa: E402
from agent.logs.miner import TemplateMiner  # noqa: E402
from agent.logs.structure import Structurer  # noqa: E402

DEV = REPO.parent / "shared" / "datasets" / "loghub-dev"
SYSTEMS = ("HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "HPC", "Thunderbird", "Windows")
RUNS = 5
SYNTH_LINES = 100_000
VARIED_LINES = 50_000

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


# The varied corpus: 30 + 18 x 15 = 300 templates, each line in one of 13 header formats of
# common software (the same message may come from any of them), values of varying length and
# letters (so most lines have a digit shape of their own), formats interleaved line by line.
SUBJECTS = [
    "cache", "scheduler", "replica", "uploader", "indexer", "consumer", "auth-backend", "exporter", "compactor",
    "watchdog", "router", "resolver", "billing", "mailer", "gateway", "planner", "snapshotter", "ingester",
]  # fmt: skip
SKELETONS = [
    "{S} started with {n} workers on {ip}:{port}",
    "{S} stopped after {f}s ({n} items pending)",
    "{S} failed to connect to {ip}:{port}: connection refused",
    "{S} retry {n}/{n} for request {hex}",
    "{S} loaded {n} entries from {path} in {f}ms",
    "{S} lag is {n} messages behind on partition {n}",
    "{S} rejected item {uuid}: invalid checksum",
    "flushing {S} buffer of {n} bytes to {path}",
    "{S} timed out after {f}s waiting for lock {hex}",
    "{S} state changed from {state} to {state}",
    "user {user} called {S} endpoint {path} with token {hex}",
    "{S} evicted {n} keys, memory {n}MB of {n}MB",
    "{S} heartbeat from node-{n} at {ip} took {f} ms",
    "{S} config key {word}={n} overrides default",
    "could not reach {S} at {host}:{port} ({word}), will retry in {n}s",
]
VARIED_TEMPLATES = SYNTH_TEMPLATES + [sk.replace("{S}", s) for s in SUBJECTS for sk in SKELETONS]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
FORMATS = (
    "iso-level-thread",  # 2026-11-05T08:08:15.762Z INFO [main] app.Service: msg
    "syslog",  # Nov  5 08:08:15 host prog[pid]: msg
    "log4j",  # 2026-11-05 08:08:15,762 INFO  [main] org.x.Y - msg
    "python",  # 2026-11-05 08:08:15,762 - module - WARNING - msg
    "klog",  # I1105 08:08:15.762345    1234 file.go:123] msg
    "golog",  # 2026/11/05 08:08:15 msg
    "nginx-error",  # 2026/11/05 08:08:15 [error] 12#12: *5 msg
    "json",  # {"ts": ..., "level": ..., "msg": ...}
    "logfmt",  # time="..." level=info msg="..." module=x
    "spark",  # 26/11/05 08:08:15 INFO x.Y: msg
    "postgres",  # 2026-11-05 08:08:15.762 UTC [1234] LOG:  msg
    "redis",  # 1234:M 05 Nov 2026 08:08:15.762 * msg
    "apache-access",  # 10.1.2.3 - alice [05/Nov/2026:08:08:15 +0000] "GET /x HTTP/1.1" 200 123 "-" "ua"
)


def _value(rnd: random.Random, kind: str) -> str:
    """One variable of the synthetic templates."""
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
    if kind == "uuid":
        return str(uuid.UUID(int=rnd.getrandbits(128)))
    if kind == "b64":
        return "".join(
            rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(43)
        )
    if kind == "status":
        return rnd.choice(["200", "200", "304", "404", "500"])
    if kind == "host":
        return f"{rnd.choice(['db', 'web', 'api', 'cache', 'queue'])}-{rnd.randrange(40)}.internal"
    if kind == "user":
        return rnd.choice(USERS)
    if kind == "path":
        return rnd.choice(PATHS) if rnd.random() < 0.5 else f"/srv/data/{rnd.choice(WORDS)}/{rnd.randrange(10**4)}.log"
    return rnd.choice({"queue": QUEUES, "table": TABLES, "state": STATES, "word": WORDS}[kind])


USERS = ["root", "admin", "alice", "bob", "oracle", "test", "ubuntu", "git", "deploy", "postgres", "jenkins", "carol"]
PATHS = ["/", "/index.html", "/api/v1/items", "/api/v1/cart", "/login", "/static/app.js", "/etc/app/config.yaml"]
QUEUES, TABLES = ["default", "mail", "reports", "billing"], ["users", "orders", "sessions", "events"]
STATES = ["idle", "running", "draining", "stopped", "degraded", "recovering"]
WORDS = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "zeta"]


def _fill(rnd: random.Random, template: str) -> str:
    parts = template.split("{")
    out = [parts[0]]
    for p in parts[1:]:
        kind, rest = p.split("}", 1)
        out.append(_value(rnd, kind) + rest)
    return "".join(out)


def _header_line(rnd: random.Random, fmt: str, msg: str, comp: str) -> str:
    """``msg`` written by a program of format ``fmt`` (time, level, pid, thread drawn at random)."""
    y, mo, d = 2026, rnd.randrange(1, 13), rnd.randrange(1, 29)
    hh, mm, ss, ms = rnd.randrange(24), rnd.randrange(60), rnd.randrange(60), rnd.randrange(1000)
    level = rnd.choice(LEVELS)
    pid = rnd.randrange(1, 10 ** rnd.randrange(2, 6))
    hms = f"{hh:02d}:{mm:02d}:{ss:02d}"
    if fmt == "iso-level-thread":
        thread = rnd.choice(["main", "worker-1", "worker-2", "pool-3-thread-7"])
        return f"{y}-{mo:02d}-{d:02d}T{hms}.{ms:03d}Z {level} [{thread}] {comp}.Service: {msg}"
    if fmt == "syslog":
        return f"{MONTHS[mo - 1]} {d:>2} {hms} {rnd.choice(['web-1', 'db-2', 'edge'])} {comp}[{pid}]: {msg}"
    if fmt == "log4j":
        thread = rnd.choice(["main", "http-nio-8080-exec-3"])
        return (
            f"{y}-{mo:02d}-{d:02d} {hms},{ms:03d} {level:<5} [{thread}] org.example.{comp.capitalize()}Manager - {msg}"
        )
    if fmt == "python":
        name = {"WARN": "WARNING"}.get(level, level)
        return f"{y}-{mo:02d}-{d:02d} {hms},{ms:03d} - {comp}.worker - {name} - {msg}"
    if fmt == "klog":
        us, src = rnd.randrange(10**6), rnd.randrange(20, 900)
        return f"{level[0]}{mo:02d}{d:02d} {hms}.{us:06d} {pid:>7} {comp}.go:{src}] {msg}"
    if fmt == "golog":
        return f"{y}/{mo:02d}/{d:02d} {hms} {msg}"
    if fmt == "nginx-error":
        return f"{y}/{mo:02d}/{d:02d} {hms} [{level.lower()}] {pid}#{pid}: *{rnd.randrange(10**5)} {msg}"
    if fmt == "json":
        ts = f"{y}-{mo:02d}-{d:02d}T{hms}.{ms:03d}Z"
        return json.dumps({"ts": ts, "level": level.lower(), "logger": comp, "msg": msg})
    if fmt == "logfmt":
        ts = f"{y}-{mo:02d}-{d:02d}T{hms}.{ms:03d}Z"
        return f'time="{ts}" level={level.lower()} msg="{msg}" module={comp}'
    if fmt == "spark":
        return f"{y % 100:02d}/{mo:02d}/{d:02d} {hms} {level} {comp}.{comp.capitalize()}Runner: {msg}"
    if fmt == "postgres":
        pg = {"INFO": "LOG", "DEBUG": "DEBUG1", "WARN": "WARNING", "ERROR": "ERROR"}[level]
        return f"{y}-{mo:02d}-{d:02d} {hms}.{ms:03d} UTC [{pid}] {pg}:  {msg}"
    if fmt == "redis":
        return f"{pid}:M {d:02d} {MONTHS[mo - 1]} {y} {hms}.{ms:03d} {rnd.choice('*#-.')} {msg}"
    raise ValueError(fmt)


def varied(n: int, seed: int = 7) -> tuple[list[str], list[Hashable]]:
    """Lines of 300 templates in 13 header formats, interleaved; the true template of each (an
    access-log line's template is its method: the format has no free-text message)."""
    rnd = random.Random(seed)
    weights = [1 / (k + 1) ** 0.8 for k in range(len(VARIED_TEMPLATES))]  # Zipf-like
    rnd.shuffle(weights)
    lines: list[str] = []
    labels: list[Hashable] = []
    for _ in range(n):
        fmt = rnd.choice(FORMATS)
        if fmt == "apache-access":
            method = rnd.choice(["GET", "GET", "POST", "PUT"])
            lines.append(
                f"{_value(rnd, 'ip')} - {rnd.choice(['-', *USERS])} [{rnd.randrange(1, 29):02d}/Nov/2026:"
                f"{rnd.randrange(24):02d}:{rnd.randrange(60):02d}:{rnd.randrange(60):02d} +0000] "
                f'"{method} {_value(rnd, "path")} HTTP/1.1" {_value(rnd, "status")} {rnd.randrange(10**5)} '
                f'"-" "{rnd.choice(["curl/8.0", "Mozilla/5.0", "kube-probe/1.29"])}"'
            )
            labels.append(("access", method))
            continue
        t = rnd.choices(range(len(VARIED_TEMPLATES)), weights)[0]
        comp = rnd.choice(SUBJECTS)
        lines.append(_header_line(rnd, fmt, _fill(rnd, VARIED_TEMPLATES[t]), comp))
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


def cold_caches() -> None:
    """Empty the module-level memos of header rules and masks, so that every run starts as cold
    as a fresh process (as the ``--before`` child does) and later runs do not reuse earlier ones."""
    for mod, names in ((header, ("_KIND_OF", "_RULES", "_MEMO", "_PLANS")), (masking, ("_VARIABLE",))):
        for name in names:
            getattr(mod, name).clear()


def rate(fn: Callable[[list[str]], object], lines: list[str]) -> float:
    cold_caches()
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


CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from agent.logs.structure import Structurer
lines = open(sys.argv[2], encoding="utf-8").read().split("\\n")[:-1]
st = Structurer()
t0 = time.process_time()
for line in lines:
    st.structure(line)
print(len(lines) / (time.process_time() - t0))
"""


CHILD_PARSE = """
import argparse, os, sys, time
sys.path.insert(0, sys.argv[1])
from agent.logs.cli import cmd_parse
n = sum(1 for _ in open(sys.argv[2], "rb"))
real = sys.stdout
sys.stdout = open(os.devnull, "w", encoding="utf-8")
t0 = time.process_time()
cmd_parse(argparse.Namespace(file=sys.argv[2], format="jsonl"))
dt = time.process_time() - t0
sys.stdout = real
print(n / dt)
"""


def structurer_at(tree: Path, path: Path, child: str = CHILD) -> Callable[[list[str]], float]:
    """The structuring path (or, with ``CHILD_PARSE``, the ``logs parse`` command) of another
    checkout (``--before``), in a child process on the same CPU: its lines per CPU-second,
    measured by the child around the same loop."""

    def run(_lines: list[str]) -> float:
        out = subprocess.run(
            [sys.executable, "-c", child, str(tree), str(path)], check=True, capture_output=True, text=True
        )
        return float(out.stdout.strip().splitlines()[-1])

    return run


def speed(name: str, lines: list[str], before: Path | None = None) -> None:
    """Lines per CPU-second of each path, cold, interleaved; ratios to the miner alone and drain3."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lines.log"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        paths: dict[str, Callable[[list[str]], float]] = {
            "miner alone (ours)": lambda ls: rate(miner_only, ls),
            "structuring (Structurer)": lambda ls: rate(structurer, ls),
            "logs parse command": lambda ls: rate(parse_command(path), ls),
            "drain3": lambda ls: rate(drain3_only, ls),
        }
        if before is not None:
            paths[f"structuring @{before.name}"] = structurer_at(before, path)
            paths[f"logs parse @{before.name}"] = structurer_at(before, path, CHILD_PARSE)
        runs: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(RUNS):
            for k, fn in paths.items():
                runs[k].append(fn(lines))
    miner = statistics.median(runs["miner alone (ours)"])
    base = statistics.median(runs["drain3"])
    print(f"\n{name}: {len(lines):,} lines, {RUNS} interleaved cold runs, lines per CPU-second (median; runs)")
    print(f"  {'path':<26} {'median':>10}  {'/miner':>6}  {'/drain3':>7}")
    for k, v in runs.items():
        med = statistics.median(v)
        print(f"  {k:<26} {med:>10,.0f}  {med / miner:6.2f}  {med / base:7.2f}  ({', '.join(f'{x:,.0f}' for x in v)})")


def checkout(rev: str, into: Path) -> Path:
    """``agent/`` and ``config/`` of git revision ``rev``, extracted under ``into/<rev>``."""
    tree = into / rev
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "agent", "config"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--before", metavar="REV", help="also time the structuring path of git revision REV (same runs)")
    ap.add_argument(
        "--only",
        action="append",
        choices=("command", "loghub", "long", "synthetic", "varied"),
        default=[],
        help="time only these corpora (repeatable; grouping accuracy is always computed)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        return run(checkout(args.before, Path(tmp)) if args.before else None, frozenset(args.only))


def longer(lines: list[str], passes: int = 10, seed: int = 3) -> list[str]:
    """``lines``, then ``passes - 1`` more passes over them with every digit drawn anew: the line
    shapes of a long log of the same systems (real logs repeat them: 87 % of the loghub-dev mix's
    lines repeat an earlier line's shape within 2,000 lines per system), values never seen."""
    rnd = random.Random(seed)
    digits = "0123456789"
    out = list(lines)
    for _ in range(passes - 1):
        out.extend("".join(rnd.choice(digits) if c.isdigit() else c for c in line) for line in lines)
    return out


def command_wall(tree: Path, path: Path) -> float:
    """Seconds from start to exit of ``riskguard-agent logs parse PATH`` (``python -m agent.cli``
    of ``tree``, JSON lines to /dev/null): what a user who times the command sees, start-up
    included."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    with Path(os.devnull).open("wb") as sink:
        subprocess.run(
            [sys.executable, "-m", "agent.cli", "logs", "parse", str(path)], check=True, stdout=sink, env=env, cwd=tree
        )
    return time.perf_counter() - t0


def commands(files: dict[str, list[str]], before: Path | None) -> None:
    """(c) The command as a user runs it, on each loghub-dev file and on the mix: lines per
    second of wall-clock time from process start to exit (median of ``RUNS``), now and at REV."""
    trees = {"now": REPO} | ({f"@{before.name}": before} if before is not None else {})
    print(f"\n(c) riskguard-agent logs parse FILE, start to exit (wall clock, median of {RUNS}; lines/s)")
    print(f"  {'file':<34} {'lines':>7} " + " ".join(f"{k:>16}" for k in trees))
    with tempfile.TemporaryDirectory() as tmp:
        for name, lines in files.items():
            path = Path(tmp) / f"{name}.log"
            path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            runs: dict[str, list[float]] = {k: [] for k in trees}
            for _ in range(RUNS):
                for k, tree in trees.items():
                    runs[k].append(command_wall(tree, path))
            cells = " ".join(
                f"{len(lines) / statistics.median(v):>9,.0f} ({statistics.median(v):4.2f}s)" for v in runs.values()
            )
            print(f"  {name:<34} {len(lines):>7,} {cells}")


def run(before: Path | None, only: frozenset[str] = frozenset()) -> int:
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
    if not only or "command" in only:
        files = {f"{s}_2k.log": data[s][0] for s in SYSTEMS} | {"loghub-dev mix": mixed, "long log": longer(mixed)}
        commands(files, before)
    if not only or "loghub" in only:
        speed("(b) loghub-dev, 8 systems interleaved", mixed, before)
    if not only or "long" in only:
        speed("(b) loghub-dev mix, then 9 more passes with new digits (a long log)", longer(mixed), before)
    synth, labels = synthetic(SYNTH_LINES)
    if not only or "synthetic" in only:
        speed("(b) synthetic, 30 templates, one header format", synth, before)
    many, many_labels = varied(VARIED_LINES)
    if not only or "varied" in only:
        speed("(b) synthetic varied, 300 templates, 13 formats", many, before)
    for name, (lines, truth) in (("synthetic", (synth, labels)), ("synthetic varied", (many, many_labels))):
        if only and name.rsplit(" ", 1)[-1] not in only:
            continue
        print(
            f"\n{name} GA: ours {grouping_accuracy(ours_ids(lines), truth):.4f}, "
            f"drain3 {grouping_accuracy(drain3_ids(lines), truth):.4f}",
            end="",
        )
    print()
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
