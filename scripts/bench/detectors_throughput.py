# SPDX-License-Identifier: Apache-2.0
"""Rule-detector throughput: events/s through the detectors component vs a bare bus.

Both sides push the same recorded-shape event mix through ``Bus.process`` (the dispatcher's
own path) on one thread: the baseline bus has one no-op subscriber, the measured bus has the
detectors component with every rule, subscribed as ``agent.wiring`` subscribes it (once, for
``DetectorsComponent.kinds()``). Runs are interleaved, 5 of each (``--runs``), and the median
ratio is printed, with the rules' rate in the process's CPU time (less disturbed than wall time
by other work on a shared machine). A second mix where every event matches a rule measures
the finding path (repeat suppression included). Target: the rules keep up with the eBPF source's
50K events/s on one core.

    .venv/bin/python scripts/bench/detectors_throughput.py [--events 40000] [--runs 5]
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import time

import structlog

from agent.detectors.component import DetectorsComponent
from agent.detectors.registry import DETECTORS
from agent.detectors.spec import DetectorState
from agent.events import ContainerRef, Event, FileOpen, NetConnect, PrivilegeEvent, ProcessExec
from agent.findings import Finding
from agent.pipeline import Bus
from agent.settings.detectors import DetectorsSettings

CONTAINERS = [ContainerRef(id=f"{i:02d}" * 32, name=f"c{i}", image="app") for i in range(8)]


def benign_mix(n: int) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        c = CONTAINERS[i % len(CONTAINERS)]
        k = i % 10
        if k < 4:
            out.append(
                ProcessExec(
                    ts=float(i),
                    pid=1000 + i % 5000,
                    container=c,
                    ppid=900,
                    uid=33,
                    comm=("ls", "python3", "sh", "node")[i % 4],
                    filename=("/bin/ls", "/usr/bin/python3", "/bin/sh", "/usr/bin/node")[i % 4],
                    argv=("prog", "-l", "/srv/app", "--port", "8080"),
                    parent_comm=("sh", "bash", "containerd-shim", "sh")[i % 4],
                    stdio=("/dev/null", "pipe:[1]", "pipe:[2]"),
                )
            )
        elif k < 7:
            out.append(
                NetConnect(
                    ts=float(i),
                    pid=2000,
                    container=c,
                    op="connect",
                    comm="node",
                    family=socket.AF_INET,
                    protocol="tcp",
                    saddr="10.0.0.2",
                    sport=40000 + i % 20000,
                    daddr="10.0.0.9",
                    dport=(443, 5432, 6379)[i % 3],
                )
            )
        elif k < 9:
            out.append(
                FileOpen(ts=float(i), pid=3000, container=c, comm="app", path="/etc/hosts", flags=0, write=False)
            )
        else:
            out.append(
                PrivilegeEvent(ts=float(i), pid=4000, container=c, comm="nginx", syscall="setuid", args=(101,), uid=0)
            )
    return out


def malicious_mix(n: int) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        c = CONTAINERS[i % len(CONTAINERS)]
        if i % 2:
            out.append(
                FileOpen(ts=float(i), pid=3000, container=c, comm="cat", path="/etc/shadow", flags=0, write=False)
            )
        else:
            out.append(
                ProcessExec(
                    ts=float(i),
                    pid=5000,
                    container=c,
                    ppid=10,
                    uid=33,
                    comm="sh",
                    filename="/bin/sh",
                    argv=("sh", "-c", "id"),
                    parent_comm="httpd",
                )
            )
    return out


def run_baseline(events: list[Event]) -> float:
    bus: Bus[Event] = Bus("baseline")
    sink: list[Event] = []
    bus.subscribe(lambda e: sink.append(e) if e.pid < 0 else None)
    t0 = time.perf_counter()
    for e in events:
        bus.process(e)
    return time.perf_counter() - t0


class _Ctx:
    """The two things the component's event path uses of a context."""

    def __init__(self) -> None:
        self.found = 0

    def report(self, finding: Finding) -> bool:
        self.found += 1
        return True


def run_detectors(events: list[Event], cpu: list[float] | None = None) -> tuple[float, int]:
    bus: Bus[Event] = Bus("detectors")
    comp = DetectorsComponent(DetectorsSettings(), DETECTORS)
    ctx = _Ctx()
    comp._ctx = ctx  # type: ignore[assignment]  # the event path only calls ctx.report
    bus.subscribe(comp.handle, kind=comp.kinds(), name="detectors")  # as agent.wiring does
    c0 = time.process_time()
    t0 = time.perf_counter()
    for e in events:
        bus.process(e)
    wall = time.perf_counter() - t0
    if cpu is not None:  # this process's CPU time: what other work on the machine disturbs least
        cpu.append(time.process_time() - c0)
    return wall, ctx.found


def per_detector_ns(events: list[Event]) -> dict[str, float]:
    st = DetectorState()
    out = {}
    for d in DETECTORS:
        mine = [e for e in events if isinstance(e, d.events)]
        if not mine:
            continue
        t0 = time.perf_counter_ns()
        for e in mine:
            d.evaluate(e, st)
        out[d.id] = (time.perf_counter_ns() - t0) / len(mine)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=40000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    # One log line per finding would measure the console, not the rules.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for label, events in (("benign", benign_mix(a.events)), ("all-matching", malicious_mix(a.events))):
        base: list[float] = []
        det: list[float] = []
        cpu: list[float] = []
        found = 0
        run_baseline(events)  # warm-up
        run_detectors(events)
        for _ in range(a.runs):  # interleaved
            base.append(run_baseline(events))
            d, found = run_detectors(events, cpu)
            det.append(d)
        b_rate = a.events / statistics.median(base)
        d_rate = a.events / statistics.median(det)
        ratios = sorted(d / b for d, b in zip(det, base, strict=True))
        print(f"mix={label} events={a.events} runs={a.runs}")
        print(f"  bare bus:         {b_rate:>10,.0f} events/s (median)")
        rules = f"with {len(DETECTORS)} rules:"
        print(f"  {rules:<18}{d_rate:>10,.0f} events/s (median), findings reported in last run: {found}")
        c_med = statistics.median(cpu)
        c_us = c_med / a.events * 1e6
        print(f"  CPU time:         {a.events / c_med:>10,.0f} events/s (median), {c_us:.2f} us/event")
        med = statistics.median(ratios)
        print(f"  time ratio rules/bare: median {med:.2f}x (min {ratios[0]:.2f}, max {ratios[-1]:.2f})")
        print(f"  rules cost per event: {(statistics.median(det) - statistics.median(base)) / a.events * 1e6:.2f} us")
    print("per-detector evaluate cost on the benign mix (ns per event of its types):")
    for did, ns in per_detector_ns(benign_mix(a.events)).items():
        print(f"  {did}: {ns:,.0f} ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
