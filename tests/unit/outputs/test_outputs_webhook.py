# SPDX-License-Identifier: Apache-2.0
"""Webhook and Elasticsearch ``_bulk`` outputs against local HTTP receivers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import ContainerRef
from agent.findings import Action, ActionResult, Finding, Severity, Source
from agent.outputs.component import Outputs, build
from agent.settings.outputs import EcsSettings, MetricsSettings, OutputsSettings, WebhookSettings
from agent.wiring import attach
from tests.fakes.http_receiver import Received, dead_endpoint, receiver
from tests.support import wait_for

WEB = ContainerRef(id="b" * 64, name="api", image="registry.local/shop/api:2.1")


def finding(n: int = 0) -> Finding:
    return Finding(
        container=WEB,
        source=Source.NETWORK,
        detector_id="net-seq",
        severity=Severity.MEDIUM,
        summary=f"abnormal request sequence {n}",
        evidence={"n": n},
    )


@contextmanager
def running(make_ctx: Callable[..., AgentContext], tmp_path: Path, **kw: Any) -> Iterator[Outputs]:
    settings = OutputsSettings(alerts_file=None, metrics=MetricsSettings(enabled=False), **kw)
    ctx = make_ctx(AgentConfig(outputs=settings))
    out = build(ctx)
    attach(ctx, out)
    try:
        yield out
    finally:
        out.stop()


def test_webhook_retries_with_backoff_until_delivered(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("hook-secret\n")
    with receiver(script=[500, 503]) as rcv:
        hook = WebhookSettings(url=rcv.url + "/hook", backoff_seconds=0.05, max_retries=3, token_file=token)
        with running(make_ctx, tmp_path, webhook=hook) as out:
            f = finding()
            started = time.monotonic()
            out.emit_finding(f)
            assert rcv.wait_for(3, timeout=5)
            elapsed = time.monotonic() - started
            assert out.webhook is not None
            wait_for(lambda: out.webhook is not None and out.webhook.sent == 1, timeout=5, what="webhook sent")
            st = out.webhook.status()
            assert (st["sent"], st["retries"], st["failed"], st["dropped"]) == (1, 2, 0, 0)
    # The same object three times: two failures, then accepted.
    bodies = [r.json() for r in rcv.requests]
    assert len(bodies) == 3 and all(b == bodies[0] for b in bodies)
    assert bodies[0]["id"] == f.id and bodies[0]["container_name"] == "api" and bodies[0]["severity"] == "medium"
    assert all(r.path == "/hook" for r in rcv.requests)
    assert rcv.requests[0].headers["authorization"] == "Bearer hook-secret"
    assert rcv.requests[0].headers["content-type"] == "application/json"
    # Backoff: 0.05 s then 0.1 s between attempts.
    assert elapsed >= 0.15


def test_webhook_does_not_retry_a_rejection(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    with receiver(default=400) as rcv:
        hook = WebhookSettings(url=rcv.url, backoff_seconds=0.05, max_retries=3)
        with running(make_ctx, tmp_path, webhook=hook) as out:
            out.emit_finding(finding())
            wait_for(lambda: out.webhook is not None and out.webhook.failed == 1, timeout=5, what="rejection")
            assert out.webhook is not None and out.webhook.retries == 0
    assert len(rcv.requests) == 1


def test_a_failing_webhook_gives_up_after_its_retries_per_batch(
    make_ctx: Callable[..., AgentContext], tmp_path: Path
) -> None:
    # Always 503: each batch is tried 1 + max_retries times with growing waits, then counted as
    # failed; the next batch gets its own bounded cycle (no endless retry, no resend of a batch).
    with receiver(default=503) as rcv:
        hook = WebhookSettings(url=rcv.url, backoff_seconds=0.05, max_retries=2, batch_size=10, flush_seconds=0.2)
        with running(make_ctx, tmp_path, webhook=hook) as out:
            for n in range(3):
                out.emit_finding(finding(n))
            wait_for(lambda: out.webhook is not None and out.webhook.failed == 3, timeout=10, what="give-up")
            assert out.webhook is not None
            st = out.webhook.status()
            assert (st["sent"], st["retries"]) == (0, 2) and "503" in st["last_error"]
            out.emit_finding(finding(3))
            wait_for(lambda: out.webhook is not None and out.webhook.failed == 4, timeout=10, what="second batch")
    assert len(rcv.requests) == 6  # two batches x (1 + 2 retries)
    assert [len(r.json()) for r in rcv.requests[:3]] == [3, 3, 3]  # the same batch of three, as one array


def test_dead_webhook_drops_into_a_bounded_queue_and_never_blocks(
    make_ctx: Callable[..., AgentContext], tmp_path: Path
) -> None:
    with dead_endpoint() as url:
        hook = WebhookSettings(url=url, timeout_seconds=0.5, max_retries=10, backoff_seconds=0.2, queue_size=5)
        with running(make_ctx, tmp_path, webhook=hook) as out:
            started = time.monotonic()
            for n in range(200):
                out.ctx.findings.process(finding(n))  # the detection path, synchronously
            elapsed = time.monotonic() - started
            assert out.webhook is not None
            st = out.webhook.status()
            # One batch in flight (hanging on the dead receiver), five queued, the rest dropped.
            assert st["queue_depth"] <= 5
            assert st["dropped"] >= 200 - 5 - hook.batch_size  # one batch in flight
            assert st["sent"] == 0
            stop_started = time.monotonic()
        stop_elapsed = time.monotonic() - stop_started
    # 200 findings through the detection path while the receiver hangs: no waiting on it.
    assert elapsed < 1.0, f"detection blocked for {elapsed:.2f}s"
    assert stop_elapsed < 3.0


def test_elasticsearch_bulk_gets_ecs_documents(make_ctx: Callable[..., AgentContext], tmp_path: Path) -> None:
    def bulk_reply(req: Received) -> dict[str, Any]:
        n = len(req.body.splitlines()) // 2
        items = [{"create": {"_index": "x", "status": 201}} for _ in range(n)]
        items[-1] = {"create": {"_index": "x", "status": 400, "error": {"type": "mapper_parsing_exception"}}}
        return {"took": 1, "errors": True, "items": items}

    with receiver(reply=bulk_reply) as rcv:
        ecs = EcsSettings(elasticsearch_url=rcv.url, index="logs-riskguard.alerts-test", flush_seconds=0.2)
        with running(make_ctx, tmp_path, ecs=ecs) as out:
            for n in range(3):
                out.emit_finding(finding(n))
            out.emit_action(ActionResult(action=Action.QUARANTINE, container_id=WEB.id, ok=False, detail="no netns"))
            assert out.elastic is not None
            wait_for(lambda: out.elastic is not None and out.elastic.sent == 4, timeout=5, what="bulk sent")
            sender = out._senders[0]
            assert sender.rejected == 1
    [req] = rcv.requests  # one batch
    assert req.path == "/_bulk"
    assert req.headers["content-type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in req.body.decode().splitlines()]
    actions, docs = rows[0::2], rows[1::2]
    assert actions == [{"create": {"_index": "logs-riskguard.alerts-test"}}] * 4
    assert [d["event"]["kind"] for d in docs] == ["alert", "alert", "alert", "event"]
    assert docs[0]["container"]["image"] == {"name": "registry.local/shop/api", "tag": ["2.1"]}
    assert docs[3]["event"]["action"] == "quarantine" and docs[3]["event"]["outcome"] == "failure"
