#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Session logs of a simulated block-storage service (HDFS-like), normal and anomalous.

Each session is one block: allocated by the name node, written to ``r`` replicas (3, sometimes 2
or 1), each replica logging its receive, its packet responder and the name node's block-map
update (the order of those varies with timing), then maybe verified, replicated once more or
deleted. Rare normal noise: a reset stream that the client retried, a slow-mirror warning.
Lines of concurrent sessions are interleaved in time, each with a header
(``yymmdd HHMMSS pid LEVEL component:``), like the raw file a user would feed to ``logs fit``.

Injected anomalies (one kind per anomalous session):
``missing`` a step of one replica is absent; ``error`` a replica fails with an exception and its
remaining steps never happen; ``order`` the block-map update or deletion happens before the data
was received; ``unseen`` an event type normal operation never logs.

    python scripts/bench/logs_session_data.py OUTDIR [--seed 1] [--train 4000] [--test 4000] [--anomalies 400]

writes OUTDIR/train.log (normal only), OUTDIR/test.log and OUTDIR/test_labels.json
(block id → anomaly kind or "normal"). Session key: ``--session-key '(blk_-?\\d+)'``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

SESSION_KEY = r"(blk_-?\d+)"
KINDS = ("missing", "error", "order", "unseen")


@dataclass
class Sim:
    rnd: random.Random
    clock: float = 0.0
    pids: dict[str, int] = field(default_factory=dict)

    def ip(self) -> str:
        return f"10.251.{self.rnd.randrange(30, 220)}.{self.rnd.randrange(2, 250)}"

    def pid(self, comp: str) -> int:
        return self.pids.setdefault(comp, self.rnd.randrange(10, 400))


def _block_events(sim: Sim, blk: str, kind: str) -> list[tuple[float, str, str, str]]:
    """(time, level, component, message) of one block's life; ``kind`` injects an anomaly."""
    r = sim.rnd
    t0 = sim.clock + r.random() * 600
    size = r.choice([67108864, r.randrange(1000, 67108864)])
    job, task = r.randrange(1, 9999), r.randrange(0, 2000)
    reps = r.choices([3, 2, 1], [0.82, 0.13, 0.05])[0]
    nodes = [sim.ip() for _ in range(reps)]
    ev: list[tuple[float, str, str, str]] = [
        (
            t0,
            "INFO",
            "dfs.FSNamesystem",
            f"BLOCK* NameSystem.allocateBlock: /user/root/rand/_temporary/_task_{job}_m_{task:06d}_0/"
            f"part-{task:05d}. {blk}",
        )
    ]
    replicas: list[list[tuple[float, str, str, str]]] = []
    for k, node in enumerate(nodes):
        t_in = t0 + 0.5 + r.random() * 2
        t_done = t_in + 1 + r.expovariate(0.5)
        steps = [
            (
                t_in,
                "INFO",
                "dfs.DataNode$DataXceiver",
                f"Receiving block {blk} src: /{sim.ip()}:{r.randrange(30000, 60000)} dest: /{node}:50010",
            ),
            (t_done, "INFO", "dfs.DataNode$PacketResponder", f"Received block {blk} of size {size} from /{sim.ip()}"),
            (
                t_done + r.uniform(-0.3, 0.3),
                "INFO",
                "dfs.DataNode$PacketResponder",
                f"PacketResponder {k} for block {blk} terminating",
            ),
            (
                t_done + 0.2 + r.random(),
                "INFO",
                "dfs.FSNamesystem",
                f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {node}:50010 is added to {blk} size {size}",
            ),
        ]
        if r.random() < 0.01:  # a stream reset the client retried: noise, not a failure
            steps.insert(
                1,
                (
                    t_in + 0.3,
                    "INFO",
                    "dfs.DataNode$DataXceiver",
                    f"writeBlock {blk} received exception java.io.IOException: Connection reset by peer",
                ),
            )
            steps.insert(
                2,
                (
                    t_in + 0.4,
                    "INFO",
                    "dfs.DataNode$DataXceiver",
                    f"Receiving block {blk} src: /{sim.ip()}:{r.randrange(30000, 60000)} dest: /{node}:50010",
                ),
            )
        replicas.append(steps)
    if r.random() < 0.02:
        replicas[0].append(
            (
                t0 + 2.5,
                "WARN",
                "dfs.DataNode$DataXceiver",
                f"Slow BlockReceiver write packet to mirror took {r.randrange(300, 900)}ms (threshold=300ms) for {blk}",
            )
        )
    t_end = max(s[0] for rep in replicas for s in rep)
    tail: list[tuple[float, str, str, str]] = []
    if r.random() < 0.3:
        tail.append((t_end + 5 + r.random() * 60, "INFO", "dfs.DataBlockScanner", f"Verification succeeded for {blk}"))
    if r.random() < 0.04:
        src, dst = r.choice(nodes), sim.ip()
        t = t_end + 20 + r.random() * 60
        tail += [
            (t, "INFO", "dfs.DataNode", f"{src}:50010 Starting thread to transfer block {blk} to {dst}:50010"),
            (
                t + 0.5,
                "INFO",
                "dfs.DataNode$DataXceiver",
                f"Receiving block {blk} src: /{src}:{r.randrange(30000, 60000)} dest: /{dst}:50010",
            ),
            (
                t + 1.5,
                "INFO",
                "dfs.DataNode$DataXceiver",
                f"Received block {blk} src: /{src}:50010 dest: /{dst}:50010 of size {size}",
            ),
            (
                t + 2.0,
                "INFO",
                "dfs.FSNamesystem",
                f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {dst}:50010 is added to {blk} size {size}",
            ),
        ]
    if r.random() < 0.2:
        t = t_end + 100 + r.random() * 300
        for node in nodes:
            tail.append(
                (
                    t,
                    "INFO",
                    "dfs.FSNamesystem",
                    f"BLOCK* NameSystem.delete: {blk} is added to invalidSet of {node}:50010",
                )
            )
        for _ in nodes:
            t2 = t + 2 + r.random() * 5
            tail.append(
                (
                    t2,
                    "INFO",
                    "dfs.FSDataset",
                    f"Deleting block {blk} file /mnt/hadoop/dfs/data/current/subdir{r.randrange(64)}/{blk}",
                )
            )
    if kind == "missing":
        rep = r.choice(replicas)
        rep.pop(r.randrange(len(rep)))
    elif kind == "error":
        rep = r.choice(replicas)
        cut = r.randrange(1, len(rep))
        t_err = rep[cut - 1][0] + 0.1
        del rep[cut:]
        rep.append(
            r.choice(
                [
                    (
                        t_err,
                        "INFO",
                        "dfs.DataNode$DataXceiver",
                        f"writeBlock {blk} received exception java.io.IOException: Connection reset by peer",
                    ),
                    (
                        t_err,
                        "INFO",
                        "dfs.DataNode$PacketResponder",
                        f"PacketResponder {blk} 1 Exception java.io.IOException: Broken pipe",
                    ),
                    (
                        t_err,
                        "WARN",
                        "dfs.DataNode$DataXceiver",
                        f"{sim.ip()}:50010:Got exception while serving {blk} to /{sim.ip()}:",
                    ),
                ]
            )
        )
    events = ev + [s for rep in replicas for s in rep] + tail
    events.sort(key=lambda e: e[0])
    if kind == "order":
        movable = [i for i, e in enumerate(events) if "addStoredBlock" in e[3] or "Deleting block" in e[3]]
        i = r.choice(movable)
        moved = events.pop(i)
        events.insert(1, (events[0][0] + 0.01, *moved[1:]))
    elif kind == "unseen":
        t = r.choice(events)[0] + 0.05
        events.append(
            r.choice(
                [
                    (
                        t,
                        "WARN",
                        "dfs.FSDataset",
                        f"Unexpected error trying to delete block {blk}. BlockInfo not found in volumeMap.",
                    ),
                    (
                        t,
                        "INFO",
                        "dfs.FSNamesystem",
                        f"BLOCK* NameSystem.addStoredBlock: Redundant addStoredBlock request received for {blk} "
                        f"on {sim.ip()}:50010 size {size}",
                    ),
                    (t, "WARN", "dfs.DataNode", f"{sim.ip()}:50010 is unable to read block {blk} checksum mismatch"),
                ]
            )
        )
        events.sort(key=lambda e: e[0])
    return events


