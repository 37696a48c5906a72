# SPDX-License-Identifier: Apache-2.0
"""One container's hostile log lines (a JSON value nested 100,000 deep, lone surrogates) cost
neither its own later lines nor another container's findings, and nothing downstream fails on
them (the findings table stores every finding)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import LogEntry
from agent.findings import Finding
from agent.logs.component import LogsComponent, build
from agent.response.records import Records
from agent.wiring import attach
from tests.support import wait_for

CONFIG = {"logs": {"poll_seconds": 3600, "cri": False, "rate_limit_lines_per_second": 0}}

# Container A: a 100,000-deep JSON line (capped to 16 KiB by the tailer, still ~16K deep), a
# 5,000-deep one that fits whole, then a brute force whose client address carries a lone
# surrogate escape, then a marker.
HOSTILE = r"""
printf '{"x":'; head -c 100000 /dev/zero | tr '\0' '['; head -c 100000 /dev/zero | tr '\0' ']'; printf '}\n'
printf '{"y":'; head -c 5000 /dev/zero | tr '\0' '{' | sed 's/{/{"a":/g'; printf 1
head -c 5000 /dev/zero | tr '\0' '}'; printf '}\n'
i=0; while [ $i -lt 6 ]; do
  printf '%s' '{"client_ip":"10.66.0.\udfff",'
  printf '%s\n' "\"msg\":\"Failed password for root from 10.66.0.7 port $((4000+i)) ssh2\"}"
  i=$((i+1))
done
printf '%s\n' '{"client_ip":"10.66.0.\udfff","msg":"Accepted password for root from 10.66.0.7 port 4100 ssh2"}'
echo hostile-done
sleep 600
"""
SCAN = "i=0; while [ $i -lt 25 ]; do wget -q -O /dev/null http://127.0.0.1:8080/probe-$i.php; i=$((i+1)); done"


@pytest.fixture
def ctx(make_ctx: Callable[..., AgentContext]) -> Iterator[AgentContext]:
    c = make_ctx(config=AgentConfig.model_validate(CONFIG))
    yield c


def test_hostile_container_blinds_neither_itself_nor_its_neighbour(
    ctx: AgentContext, run_container: Callable[..., Any], container_record: Callable[[Any], Any]
) -> None:
    entries: list[LogEntry] = []
    findings: list[Finding] = []
    records = Records(ctx.store)
    ctx.events.subscribe(entries.append, kind=LogEntry, name="entries")
    ctx.findings.subscribe(lambda f: records.save_finding(f, None), name="records")  # sqlite: UTF-8 only
    ctx.findings.subscribe(findings.append, name="sink")
    ctx.events.start()
    ctx.findings.start()

    hostile = run_container("sh", "-c", HOSTILE)
    web = run_container("sh", "-c", "httpd -f -vv -p 8080 -h /var/www; sleep 600")
    for c in (hostile, web):
        ctx.registry.upsert(container_record(c))
    wait_for(lambda: b"hostile-done" in hostile.logs(), 30, 0.2, "the hostile container's lines")
    wait_for(lambda: web.exec_run("wget -q -O /dev/null http://127.0.0.1:8080/").exit_code == 0, 10, 0.2, "httpd")
    assert web.exec_run(["sh", "-c", SCAN]).output.count(b"404 Not Found") == 25
    # dockerd writes the log asynchronously: wait until both logs hold every line, so that the
    # first poll reads both containers in one batch (the batch one hostile line used to lose).
    wait_for(lambda: web.logs().count(b"response:404") >= 25, 10, 0.1, "the scanned server's 404 lines")

    comp: LogsComponent | None = build(ctx)
    assert comp is not None
    attach(ctx, comp)  # subscribed exactly as the agent does
    try:
        comp.poll_once()  # both containers' lines in one batch
        assert ctx.events.drain(10) and ctx.findings.drain(10)

        def both() -> bool:
            comp.poll_once()
            ctx.events.drain(10)
            ctx.findings.drain(10)
            return {"RG-LOG-0001", "RG-LOG-0004"} <= {f.detector_id for f in findings}

        wait_for(both, 10, 0.2, "the findings of both containers")
        by = {f.detector_id: f for f in findings}
        scan = by.get("RG-LOG-0004")
        assert scan is not None and scan.container is not None and scan.container.id == web.id, findings
        brute = by.get("RG-LOG-0001")
        assert brute is not None and brute.container is not None and brute.container.id == hostile.id
        assert brute.evidence["actor"] == "10.66.0.\ufffd"

        mine = [e for e in entries if e.container and e.container.id == hostile.id]
        lines = [e.line for e in mine]
        assert lines[-1] == "hostile-done" and len(lines) == 2 + 7 + 1, lines[:3]
        deep = mine[:2]
        assert all(e.pattern != "JSON" for e in deep)  # refused as JSON, kept as text
        assert all(e.fields.get("client_ip") == "10.66.0.\ufffd" for e in mine[2:9])

        status = comp.status()
        assert status["malformed"].get("json_too_deep") == 2, status["malformed"]
        assert ctx.events.stats.errors == {} and ctx.findings.stats.errors == {}
        stored = {r.detector_id for r in records.findings(limit=50)}
        assert {"RG-LOG-0001", "RG-LOG-0004"} <= stored
    finally:
        comp.stop()
