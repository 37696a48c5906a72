# SPDX-License-Identifier: Apache-2.0
"""A local HTTP consumer that accepts exactly what Falcosidekick's ``/`` endpoint accepts.

It mirrors falcosidekick's ``mainHandler``/``newFalcoPayload`` (handlers.go) and the
``FalcoPayload`` type (types/types.go): a POST whose JSON body decodes into ``uuid``, ``output``,
``priority``, ``rule``, ``time``, ``output_fields``, ``source``, ``tags``, ``hostname`` with Go's
types (strings, an RFC 3339 time, a map, a list of strings), a non-empty ``output`` and ``rule``,
and a priority Sidekick knows (case-insensitive). Anything else gets 400 "Please send a valid
request body", as Sidekick answers.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# types.Priority: the names Sidekick parses (anything else becomes Default and is refused).
PRIORITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "informational", "info", "debug")
# Go's time.Time JSON decoding: RFC 3339 with an optional fraction of up to 9 digits.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_STRING_FIELDS = ("uuid", "output", "priority", "rule", "source", "hostname")


def problems(body: Any) -> list[str]:
    """Why Sidekick would refuse ``body`` (empty when it accepts it)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    out = [f"{k} is not a string" for k in _STRING_FIELDS if k in body and not isinstance(body[k], str)]
    if not body.get("output"):
        out.append("output is empty")
    if not body.get("rule"):
        out.append("rule is empty")
    if str(body.get("priority", "")).lower() not in PRIORITIES:
        out.append(f"unknown priority {body.get('priority')!r}")
    t = body.get("time")
    if not isinstance(t, str) or not _RFC3339.match(t):
        out.append(f"time {t!r} is not RFC 3339")
    else:
        dt.datetime.fromisoformat(re.sub(r"\.(\d{1,6})\d*", r".\1", t).replace("Z", "+00:00"))
    fields = body.get("output_fields")
    if not isinstance(fields, dict) or not fields:
        out.append("output_fields is not a non-empty object")
    elif any(isinstance(v, (dict, list)) for v in fields.values()):
        out.append("output_fields holds nested values")
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
        out.append("tags is not a list of strings")
    return out


class Sidekick:
    """What the consumer accepted and refused."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.refused: list[tuple[Any, list[str]]] = []
        self.url = ""
        self._cond = threading.Condition()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.accepted) + len(self.refused) >= count, timeout)


@contextmanager
def sidekick() -> Iterator[Sidekick]:
    """A Sidekick-like consumer on a free loopback port."""
    state = Sidekick()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
                why = problems(body)
            except ValueError as exc:
                body, why = raw, [f"invalid JSON: {exc}"]
            with state._cond:
                (state.refused.append((body, why)) if why else state.accepted.append(body))
                state._cond.notify_all()
            self.send_response(400 if why else 200)
            self.end_headers()
            self.wfile.write(b"Please send a valid request body\n" if why else b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}/"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
