# SPDX-License-Identifier: Apache-2.0
"""Slow outputs behind a bounded queue: a webhook and an Elasticsearch ``_bulk`` endpoint.

``Shipper.offer`` never blocks: a full queue counts a drop (as falco's outputs queue does). One
daemon thread per shipper takes batches off the queue and sends them, retrying transient
failures (connection errors, timeouts, HTTP 429 and 5xx) with tenacity's exponential backoff, a
bounded number of times; permanent failures (other 4xx) and exhausted retries count what was
left of the batch as failed. A dead receiver therefore costs one retry cycle per batch, never
the caller's time. ``stop`` interrupts a backoff wait at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    stop_when_event_set,
    wait_exponential,
)

from agent.pipeline import BoundedQueue

log = structlog.get_logger("agent.outputs")


class RetryableError(Exception):
    """A send failed in a way that may succeed later."""


class PermanentError(Exception):
    """A send failed in a way retrying cannot fix (the receiver rejected the data)."""


class _Stopped(Exception):
    """The shipper was stopped during a backoff wait."""


RETRYABLE = (RetryableError, requests.RequestException, OSError)


def _check(resp: requests.Response, what: str) -> None:
    if resp.status_code == 429 or resp.status_code >= 500:
        raise RetryableError(f"{what}: HTTP {resp.status_code}")
    if resp.status_code >= 400:
        raise PermanentError(f"{what}: HTTP {resp.status_code} {resp.text[:200]}")


class Shipper:
    """A bounded queue drained by one thread that sends batches with retries and backoff."""

    def __init__(
        self,
        name: str,
        send: Callable[[list[Any]], None],
        *,
        queue_size: int,
        batch_size: int = 1,
        flush_seconds: float = 0.0,
        max_retries: int = 5,
        backoff_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
    ) -> None:
        self.name = name
        self._send = send
        self.queue: BoundedQueue[Any] = BoundedQueue(name, queue_size)
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.sent = 0
        self.failed = 0
        self.retries = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = 0

    @property
    def dropped(self) -> int:
        return sum(self.queue.dropped.values())

    def offer(self, item: Any) -> bool:
        """Queue ``item`` for sending; False (a counted drop) when the queue is full. Never blocks."""
        return self.queue.put(item, key=self.name)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"output-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def idle(self) -> bool:
        """True when nothing is queued or being sent (tests wait on this)."""
        return self.queue.qsize() == 0 and self._busy == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            first = self.queue.get(timeout=0.1)
            if first is None:
                continue
            self._busy = 1
            batch = [first]
            deadline = time.monotonic() + self.flush_seconds
            while len(batch) < self.batch_size:
                left = deadline - time.monotonic()
                item = self.queue.get(timeout=max(left, 0.001)) if left > 0 else self.queue.get(timeout=0.001)
                if item is None:
                    if left <= 0:
                        break
                    continue
                batch.append(item)
            try:
                self._deliver(batch)
            finally:
                self._busy = 0

    def _sleep(self, seconds: float) -> None:
        # Event.wait instead of time.sleep: stop() ends a long backoff immediately.
        if self._stop.wait(seconds):
            raise _Stopped

    def _count_retry(self, state: RetryCallState) -> None:
        self.retries += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]

    def _deliver(self, batch: list[Any]) -> None:
        """Send ``batch`` with bounded retries; a sender removes what it delivered from the list,
        so a retry never sends an item twice."""
        total = len(batch)
        retrying = Retrying(
            stop=stop_any(stop_after_attempt(self.max_retries + 1), stop_when_event_set(self._stop)),
            wait=wait_exponential(multiplier=self.backoff_seconds, max=self.backoff_max_seconds),
            retry=retry_if_exception_type(RETRYABLE),
            sleep=self._sleep,
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            retrying(self._send, batch)
        except (PermanentError, _Stopped, *RETRYABLE) as exc:
            if not isinstance(exc, _Stopped):
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        left = len(batch)
        self.sent += total - left
        if left:
            self.failed += left
            log.warning("output_send_failed", output=self.name, items=left, error=self.last_error)

    def status(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "retries": self.retries,
            "dropped": self.dropped,
            "queue_depth": self.queue.qsize(),
            "last_error": self.last_error,
        }


def _item_status(item: Any) -> int:
    """The HTTP status of one ``_bulk`` reply item (``{"create": {"status": 201, …}}``)."""
    if not isinstance(item, dict) or not item:
        return 0
    result = next(iter(item.values()))
    return int(result.get("status", 0)) if isinstance(result, dict) else 0


def _auth_header(scheme: str, path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    return {"Authorization": f"{scheme} {Path(path).read_text(encoding='utf-8').strip()}"}


class WebhookSender:
    """POST JSON to a URL: a batch as one JSON array (``array``), or each object in its own POST
    (Falcosidekick's schema); delivered items are removed from the batch list."""

    def __init__(self, url: str, timeout: float, token_file: Path | None = None, array: bool = False) -> None:
        self.url = url
        self.timeout = timeout
        self.array = array
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/json", "User-Agent": "riskguard-agent"})
        self.session.headers.update(_auth_header("Bearer", token_file))

    def _post(self, body: Any) -> None:
        resp = self.session.post(
            self.url, data=json.dumps(body, default=str).encode(), timeout=self.timeout, allow_redirects=False
        )
        _check(resp, f"POST {self.url}")

    def __call__(self, batch: list[Any]) -> None:
        if self.array and len(batch) > 1:
            self._post(batch)
            batch.clear()
            return
        while batch:
            self._post(batch[0])
            del batch[0]

    def close(self) -> None:
        self.session.close()


class BulkSender:
    """Index documents through Elasticsearch's ``_bulk`` API (NDJSON, ``create`` actions, so
    data streams accept them); a reply with ``errors: true`` counts the rejected items."""

    def __init__(
        self, base_url: str, index: str, timeout: float, api_key_file: Path | None = None, verify: bool = True
    ) -> None:
        self.url = base_url.rstrip("/") + "/_bulk"
        self.index = index
        self.timeout = timeout
        self.rejected = 0
        self.session = requests.Session()
        self.session.verify = verify
        self.session.headers.update({"Content-Type": "application/x-ndjson", "User-Agent": "riskguard-agent"})
        self.session.headers.update(_auth_header("ApiKey", api_key_file))

    def body(self, docs: list[Mapping[str, Any]]) -> bytes:
        head = json.dumps({"create": {"_index": self.index}})
        lines = []
        for d in docs:
            lines.append(head)
            lines.append(json.dumps(d, default=str, separators=(",", ":")))
        return ("\n".join(lines) + "\n").encode()

    def __call__(self, batch: list[Any]) -> None:
        resp = self.session.post(self.url, data=self.body(batch), timeout=self.timeout)
        _check(resp, f"POST {self.url}")
        batch.clear()  # the request was taken: rejected items are counted, not retried
        try:
            reply = resp.json()
        except ValueError:
            return
        if isinstance(reply, dict) and reply.get("errors"):
            bad = [it for it in reply.get("items") or [] if _item_status(it) >= 300]
            self.rejected += len(bad)
            log.warning("elasticsearch_items_rejected", count=len(bad))

    def close(self) -> None:
        self.session.close()
