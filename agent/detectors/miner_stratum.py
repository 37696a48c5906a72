# SPDX-License-Identifier: Apache-2.0
"""RG-0012: cryptominer signs: stratum URLs or miner names in a command line, pool DNS names,
connections to common mining-pool ports.

A command line (``xmrig -o stratum+tcp://…``) or a pool DNS name is high severity; a bare
connect to a pool port (3333, 4444, 5555, 7777, 14444, 45700 …) is medium, because those
ports are also used by ordinary services.
"""

from __future__ import annotations

from agent.detectors.spec import Detector, DetectorState, argv_text, derived, path_matcher, program_names
from agent.events import FlowWindow, NetConnect, ProcessExec
from agent.findings import Finding, Severity


def _dns_word(word: str, name: str) -> bool:
    """``word`` in the DNS ``name``; a word ending in "." is a whole label (``pool.`` matches
    ``pool.minexmr.com`` and ``xmr.pool.example``, not ``db-pool.svc.cluster.local``)."""
    if not word.endswith("."):
        return word in name
    return name.startswith(word) or f".{word}" in name


# Command lines already judged, per miner_words tuple: the processes of an image run the same
# few command lines again and again. Bounded; a command line is judged again after a clear.
WORDS_CACHE_ENTRIES = 1024


def _new_cache(_words: tuple[str, ...]) -> dict[object, tuple[str, ...]]:
    return {}


def _lowered(words: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(w.lower() for w in words)


def _miner_words(ev: ProcessExec, words: tuple[str, ...]) -> tuple[str, ...]:
    """The ``words`` in ``ev``'s command line (its filename when it has none), ignoring case."""
    argv = ev.argv
    # " ".join(argv) is empty only for () and ("",): then the filename is the text.
    key: object = argv if len(argv) > 1 or (argv and argv[0]) else ev.filename
    cache = derived(words, "cmdlines", _new_cache)
    hit = cache.get(key)
    if hit is None:
        text = (argv_text(ev) or ev.filename).lower()
        hit = tuple(w for w, low in zip(words, derived(words, "lower", _lowered), strict=True) if low in text)
        if len(cache) >= WORDS_CACHE_ENTRIES:
            cache.clear()
        cache[key] = hit
    return hit


def evaluate(ev: ProcessExec | NetConnect | FlowWindow, state: DetectorState) -> Finding | None:
    s = state.settings
    if isinstance(ev, ProcessExec):
        words = list(_miner_words(ev, s.miner_words))
        if not words:
            return None
        return SPEC.finding(
            ev,
            f"{program_names(ev)[0]} looks like a cryptominer ({', '.join(words)})",
            {
                "comm": ev.comm,
                "filename": ev.filename,
                "argv": list(ev.argv),
                "matched": words,
                "uid": ev.uid,
            },
            subject=f"exec:{ev.filename}",
        )
    if isinstance(ev, NetConnect):
        if ev.op != "connect" or ev.dport not in derived(s.miner_ports, "set", frozenset):
            return None
        peer = f"{ev.daddr}:{ev.dport}"
        return SPEC.finding(
            ev,
            f"{ev.comm} connected to {peer}, a common mining-pool port",
            {"comm": ev.comm, "peer": peer, "daddr": ev.daddr, "dport": ev.dport, "protocol": ev.protocol},
            subject=f"connect:{peer}",
            severity=Severity.MEDIUM,
        )
    names = sorted(
        n
        for n in ev.dns_names
        if any(_dns_word(w, n.lower()) for w in s.miner_dns_words)
        and not path_matcher(s.miner_dns_ignore)(n.lower().rstrip("."))
    )
    if not names:
        return None
    ports = sorted(p for p in ev.dst_ports if p in s.miner_ports)
    return SPEC.finding(
        ev,
        f"DNS queries for mining pools: {', '.join(names[:5])}",
        {"dns_names": names, "pool_ports": ports, "peers": sorted(ev.peers)[:20]},
        subject="dns:" + ",".join(names),
    )


SPEC = Detector(
    id="RG-0012",
    name="cryptominer_stratum",
    events=(ProcessExec, NetConnect, FlowWindow),
    severity=Severity.HIGH,
    mitre="T1496",
    description="A command line with stratum+tcp://, xmrig, cpuminer, --donate-level …; DNS "
    "names of mining pools (pool., supportxmr, nanopool …); or a TCP connect to a common "
    "mining-pool port (medium).",
    false_positives="Allowed: DNS names where `pool` is only part of a label (db-pool.svc), the "
    "NTP pool (detectors.miner_dns_ignore). Medium: a bare connect to a pool port "
    "(3333/4444/5555/7777 …: also Metasploit labs, adb, game servers). Learned: nothing (not an "
    "exec-pair shape). Tuned: detectors.miner_ports, miner_words, miner_dns_words, "
    "miner_dns_ignore.",
    evaluate=evaluate,
)