def _fmt(sim: Sim, t: float, level: str, comp: str, msg: str) -> str:
    day = 9 + int(t // 86400)
    secs = int(t % 86400)
    return (
        f"0811{day:02d} {secs // 3600:02d}{secs % 3600 // 60:02d}{secs % 60:02d} {sim.pid(comp)} {level} {comp}: {msg}"
    )


def generate(n_normal: int, n_anomalous: int, seed: int) -> tuple[list[str], dict[str, str]]:
    """Interleaved raw lines and the label of each block (``normal`` or an anomaly kind)."""
    rnd = random.Random(seed)
    sim = Sim(rnd)
    kinds = ["normal"] * n_normal + [KINDS[i % len(KINDS)] for i in range(n_anomalous)]
    rnd.shuffle(kinds)
    labels: dict[str, str] = {}
    timed: list[tuple[float, str]] = []
    for kind in kinds:
        blk = f"blk_{rnd.choice(['', '-'])}{rnd.randrange(10**17, 10**19)}"
        labels[blk] = kind
        for t, level, comp, msg in _block_events(sim, blk, kind):
            timed.append((t, _fmt(sim, t, level, comp, msg)))
        sim.clock += rnd.expovariate(1 / 2.0)
    timed.sort(key=lambda x: x[0])
    return [line for _, line in timed], labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--train", type=int, default=4000, help="normal training sessions")
    ap.add_argument("--test", type=int, default=4000, help="held-back normal sessions")
    ap.add_argument("--anomalies", type=int, default=400, help="anomalous test sessions")
    a = ap.parse_args(argv)
    a.outdir.mkdir(parents=True, exist_ok=True)
    train, _ = generate(a.train, 0, a.seed)
    test, labels = generate(a.test, a.anomalies, a.seed + 1000)
    (a.outdir / "train.log").write_text("\n".join(train) + "\n", encoding="utf-8")
    (a.outdir / "test.log").write_text("\n".join(test) + "\n", encoding="utf-8")
    (a.outdir / "test_labels.json").write_text(json.dumps(labels), encoding="utf-8")
    print(
        f"{len(train)} train lines, {len(test)} test lines, {len(labels)} test sessions -> {a.outdir}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
