# SPDX-License-Identifier: Apache-2.0
"""Real containers writing real logs through Docker's json-file and local drivers, tailed by the
logs component: structured entries, a brute-force finding, restart without loss or repeat,
rotation, and hostile content."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import LogEntry
from agent.findings import Finding
from agent.logs.component import LogsComponent, build
from agent.wiring import attach
from tests.support import wait_for

CONFIG = {"logs": {"poll_seconds": 3600, "cri": False, "rate_limit_lines_per_second": 0}}


class Harness:
    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.entries: list[LogEntry] = []
        self.findings: list[Finding] = []
        ctx.events.subscribe(self.entries.append, kind=LogEntry)
        ctx.findings.subscribe(self.findings.append)
        ctx.events.start()
        ctx.findings.start()
        self.comps: list[LogsComponent] = []

    def component(self) -> LogsComponent:
        self.ctx.control_methods.clear()
        comp = build(self.ctx)
        assert comp is not None
        attach(self.ctx, comp)  # started and subscribed to the buses as the daemon wires it
        self.comps.append(comp)
        return comp

    def poll(self, comp: LogsComponent) -> None:
        comp.poll_once()
        self.ctx.events.drain()
        self.ctx.findings.drain()

    def lines_of(self, container_id: str) -> list[LogEntry]:
        return [e for e in self.entries if e.container and e.container.id == container_id]


@pytest.fixture
def harness(make_ctx: Callable[..., AgentContext]) -> Iterator[Harness]:
    h = Harness(make_ctx(config=AgentConfig.model_validate(CONFIG)))
    yield h
    for c in h.comps:
        c.stop()


def start(
    run_container: Callable[..., Any], container_record: Callable[[Any], Any], h: Harness, script: str, **kw: Any
) -> Any:
    c = run_container("sh", "-c", script, **kw)
    h.ctx.registry.upsert(container_record(c))
    return c


AUTH = (
    'i=0; while [ $i -lt 6 ]; do echo "Failed password for root from 10.66.0.9 port $((4000+i)) ssh2"; '
    'i=$((i+1)); done; echo "Accepted password for root from 10.66.0.9 port 4100 ssh2"; '
)


def test_httpd_and_auth_lines_structured_and_brute_force_found(
    harness: Harness, run_container: Callable[..., Any], container_record: Callable[[Any], Any]
) -> None:
    c = start(run_container, container_record, harness, "httpd -f -vv -p 8080 -h /var/www & " + AUTH + "sleep 600")
    comp = harness.component()
    wait_for(lambda: c.exec_run("wget -q -O /dev/null http://127.0.0.1:8080/").exit_code == 0, 10, 0.2, "httpd up")
    c.exec_run("wget -q -O /dev/null http://127.0.0.1:8080/nope")

    def done() -> bool:
        harness.poll(comp)
        st = {e.fields.get("status") for e in harness.lines_of(c.id)}
        return {200, 404} <= st and any(f.detector_id == "RG-LOG-0001" for f in harness.findings)

    wait_for(done, 20, 0.2, "httpd entries and the brute-force finding")
    entries = harness.lines_of(c.id)
    ok = [e for e in entries if e.fields.get("status") == 200]
    assert ok[0].pattern == "BUSYBOXHTTPD" and ok[0].fields["path"] == "/" and ok[0].stream == "stderr"
    assert ok[0].fields["client_ip"].endswith("127.0.0.1") and ok[0].template_id > 0
    nf = [e for e in entries if e.fields.get("status") == 404]
    assert nf[0].fields["path"] == "/nope"
    auth = [e for e in entries if e.fields.get("auth_outcome")]
    assert len(auth) == 7 and all(e.fields["client_ip"] == "10.66.0.9" for e in auth)
    f = next(f for f in harness.findings if f.detector_id == "RG-LOG-0001")
    assert f.container is not None and f.container.id == c.id
    assert f.mitre == "T1110" and str(f.source) == "logs" and len(f.evidence["lines"]) >= 6


def numbers(entries: list[LogEntry], tag: str) -> list[int]:
    rx = re.compile(rf"^{tag} (\d+)")
    return [int(m.group(1)) for e in entries if (m := rx.match(e.line))]


def test_restart_mid_stream_loses_and_repeats_nothing(
    harness: Harness, run_container: Callable[..., Any], container_record: Callable[[Any], Any]
) -> None:
    n = 1500
    c = start(
        run_container,
        container_record,
        harness,
        f'i=0; while [ $i -lt {n} ]; do echo "seq $i"; i=$((i+1)); usleep 1500; done; sleep 600',
    )
    first = harness.component()
    wait_for(lambda: (harness.poll(first), len(harness.lines_of(c.id)) > 100)[1], 20, 0.1, "first lines")
    first.stop()
    seen_by_first = len(harness.lines_of(c.id))
    time.sleep(0.5)  # lines written while no agent runs
    second = harness.component()
    wait_for(
        lambda: (harness.poll(second), f"seq {n - 1}" in {e.line for e in harness.lines_of(c.id)})[1],
        60,
        0.2,
        "last line",
    )
    got = numbers(harness.lines_of(c.id), "seq")
    assert seen_by_first < n
    assert got == list(range(n)), f"lost {sorted(set(range(n)) - set(got))[:5]} repeated {len(got) - len(set(got))}"


def test_rotation_by_json_file_max_size(
    harness: Harness, run_container: Callable[..., Any], container_record: Callable[[Any], Any]
) -> None:
    n = 1200
    pad = "x" * 60
    # The lines start once the tailer follows the file (the test touches /tmp/go): three 16 KiB
    # files hold about 370 lines, so a tailer started late on a loaded machine would find the
    # first ones deleted by the runtime before it ever saw them (lines no tailer can read).
    c = start(
        run_container,
        container_record,
        harness,
        "while [ ! -e /tmp/go ]; do usleep 20000; done; "
        f'i=0; while [ $i -lt {n} ]; do echo "rot $i {pad}"; i=$((i+1)); usleep 2000; done; sleep 600',
        log_config={"type": "json-file", "config": {"max-size": "16k", "max-file": "3"}},
    )
    comp = harness.component()
    harness.poll(comp)
    assert c.exec_run("touch /tmp/go").exit_code == 0

    def done() -> bool:
        harness.poll(comp)
        got = numbers(harness.lines_of(c.id), "rot")
        return bool(got) and got[-1] == n - 1

    wait_for(done, 90, 0.03, "last rotated line")
    got = numbers(harness.lines_of(c.id), "rot")
    assert got == list(range(n))
    totals = comp.tailers.stats()["totals"]
    assert totals["rotations"] >= 5, totals


def test_local_driver_and_hostile_content(
    harness: Harness, run_container: Callable[..., Any], container_record: Callable[[Any], Any]
) -> None:
    script = (
        "printf '\\033[31mred\\033[0m text\\n'; printf 'bad \\377\\376 utf8\\n'; "
        'echo \'{"event":"container_frozen","level":"critical","container_id":"host","msg":"pwn"}\'; '
        "head -c 10485760 /dev/zero | tr '\\0' A; echo; echo after-big; sleep 600"
    )
    for driver in ("local", "json-file"):
        c = start(run_container, container_record, harness, script, log_config={"type": driver, "config": {}})
        comp = harness.component()
        wait_for(
            lambda c=c, comp=comp: (harness.poll(comp), any(e.line == "after-big" for e in harness.lines_of(c.id)))[1],
            60,
            0.2,
            f"{driver}: line after the 10 MB line",
        )
        entries = harness.lines_of(c.id)
        assert [e.line for e in entries][:2] == ["red text", "bad \ufffd\ufffd utf8"], driver
        js = entries[2]
        assert js.pattern == "JSON" and js.fields["event"] == "container_frozen" and js.fields["message"] == "pwn"
        big = entries[3]
        assert set(big.line) == {"A"} and len(big.line) == 16384, driver
        assert [e.line for e in entries][4:] == ["after-big"], driver
        totals = comp.tailers.stats()["per_log"]
        mine = next(v for k, v in totals.items() if k.startswith(c.id))
        assert mine["truncated"] == 1, (driver, mine)
        comp.stop()
        harness.comps.remove(comp)


def test_scanner_404_burst_against_busybox_httpd(
    harness: Harness, run_container: Callable[..., Any], container_record: Callable[[Any], Any]
) -> None:
    c = start(run_container, container_record, harness, "httpd -f -vv -p 8080 -h /var/www; sleep 600")
    comp = harness.component()
    wait_for(lambda: c.exec_run("wget -q -O /dev/null http://127.0.0.1:8080/").exit_code == 0, 10, 0.2, "httpd up")
    scan = "i=0; while [ $i -lt 25 ]; do wget -q -O /dev/null http://127.0.0.1:8080/probe-$i.php; i=$((i+1)); done"
    c.exec_run(["sh", "-c", scan])

    def found() -> Finding | None:
        harness.poll(comp)
        return next((f for f in harness.findings if f.detector_id == "RG-LOG-0004"), None)

    f = wait_for(found, 20, 0.2, "the scanner finding")
    assert isinstance(f, Finding) and f.container is not None and f.container.id == c.id
    assert f.mitre == "T1595.003" and f.evidence["actor"].endswith("127.0.0.1")
    answered = [e for e in harness.lines_of(c.id) if e.fields.get("status") == 404]
    assert len({e.fields["url_path"] for e in answered}) >= 15
