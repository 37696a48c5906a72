# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import random

from agent.logs.templates import TemplateCache, make_miner

TEMPLATES = [
    "Received block blk_{n} of size {n} from /{ip}",
    "PacketResponder {n} for block blk_{n} terminating",
    "session opened for user {u} by (uid={n})",
    "Connection from {ip} port {n} on {ip} port 22",
    "GET /api/items/{n} took {f} ms status {n}",
    "worker {h} finished job {n} in {f}s",
]


def corpus(n: int, seed: int = 7) -> tuple[list[str], list[int]]:
    rnd = random.Random(seed)
    lines, labels = [], []
    for _ in range(n):
        t = rnd.randrange(len(TEMPLATES))
        line = TEMPLATES[t]
        while "{" in line:
            line = (
                line.replace("{n}", str(rnd.randrange(1, 10 ** rnd.randrange(1, 8))), 1)
                .replace("{ip}", ".".join(str(rnd.randrange(256)) for _ in range(4)), 1)
                .replace("{f}", f"{rnd.random() * 100:.2f}", 1)
                .replace("{u}", rnd.choice(["root", "alice", "bob"]), 1)
                .replace("{h}", f"{rnd.getrandbits(64):016x}", 1)
            )
        lines.append(line)
        labels.append(t)
    return lines, labels


def test_cache_groups_like_drain3_and_hits() -> None:
    lines, labels = corpus(5000)
    cache = TemplateCache()
    miner = make_miner()
    ours = [cache.add(line).id for line in lines]
    theirs = [miner.add_log_message(line)["cluster_id"] for line in lines]
    # Same partition as drain3 alone, and the ground-truth partition.
    assert len(set(zip(ours, theirs, strict=True))) == len(set(ours)) == len(set(theirs))
    assert len(set(zip(ours, labels, strict=True))) == len(set(labels)) == len(set(ours))
    assert cache.hits > cache.misses


def test_masks_and_persistence_keep_ids() -> None:
    cache = TemplateCache()
    t1 = cache.add("connect to 10.1.2.3:8080 took 17 ms id 0xdeadbeef")
    assert t1.text == "connect to <IP> took <NUM> ms id <HEX>"
    blob = cache.dump()
    again = TemplateCache()
    again.load(blob)
    assert again.add("connect to 192.168.0.1:443 took 5 ms id 0x1").id == t1.id
    assert again.match("connect to 1.1.1.1:1 took 1 ms id 0x2") is not None


def test_overlong_lines_are_cut() -> None:
    cache = TemplateCache(max_line=100)
    t = cache.add("word " * 10000)
    assert len(t.text) <= 100
