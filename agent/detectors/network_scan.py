# SPDX-License-Identifier: Apache-2.0
"""RG-0013: network service discovery from inside a container (a port scan or a host sweep).

From the eBPF connect events: attempts to ``detectors.scan_min_targets`` distinct ports of one
host, or distinct hosts on one port, within ``detectors.scan_window_seconds`` (the component
keeps each container's recent connect attempts); it fires when a burst crosses the threshold.
From packet capture: a flow window whose
distinct destination ports reach the same threshold with most SYNs unanswered.
"""

from __future__ import annotations

from collections.abc import Collection

from agent.detectors.spec import Detector, DetectorState, container_key
from agent.events import FlowWindow, NetConnect
from agent.findings import Finding, Severity


def _from_connects(ev: NetConnect, state: DetectorState) -> Finding | None:
    s = state.settings
    since = ev.ts - s.scan_window_seconds
    # Fire when this event is the target that brings a burst to the threshold (each event adds
    # at most one), not on every later connect while the window still holds the burst. The
    # counts are kept on insert (``agent.detectors.connects``): no walk of the window. Dropping
    # the attempts older than the window here drops what ``remember_connect`` drops right after.
    recent = state.connects.get(container_key(ev))
    if recent is None:
        return _judge(ev, state, (), ())
    recent.expire(since)
    ports, hosts = recent.targets(ev.daddr, ev.dport, since)
    return _judge(ev, state, ports, hosts)


def _judge(ev: NetConnect, state: DetectorState, ports: Collection[int], hosts: Collection[str]) -> Finding | None:
    s = state.settings
    if ev.dport not in ports and len(ports) + 1 == s.scan_min_targets:
        all_ports = sorted([*ports, ev.dport])
        n = len(all_ports)
        return SPEC.finding(
            ev,
            f"{ev.comm} probed {n} ports of {ev.daddr} within {s.scan_window_seconds:g}s",
            {"comm": ev.comm, "kind": "port_scan", "target": ev.daddr, "ports": all_ports, "count": n},
            subject=f"scan:{ev.daddr}",
        )
    if ev.daddr not in hosts and len(hosts) + 1 == s.scan_min_targets:
        all_hosts = sorted([*hosts, ev.daddr])
        n = len(all_hosts)
        return SPEC.finding(
            ev,
            f"{ev.comm} probed port {ev.dport} on {n} hosts within {s.scan_window_seconds:g}s",
            {"comm": ev.comm, "kind": "host_sweep", "port": ev.dport, "hosts": all_hosts, "count": n},
            subject=f"sweep:{ev.dport}",
        )
    return None


def evaluate(ev: NetConnect | FlowWindow, state: DetectorState) -> Finding | None:
    if isinstance(ev, NetConnect):
        if ev.op != "connect" or not ev.daddr:
            return None
        return _from_connects(ev, state)
    s = state.settings
    if len(ev.dst_ports) < s.scan_min_targets or ev.syn_sent == 0 or ev.syn_unanswered * 2 < ev.syn_sent:
        return None
    return SPEC.finding(
        ev,
        f"{len(ev.dst_ports)} destination ports in one window, {ev.syn_unanswered}/{ev.syn_sent} SYNs unanswered",
        {
            "kind": "port_scan",
            "ports": sorted(ev.dst_ports)[:64],
            "peers": sorted(ev.peers)[:20],
            "syn_sent": ev.syn_sent,
            "syn_unanswered": ev.syn_unanswered,
        },
        subject="scan:flows",
    )


SPEC = Detector(
    id="RG-0013",
    name="network_scan",
    events=(NetConnect, FlowWindow),
    severity=Severity.HIGH,
    mitre="T1046",
    description="Connect attempts to detectors.scan_min_targets distinct ports of one host (or "
    "hosts on one port) within detectors.scan_window_seconds; or a captured flow window with "
    "that many destination ports and most SYNs unanswered.",
    false_positives="Allowed by default: fewer than detectors.scan_min_targets (20) distinct "
    "ports of one host or hosts on one port within scan_window_seconds (a HEALTHCHECK every 2 s "
    "is one target; a client of a few backends is a handful). Learned: nothing. Tuned: "
    "scan_min_targets, scan_window_seconds; disable RG-0013 for service-discovery sidecars and "
    "load-test tools that fan out on purpose.",
    evaluate=evaluate,
)
