# SPDX-License-Identifier: Apache-2.0
"""What the outputs cost the detection path: per-finding latency of ``findings.process``.

Configurations, interleaved over 5 rounds of 2000 findings each:
  baseline   the findings bus with no outputs subscribed
  alerts     alerts JSON-lines file (+ ECS file)
  webhook    alerts file + webhook to a live local receiver
  dead       alerts file + webhook to a receiver that accepts TCP but never answers
The point: ``dead`` must cost the same as ``webhook`` (the queue never makes detection wait).

Run: .venv/bin/python scripts/bench/outputs_emit.py
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import structlog

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import ContainerRef, Event
from agent.findings import Finding, Severity, Source
from agent.hostfs import HostPaths
from agent.outputs.component import Outputs
from agent.pipeline import Bus
from agent.runtime.model import ContainerRegistry
from agent.settings.outputs import EcsSettings, MetricsSettings, OutputsSettings, WebhookSettings
from agent.store import Store
from agent.wiring import attach

N = 2000
ROUNDS = 5
REF = ContainerRef(id="d" * 64, name="web", image="nginx:1.25.3")


class _Ok(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()


def run(tmp: Path, name: str, settings: OutputsSettings | None) -> list[float]:
    ctx = AgentContext(
        config=AgentConfig(outputs=settings or OutputsSettings()),
        paths=HostPaths().with_state(tmp / name, run=tmp / name / "run"),
        store=Store(tmp / name / "agent.db"),
        registry=ContainerRegistry(),
        events=Bus[Event]("events"),
        findings=Bus[Finding]("findings"),
    )
    out = None
    if settings is not None:
        out = Outputs(ctx, settings)
        attach(ctx, out)  # started and subscribed to the findings bus as the agent wires it
    lat = []
    try:
        for i in range(N):
            f = Finding(
                container=REF,
                source=Source.RULE,
                detector_id="RG-0001",
                severity=Severity.HIGH,
                summary=f"finding {i}",
                evidence={"argv": ["/bin/sh", "-i"], "n": i},
                mitre="T1059.004",
            )
            t0 = time.perf_counter()
            ctx.findings.process(f)
            lat.append(time.perf_counter() - t0)
    finally:
        if out is not None:
            out.stop()
        ctx.store.close()
    return lat


def main() -> int:
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # keep log I/O out of it
    live = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    live.daemon_threads = True
    threading.Thread(target=live.serve_forever, daemon=True).start()
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(1024)
    live_url = f"http://127.0.0.1:{live.server_address[1]}/hook"
    dead_url = f"http://127.0.0.1:{dead.getsockname()[1]}/hook"
    results: dict[str, list[float]] = {k: [] for k in ("baseline", "alerts", "webhook", "dead")}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for r in range(ROUNDS):
            for name in results:
                base = tmp / f"{name}-{r}"
                off = MetricsSettings(enabled=False)
                settings = {
                    "baseline": None,
                    "alerts": OutputsSettings(
                        alerts_file=base / "alerts.jsonl", ecs=EcsSettings(file=base / "ecs.jsonl"), metrics=off
                    ),
                    "webhook": OutputsSettings(
                        alerts_file=base / "alerts.jsonl", webhook=WebhookSettings(url=live_url), metrics=off
                    ),
                    "dead": OutputsSettings(
                        alerts_file=base / "alerts.jsonl",
                        webhook=WebhookSettings(url=dead_url, timeout_seconds=1, queue_size=100),
                        metrics=off,
                    ),
                }[name]
                results[name] += run(tmp, f"{name}-{r}", settings)
    live.shutdown()
    dead.close()

    def q(v: list[float], p: float) -> float:
        return statistics.quantiles(v, n=100)[int(p) - 1] * 1e6 if p < 100 else max(v) * 1e6

    base50 = statistics.median(results["baseline"]) * 1e6
    print(f"per-finding latency of findings.process, {ROUNDS} interleaved rounds x {N} findings")
    print(f"{'config':10} {'p50 us':>9} {'p99 us':>9} {'p50 / baseline':>15}")
    for name, v in results.items():
        p50 = statistics.median(v) * 1e6
        print(f"{name:10} {p50:9.1f} {q(v, 99):9.1f} {p50 / base50:15.1f}")
    dead50 = statistics.median(results["dead"])
    live50 = statistics.median(results["webhook"])
    print(f"dead / live webhook p50 ratio: {dead50 / live50:.2f} (≈1: a dead receiver never slows detection)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
