# SPDX-License-Identifier: Apache-2.0
"""Table tests of the anti-forensics and discovery rules: RG-0016 (log and history clearing),
RG-0017 (timestomp), RG-0018 (process discovery); the runner is in sequence_cases.py."""

from __future__ import annotations

import os

import pytest

from agent.detectors.spec import DetectorState
from agent.events import Event, ProcessExec
from agent.findings import Severity
from agent.settings.detectors import DetectorsSettings
from tests.unit.detectors.sequence_cases import (
    RULES,
    RUNC,
    SESSION,
    TRUNC,
    C,
    Case,
    change,
    check,
    exe,
    fopen,
    run,
    session,
)
from tests.unit.detectors.test_post_exploitation import CASES as PIPE_CASES

CASES = [
    # --- RG-0016: log and history clearing ---------------------------------------------------
    Case(
        "rm-var-log-from-session",
        [*session(), exe(401, SESSION, "rm", "/var/log/messages"), change(401, "unlink", "/var/log/messages")],
        "RG-0016",
        {"mitre": "T1070.002", "kind": "log", "action": "deleted", "severity": Severity.HIGH},
    ),
    Case(
        "rm-history-from-session",
        [*session(), exe(401, SESSION, "rm", "/root/.ash_history"), change(401, "unlink", "/root/.ash_history")],
        "RG-0016",
        {"mitre": "T1070.003", "kind": "history"},
    ),
    Case(
        "change-before-exec",  # the files ring delivered the unlink before the exec ring the exec
        [*session(), change(401, "unlink", "/var/log/auth.log"), exe(401, SESSION, "rm", "/var/log/auth.log")],
        "RG-0016",
        {"path": "/var/log/auth.log"},
    ),
    Case(
        "rm-in-ash-fork-without-exec",  # busybox ash runs rm in its fork: no exec, comm "rm"
        [*session(), change(401, "unlink", "/var/log/messages", comm="rm", ppid=SESSION)],
        "RG-0016",
        {"path": "/var/log/messages"},
    ),
    Case(
        "rm-in-fork-of-a-cron-script",
        [
            exe(10, 1, "crond", "-f", ts=900.0),
            exe(11, 10, "sh", "-c", "/app/clean.sh"),
            exe(12, 11, "sh", "/app/clean.sh"),
            change(13, "unlink", "/var/log/app.log", comm="rm", ppid=12),
        ],
        None,
    ),
    Case(
        "touch-in-ash-fork-without-exec",
        [*session(), change(501, "utimes", "/bin/busybox-copy", explicit=True, comm="touch", ppid=SESSION)],
        "RG-0017",
        {"severity": Severity.HIGH, "program": "touch"},
    ),
    Case(
        "mv-log-away",
        [
            *session(),
            exe(401, SESSION, "mv", "/var/log/auth.log", "/tmp/a"),
            change(401, "rename", "/var/log/auth.log", "/tmp/a"),
        ],
        "RG-0016",
        {"action": "moved to /tmp/a"},
    ),
    Case(
        "replace-log",
        [
            *session(),
            exe(401, SESSION, "mv", "/tmp/clean", "/var/log/auth.log"),
            change(401, "rename", "/tmp/clean", "/var/log/auth.log"),
        ],
        "RG-0016",
        {"path": "/var/log/auth.log"},
    ),
    Case(
        "truncate-log-by-redirect",  # `: > /var/log/messages` typed in the session: the shell opens it
        [*session(), fopen(SESSION, "/var/log/messages", TRUNC)],
        "RG-0016",
        {"action": "truncated", "op": "open_truncate"},
    ),
    Case(
        "nested-shell-in-session",  # sh -c 'rm ...' typed in the session: the session is still above
        [
            *session(),
            exe(401, SESSION, "sh", "-c", "rm -f /var/log/*"),
            exe(402, 401, "rm", "-f", "/var/log/x.log"),
            change(402, "unlink", "/var/log/x.log"),
        ],
        "RG-0016",
    ),
    Case(
        "cron-rotation",  # crond -> sh -c 'mv …; rm ….7.gz'
        [
            exe(10, 1, "crond", "-f", ts=900.0),
            exe(11, 10, "sh", "-c", "rotate"),
            exe(12, 11, "mv", "/var/log/app.log", "/var/log/app.log.1"),
            change(12, "rename", "/var/log/app.log", "/var/log/app.log.1"),
            exe(13, 11, "rm", "/var/log/app.log"),
            change(13, "unlink", "/var/log/app.log"),
        ],
        None,
    ),
    Case(
        "rotation-names-by-hand",  # even from a session, renaming to rotated names is rotation
        [
            *session(),
            exe(401, SESSION, "mv", "/var/log/app.log", "/var/log/app.log-20261202"),
            change(401, "rename", "/var/log/app.log", "/var/log/app.log-20261202"),
            exe(402, SESSION, "rm", "/var/log/app.log.7.gz"),
            change(402, "unlink", "/var/log/app.log.7.gz"),
        ],
        None,
    ),
    Case(
        "savelog-from-session",
        [
            *session(),
            exe(401, SESSION, "sh", "/usr/bin/savelog", "/var/log/app.log"),
            exe(402, 401, "rm", "-f", "/var/log/app.log"),
            change(402, "unlink", "/var/log/app.log"),
        ],
        None,
    ),
    Case(
        "app-script-rm-own-log",  # sh /app/run.sh -> rm: no interactive shell above
        [
            exe(20, 1, "sh", "/app/run.sh", ts=900.0),
            exe(21, 20, "rm", "/var/log/app/old.log"),
            change(21, "unlink", "/var/log/app/old.log"),
        ],
        None,
    ),
    Case(
        "bash-saves-history",
        [
            *session(),
            exe(401, SESSION, "bash", filename="/bin/bash"),
            fopen(401, "/root/.bash_history", TRUNC, comm="bash"),
        ],
        None,
    ),
    Case(
        "psql-saves-history",
        [
            *session(),
            exe(401, SESSION, "psql", filename="/usr/bin/psql"),
            fopen(401, "/root/.psql_history", TRUNC, comm="psql"),
        ],
        None,
    ),
    Case(
        "python-saves-history",
        [*session(), exe(401, SESSION, "python3.11"), fopen(401, "/root/.python_history", TRUNC, comm="python3.11")],
        None,
    ),
    Case(
        "cp-dev-null-over-history",
        [
            *session(),
            exe(401, SESSION, "cp", "/dev/null", "/root/.bash_history"),
            fopen(401, "/root/.bash_history", TRUNC),
        ],
        "RG-0016",
        {"action": "truncated", "mitre": "T1070.003"},
    ),
    Case(
        "ash-saves-history",
        [*session(), change(SESSION, "rename", "/root/.ash_history.100", "/root/.ash_history")],
        None,
    ),
    Case("append-to-log", [*session(), fopen(SESSION, "/var/log/messages", os.O_WRONLY | os.O_APPEND)], None),
    Case(
        "rm-other-file",
        [*session(), exe(401, SESSION, "rm", "/root/notes"), change(401, "unlink", "/root/notes")],
        None,
    ),
    # --- RG-0017: timestomping --------------------------------------------------------------
    Case(
        "touch-d-bin",
        [
            *session(),
            exe(501, SESSION, "touch", "-d", "2020-01-01", "/bin/ls"),
            change(501, "utimes", "/bin/ls", explicit=True),
        ],
        "RG-0017",
        {"severity": Severity.HIGH, "mitre": "T1070.006", "interactive": True},
    ),
    Case(
        "touch-r-by-script",  # touch is a time setter whoever runs it
        [
            exe(20, 1, "sh", "/app/run.sh", ts=900.0),
            exe(501, 20, "touch", "-r", "/bin/sh", "/usr/bin/x"),
            change(501, "utimes", "/usr/bin/x", explicit=True),
        ],
        "RG-0017",
        {"severity": Severity.HIGH, "interactive": False},
    ),
    Case(
        "touch-r-by-a-cron-job",  # a scheduler's job: medium, not high
        [
            exe(10, 1, "crond", "-f", ts=900.0),
            exe(11, 10, "sh", "-c", "touch -r /etc/hostname /etc/motd"),
            exe(501, 11, "touch", "-r", "/etc/hostname", "/etc/motd"),
            change(501, "utimes", "/etc/motd", explicit=True),
        ],
        "RG-0017",
        {"severity": Severity.MEDIUM, "routine": True},
    ),
    Case(
        "tar-preserves-times",
        [
            exe(20, 1, "sh", "/app/run.sh", ts=900.0),
            exe(501, 20, "tar", "-xf", "/tmp/a.tar", "-C", "/usr/local"),
            change(501, "utimes", "/usr/local/bin/x", explicit=True),
        ],
        "RG-0017",
        {"severity": Severity.MEDIUM},
    ),
    Case(
        "touch-new-file",
        [*session(), exe(501, SESSION, "touch", "/etc/newfile"), change(501, "utimes", "/etc/newfile")],
        None,
    ),
    Case(
        "touch-d-outside-system",
        [
            *session(),
            exe(501, SESSION, "touch", "-d", "2020-01-01", "/tmp/x"),
            change(501, "utimes", "/tmp/x", explicit=True),
        ],
        None,
    ),
    Case(
        "apk-restores-times",
        [
            exe(30, 1, "apk", "add", "/tmp/x.apk", ts=900.0, filename="/sbin/apk"),
            change(30, "utimes", "/usr/bin/x", explicit=True, comm="apk"),
        ],
        None,
    ),
    # --- RG-0018: process discovery ---------------------------------------------------------
    Case(
        "ps-reads-cmdlines",
        [
            *session(),
            exe(601, SESSION, "ps"),
            *(fopen(601, f"/proc/{p}/cmdline", ts=1000.1 + p / 100) for p in (1, 7, 9)),
        ],
        "RG-0018",
        {"severity": Severity.MEDIUM, "mitre": "T1057", "count": 2, "file": "cmdline"},
    ),
    Case(
        "environ-harvest",
        [
            *session(),
            exe(601, SESSION, "cat"),
            *(fopen(601, f"/proc/{p}/environ", ts=1000.1 + p / 100) for p in (1, 7, 9)),
        ],
        "RG-0018",
        {"severity": Severity.HIGH, "file": "environ"},
    ),
    Case(
        "healthcheck-pgrep-is-low",  # HEALTHCHECK CMD-SHELL: runc -> sh -c -> pgrep, every 2 s
        [
            exe(RUNC, 80, "runc", "init", ts=999.0, filename="/usr/bin/runc"),
            exe(602, RUNC, "sh", "-c", "pgrep httpd", ts=999.5, filename="/bin/sh"),
            exe(603, 602, "pgrep", "httpd"),
            *(fopen(603, f"/proc/{p}/cmdline", ts=1000.1 + p / 100) for p in (1, 7, 9)),
        ],
        "RG-0018",
        {"severity": Severity.LOW, "context": "runtime_exec"},
    ),
    Case(
        "docker-exec-ps-is-low",
        [
            exe(RUNC, 80, "runc", "init", ts=999.0, filename="/usr/bin/runc"),
            exe(604, RUNC, "ps"),
            *(fopen(604, f"/proc/{p}/cmdline", ts=1000.1 + p / 100) for p in (1, 7, 9)),
        ],
        "RG-0018",
        {"severity": Severity.LOW, "context": "runtime_exec"},
    ),
    Case(
        "cron-job-pgrep-is-low",
        [
            exe(10, 1, "crond", "-f", ts=900.0),
            exe(11, 10, "sh", "-c", "pgrep httpd || httpd"),
            exe(12, 11, "pgrep", "httpd"),
            *(fopen(12, f"/proc/{p}/cmdline", ts=1000.1 + p / 100) for p in (1, 7, 9)),
        ],
        "RG-0018",
        {"severity": Severity.LOW, "context": "scheduler"},
    ),
    Case(
        "web-app-shell-runs-ps",  # the attack twin: an application's shell is not routine
        [
            exe(20, 1, "httpd", "-f", ts=900.0),
            exe(21, 20, "sh", "-c", "ps"),
            exe(22, 21, "ps"),
            *(fopen(22, f"/proc/{p}/cmdline", ts=1000.1 + p / 100) for p in (1, 7, 9)),
        ],
        "RG-0018",
        {"severity": Severity.MEDIUM, "context": ""},
    ),
    Case(
        "healthcheck-environ-stays-high",
        [
            exe(RUNC, 80, "runc", "init", ts=999.0, filename="/usr/bin/runc"),
            exe(605, RUNC, "cat", "/proc/1/environ", "/proc/7/environ"),
            *(fopen(605, f"/proc/{p}/environ", ts=1000.1 + p / 100) for p in (1, 7)),
        ],
        "RG-0018",
        {"severity": Severity.HIGH, "file": "environ"},
    ),
    Case("one-cmdline", [*session(), exe(601, SESSION, "cat"), fopen(601, "/proc/1/cmdline")], None),
    Case(
        "same-pid-thrice",
        [*session(), exe(601, SESSION, "cat"), *(fopen(601, "/proc/1/cmdline", ts=1000.1 + i) for i in range(3))],
        None,
    ),
    Case(
        "slow-reads",
        [
            *session(),
            exe(601, SESSION, "pgrep"),
            *(fopen(601, f"/proc/{p}/cmdline", ts=1000 + p * 10) for p in (1, 2, 3)),
        ],
        None,
    ),
    Case(
        "self-cmdline",
        [
            *session(),
            exe(601, SESSION, "cat"),
            *(fopen(601, "/proc/self/cmdline", ts=1000.1 + i / 10) for i in range(5)),
        ],
        None,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_file_rules_table(case: Case) -> None:
    check(case)


def test_every_new_rule_has_positive_and_benign_cases() -> None:
    every = [*CASES, *PIPE_CASES]
    for rid in RULES:
        hits = [c for c in every if c.expect == rid]
        assert hits, rid
    assert sum(1 for c in every if c.expect is None) >= 20


def test_proc_scan_fires_once_per_burst() -> None:
    events: list[Event] = [*session(), exe(601, SESSION, "ps")]
    events += [fopen(601, f"/proc/{p}/cmdline", ts=1000.1 + p / 1000) for p in range(1, 40)]
    assert [f.detector_id for f in run(events)] == ["RG-0018"]


def test_thresholds_follow_settings() -> None:
    st = DetectorState(settings=DetectorsSettings(proc_scan_min_pids=4))
    events: list[Event] = [*session(), exe(601, SESSION, "ps")]
    events += [fopen(601, f"/proc/{p}/cmdline", ts=1000.1 + p / 100) for p in (1, 7, 9)]
    assert run(events, st) == []
    wide = DetectorState(settings=DetectorsSettings(pipe_pair_seconds=20))
    far = [*session(), exe(202, SESSION, "nc", "h", "4444", ts=1000.0), exe(201, SESSION, "sh", ts=1010.0)]
    assert [f.detector_id for f in run(far, wide)] == ["RG-0014"]


def test_fork_without_exec_is_named_by_its_comm() -> None:
    # /proc of busybox ash's rm fork still shows the shell's cmdline ("sh"); its comm is "rm".
    from agent.detectors.lineage import ProcInfo

    st = DetectorState(settings=DetectorsSettings())
    for ev in session():
        assert isinstance(ev, ProcessExec)
        st.remember_exec(ev)
    st.lineage.procs[(C.id, 401)] = ProcInfo(401, SESSION, "/bin/busybox", "", "sh", ("sh",), "shell", source="proc")
    found = run([change(401, "unlink", "/root/.ash_history", comm="rm", ppid=SESSION)], st)
    assert [f.detector_id for f in found] == ["RG-0016"]
    f = found[0]
    assert f.evidence["lineage"][0]["program"] == "rm"
    assert f.evidence["lineage"][1]["pid"] == SESSION
    assert "by rm from an interactive shell (pid 100)" in f.summary


def test_touch_by_the_entrypoints_hook_is_medium_and_from_a_session_high() -> None:
    st = DetectorState(settings=DetectorsSettings())
    st.init_pid = lambda _c: 10
    st.started_at = lambda _c: 995.0
    hook = [
        exe(10, 5, "sh", "/docker-entrypoint.sh", ts=995.0, filename="/bin/sh"),
        exe(11, 10, "sh", "/docker-entrypoint.d/30-times.sh", ts=996.0, filename="/bin/sh"),
        exe(501, 11, "touch", "-r", "/etc/nginx/nginx.conf", "/etc/nginx/conf.d/default.conf"),
        change(501, "utimes", "/etc/nginx/conf.d/default.conf", explicit=True),
    ]
    (f,) = run(hook, st)
    assert f.severity is Severity.MEDIUM and f.evidence["routine"] is True
    typed = [
        *session(),
        exe(502, SESSION, "touch", "-r", "/bin/sh", "/etc/x"),
        change(502, "utimes", "/etc/x", explicit=True),
    ]
    (g,) = run(typed, st)
    assert g.severity is Severity.HIGH and g.evidence["interactive"] is True
