# SPDX-License-Identifier: Apache-2.0
"""RG-0002 on captured /proc trees: which writes below /etc are configuration (entrypoint hooks,
package installs, cron jobs), which are identity or persistence, which reads are secrets; each
benign case next to its attack twin; learned paths lower it, never for an interactive shell
or a secret read by an ordinary program."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.behavior.allowances import Allowances
from agent.detectors.component import evaluate_all
from agent.detectors.lineage_allowances import AllowanceReview
from agent.detectors.registry import BY_ID
from agent.detectors.spec import DetectorState
from agent.events import FileOpen, ProcessExec
from agent.findings import Finding, Severity
from agent.settings.behavior import BehaviorSettings
from agent.store import Store
from tests.unit.detectors.test_lineage import HOST_TREE, INIT, C, Proc, capture, exec_ev

RULE = BY_ID["RG-0002"]
SHIM = 5
T_INIT = 1000.0 + INIT  # exec_ev's time of the init's exec
ENTRYPOINT = exec_ev(INIT, SHIM, "/docker-entrypoint.sh", ("/docker-entrypoint.sh", "nginx"))
HOOK = exec_ev(60, INIT, "/docker-entrypoint.d/20-check.sh", ("/docker-entrypoint.d/20-check.sh",))
LOOP = exec_ev(INIT, SHIM, "/app/loop.sh", ("/app/loop.sh",))
SESSION = exec_ev(90, SHIM, "/bin/busybox", ("sh",), parent_comm="containerd-shim")  # docker exec -i c sh
APT = [
    exec_ev(80, INIT, "/usr/bin/apt-get", ("apt-get", "install", "-y", "/tmp/app.deb")),
    exec_ev(81, 80, "/usr/bin/dpkg", ("/usr/bin/dpkg", "--status-fd", "33", "--configure", "app")),
    exec_ev(82, 81, "/bin/sh", ("/bin/sh", "/var/lib/dpkg/info/app.postinst", "configure")),
    exec_ev(83, 82, "/usr/sbin/useradd", ("useradd", "--system", "app")),
]


def opened(
    pid: int, path: str, *, write: bool = False, ts: float = T_INIT + 30, comm: str = "", ppid: int = 0, ret: int = 3
) -> FileOpen:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC if write else os.O_RDONLY
    return FileOpen(
        ts=ts,
        pid=pid,
        cgroup_id=7,
        container=C,
        comm=comm or "sh",
        path=path,
        flags=flags,
        write=write,
        ret=ret,
        ppid=ppid,
    )


@dataclass(frozen=True)
class OpenCase:
    name: str
    execs: list[ProcessExec]
    event: FileOpen
    severity: Severity | None  # None: no finding
    klass: str = ""
    context: str = ""
    always: bool = False
    mitre: str = ""
    procs: list[Proc] = field(default_factory=lambda: HOST_TREE[:2])


def _at(ev: ProcessExec, ts: float) -> ProcessExec:
    return ProcessExec(**{**{k: getattr(ev, k) for k in ev.__dataclass_fields__}, "ts": ts})


CASES = [
    # --- the container's start-up: an nginx-style entrypoint and its hooks --------------------
    OpenCase(
        "hook-sed-writes-nginx-config",
        [
            ENTRYPOINT,
            HOOK,
            exec_ev(61, 60, "/bin/busybox", ("sed", "-i", "s/80/8080/", "/etc/nginx/conf.d/default.conf")),
        ],
        opened(61, "/etc/nginx/conf.d/default.conf", write=True, comm="sed"),
        None,
    ),
    OpenCase(
        # `echo … > /etc/app.conf` in a hook: the hook's fork opens it and is gone at once
        "hook-redirect-from-a-gone-fork",
        [ENTRYPOINT, HOOK],
        opened(62, "/etc/app.conf", write=True, comm="20-check.sh", ppid=60),
        None,
    ),
    OpenCase(
        "entrypoint-adds-its-user-at-start",
        [ENTRYPOINT],
        opened(INIT, "/etc/passwd", write=True, comm="docker-entrypoi"),
        Severity.MEDIUM,
        "identity",
        "startup",
        mitre="T1136.001",
    ),
    OpenCase(
        # the twin: the same write once start-up is over (a script loop still running as pid 1)
        "script-loop-adds-a-user-after-start-up",
        [LOOP, exec_ev(40, INIT, "/bin/sh", ("sh", "/app/job.sh"))],
        opened(40, "/etc/passwd", write=True, ts=T_INIT + 600),
        Severity.HIGH,
        "identity",
        mitre="T1136.001",
    ),
    OpenCase(
        # a server the entrypoint started breaks the start-up chain, even early
        "web-shell-writes-ld-so-preload-early",
        [
            ENTRYPOINT,
            exec_ev(70, INIT, "/usr/sbin/httpd", ("httpd", "-f")),
            exec_ev(71, 70, "/bin/sh", ("sh", "-c", "echo /tmp/x.so > /etc/ld.so.preload")),
        ],
        opened(71, "/etc/ld.so.preload", write=True),
        Severity.HIGH,
        "identity",
        mitre="T1574.006",
    ),
    OpenCase(
        "web-shell-writes-config-early",
        [
            ENTRYPOINT,
            exec_ev(70, INIT, "/usr/sbin/httpd", ("httpd", "-f")),
            exec_ev(71, 70, "/bin/sh", ("sh", "-c", "echo x > /etc/app.conf")),
        ],
        opened(71, "/etc/app.conf", write=True),
        Severity.LOW,
        "config",
    ),
    # --- package installs (apt-get install ./app.deb at start, or later by an operator) -------
    OpenCase(
        "dpkg-writes-package-config",
        [ENTRYPOINT, *APT[:2]],
        opened(81, "/etc/app/app.conf", write=True, comm="dpkg", ts=T_INIT + 900),
        None,
    ),
    OpenCase(
        "postinst-useradd-writes-passwd",
        [ENTRYPOINT, *APT],
        opened(83, "/etc/passwd", write=True, comm="useradd", ts=T_INIT + 900),
        Severity.MEDIUM,
        "identity",
        "package_manager",
    ),
    OpenCase(
        "postinst-useradd-reads-shadow",
        [ENTRYPOINT, *APT],
        opened(83, "/etc/shadow", comm="useradd", ts=T_INIT + 900),
        Severity.LOW,
        "secret",
        "package_manager",
    ),
    OpenCase(
        # debconf's frontend (a perl script) reads /etc/shadow during apt-get install
        "debconf-perl-below-apt-get-reads-shadow",
        [
            ENTRYPOINT,
            APT[0],
            exec_ev(84, 80, "/usr/sbin/dpkg-preconfigure", ("/usr/bin/perl", "-w", "/usr/sbin/dpkg-preconfigure")),
        ],
        opened(84, "/etc/shadow", comm="dpkg-preconfigu", ts=T_INIT + 900),
        Severity.MEDIUM,
        "secret",
        "package_manager",
    ),
    OpenCase(
        # the same shell ran apt-get before: apt-get is not an ancestor of cat
        "interactive-apt-get-then-cat-shadow",
        [
            ENTRYPOINT,
            SESSION,
            exec_ev(94, 90, "/usr/bin/apt-get", ("apt-get", "install", "-y", "/tmp/app.deb")),
            exec_ev(95, 90, "/bin/busybox", ("cat", "/etc/shadow")),
        ],
        opened(95, "/etc/shadow", comm="cat", ts=T_INIT + 900),
        Severity.HIGH,
        "secret",
        "interactive",
        always=True,
    ),
    # --- busybox crond ------------------------------------------------------------------------
    OpenCase(
        "cron-job-writes-config",
        [
            ENTRYPOINT,
            exec_ev(50, INIT, "/bin/busybox", ("crond", "-f")),
            exec_ev(51, 50, "/bin/sh", ("sh", "-c", "date > /etc/motd")),
        ],
        opened(51, "/etc/motd", write=True, ts=T_INIT + 900),
        None,
    ),
    # --- applications at run time -------------------------------------------------------------
    OpenCase(
        "python-app-writes-its-config",
        [ENTRYPOINT, exec_ev(74, INIT, "/app/server.py", ("/app/server.py",))],
        opened(74, "/etc/app/state.conf", write=True, comm="server.py", ts=T_INIT + 900),
        Severity.LOW,
        "config",
        mitre="T1565.001",
    ),
    OpenCase(
        "python-app-reads-a-private-key",
        [ENTRYPOINT, exec_ev(74, INIT, "/app/server.py", ("/app/server.py",))],
        opened(74, "/root/.ssh/id_ed25519", comm="server.py", ts=T_INIT + 900),
        Severity.HIGH,
        "secret",
        always=True,
        mitre="T1552.004",
    ),
    OpenCase(
        "sshd-reads-authorized-keys",
        [ENTRYPOINT, exec_ev(75, INIT, "/usr/sbin/sshd", ("sshd", "-D"))],
        opened(75, "/root/.ssh/authorized_keys", comm="sshd", ts=T_INIT + 900),
        None,
    ),
    # --- docker exec: maintenance and an attacker's shell --------------------------------------
    OpenCase(
        "docker-exec-sh-c-writes-config",
        [ENTRYPOINT, exec_ev(91, SHIM, "/bin/sh", ("sh", "-c", "echo x > /etc/rg.conf"))],
        opened(91, "/etc/rg.conf", write=True, ts=T_INIT + 900),
        Severity.LOW,
        "config",
    ),
    OpenCase(
        "operator-su-reads-shadow",
        [ENTRYPOINT, SESSION, exec_ev(92, 90, "/bin/busybox", ("su", "-", "app"))],
        opened(92, "/etc/shadow", comm="su", ts=T_INIT + 900),
        Severity.MEDIUM,
        "secret",
        "interactive",
    ),
    OpenCase(
        "interactive-cat-shadow",
        [ENTRYPOINT, SESSION, exec_ev(93, 90, "/bin/busybox", ("cat", "/etc/shadow"))],
        opened(93, "/etc/shadow", comm="cat", ts=T_INIT + 900),
        Severity.HIGH,
        "secret",
        "interactive",
        always=True,
        mitre="T1003.008",
    ),
    OpenCase(
        "interactive-echo-appends-passwd",
        [ENTRYPOINT, SESSION],
        opened(90, "/etc/passwd", write=True, ts=T_INIT + 900),
        Severity.HIGH,
        "identity",
        "interactive",
        always=True,
        mitre="T1136.001",
    ),
    OpenCase(
        # even during start-up: the session is not below the entrypoint
        "interactive-cron-persistence-early",
        [ENTRYPOINT, SESSION],
        opened(90, "/etc/crontabs/root", write=True),
        Severity.HIGH,
        "identity",
        "interactive",
        always=True,
        mitre="T1053.003",
    ),
    OpenCase(
        "interactive-edits-resolv-conf",
        [ENTRYPOINT, SESSION],
        opened(90, "/etc/resolv.conf", write=True, ts=T_INIT + 900),
        Severity.MEDIUM,
        "config",
        "interactive",
    ),
    OpenCase(
        "interactive-failed-shadow-write",
        [ENTRYPOINT, SESSION],
        opened(90, "/etc/shadow", write=True, ts=T_INIT + 900, ret=-13),
        Severity.MEDIUM,
        "identity",
        "interactive",
        always=True,
    ),
]


def _state(tmp_path: Path, procs: list[Proc]) -> DetectorState:
    st = DetectorState()
    st.lineage.paths = capture(tmp_path, procs)
    st.init_pid = st.lineage.init_pid = lambda _c: INIT
    st.started_at = lambda _c: T_INIT  # the registry's start time of the container
    return st


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rg0002_on_lineage(tmp_path: Path, case: OpenCase) -> None:
    st = _state(tmp_path, case.procs)
    for ev in case.execs:
        st.remember_exec(ev)
    f = RULE.evaluate(case.event, st)
    if case.severity is None:
        assert f is None, f.summary if f else ""
        return
    assert f is not None, case.name
    assert f.severity == case.severity, f.summary
    assert f.evidence["class"] == case.klass and f.evidence["context"] == case.context, f.evidence
    assert bool(f.evidence.get("always")) is case.always
    assert f.evidence["path"] == case.event.path and f.evidence["subject"].endswith(case.event.path)
    if case.mitre:
        assert f.mitre == case.mitre
    assert f.evidence["lineage"][0]["pid"] == case.event.pid


def test_start_up_is_bounded_by_startup_seconds(tmp_path: Path) -> None:
    st = _state(tmp_path, HOST_TREE[:2])
    for ev in (ENTRYPOINT, HOOK):
        st.remember_exec(ev)
    hook_write = opened(60, "/etc/passwd", write=True)
    assert RULE.evaluate(hook_write, st) is not None
    f = RULE.evaluate(hook_write, st)
    assert f is not None and f.evidence["context"] == "startup" and f.severity == Severity.MEDIUM
    late = opened(60, "/etc/passwd", write=True, ts=T_INIT + st.settings.startup_seconds + 5)
    g = RULE.evaluate(late, st)
    assert g is not None and g.evidence["context"] == "" and g.severity == Severity.HIGH


# --- learned paths --------------------------------------------------------------------------
LEARN = 600.0
AFTER_START = T_INIT + 300  # past start-up (120 s), still learning (600 s from the first exec)


def _review(store: Store, tmp_path: Path) -> tuple[DetectorState, AllowanceReview]:
    st = _state(tmp_path, HOST_TREE[:2])
    allowances = Allowances(store, BehaviorSettings(learning_seconds=LEARN), refresh_seconds=0)
    return st, AllowanceReview(allowances, st)


def _run(st: DetectorState, review: AllowanceReview, execs: list[ProcessExec], ev: FileOpen) -> Finding | None:
    for e in execs:
        st.remember_exec(e)
        review.observe(e)
    f = RULE.evaluate(ev, st)
    out = review.review(RULE, ev, f) if f is not None else None  # reviewed, then observed: as the component does
    review.observe(ev)
    return out


def test_a_path_written_while_learning_is_low_afterwards(store: Store, tmp_path: Path) -> None:
    st, review = _review(store, tmp_path)
    app = [ENTRYPOINT, exec_ev(74, INIT, "/app/server.py", ("/app/server.py",))]
    # the image's app adds a user to /etc/passwd while the image learns (from its first exec)
    first = _run(st, review, app, opened(74, "/etc/passwd", write=True, ts=AFTER_START))
    assert first is not None and first.severity == Severity.MEDIUM  # an alert while learning
    assert first.evidence["allowance"]["state"] == "learning"
    assert first.evidence["allowance"]["severity_before"] == "high"
    later = T_INIT + LEARN + 10
    again = _run(st, review, [], opened(74, "/etc/passwd", write=True, ts=later))
    assert again is not None and again.severity == Severity.LOW
    assert again.evidence["allowance"]["kind"] == "path" and again.evidence["allowance"]["pattern"] == "/etc/passwd"
    # attack twins: an interactive shell writing the same file, and a secret read (even one seen
    # while learning), stay HIGH
    typed = _run(st, review, [SESSION], opened(90, "/etc/passwd", write=True, ts=later + 1))
    assert typed is not None and typed.severity == Severity.HIGH and "allowance" not in typed.evidence
    during = _run(st, review, [], opened(74, "/etc/shadow", comm="server.py", ts=AFTER_START + 1))
    assert during is not None and during.severity == Severity.HIGH and "allowance" not in during.evidence
    shadow = _run(st, review, [], opened(74, "/etc/shadow", comm="server.py", ts=later + 2))
    assert shadow is not None and shadow.severity == Severity.HIGH and "allowance" not in shadow.evidence


def test_an_unseen_path_keeps_its_severity(store: Store, tmp_path: Path) -> None:
    st, review = _review(store, tmp_path)
    app = [ENTRYPOINT, exec_ev(74, INIT, "/app/server.py", ("/app/server.py",))]
    _run(st, review, app, opened(74, "/etc/app.conf", write=True, ts=AFTER_START))
    f = _run(st, review, [], opened(74, "/etc/sudoers", write=True, ts=T_INIT + LEARN + 10))
    assert f is not None and f.severity == Severity.HIGH and f.mitre == "T1548.003"
    assert "allowance" not in f.evidence


# --- exec and file records arrive out of order ----------------------------------------------
def test_a_write_before_its_parents_exec_waits_for_it(tmp_path: Path) -> None:
    st = _state(tmp_path, HOST_TREE[:2])
    st.remember_exec(ENTRYPOINT)
    sed = exec_ev(61, 60, "/bin/busybox", ("sed", "-i", "s/a/b/", "/etc/app.conf"))
    st.remember_exec(sed)
    write = opened(61, "/etc/app.conf", write=True, comm="sed", ts=HOOK.ts + 0.01)
    assert RULE.evaluate(write, st) is None and not st.late  # the hook's exec is still queued
    st.remember_exec(HOOK)
    assert RULE.evaluate(HOOK, st) is None and st.take_late() == []  # start-up: silent
    # the attack twin: the missing parent turns out to be a web server
    st.remember_exec(exec_ev(71, 70, "/bin/busybox", ("sh", "-c", "echo x >> /etc/passwd")))
    attack = opened(71, "/etc/passwd", write=True, ts=T_INIT + 30)
    assert RULE.evaluate(attack, st) is None
    httpd = exec_ev(70, INIT, "/usr/sbin/httpd", ("httpd", "-f"))
    st.remember_exec(httpd)
    got = evaluate_all([RULE], httpd, st)
    assert [(f.evidence["path"], f.severity) for f in got] == [("/etc/passwd", Severity.HIGH)]
    assert got[0].ts == attack.ts


def test_a_deferred_write_is_judged_at_its_deadline(tmp_path: Path) -> None:
    st = _state(tmp_path, HOST_TREE[:2])
    st.remember_exec(ENTRYPOINT)
    st.remember_exec(exec_ev(61, 60, "/bin/busybox", ("sed", "-i", "s/a/b/", "/etc/app.conf")))
    write = opened(61, "/etc/passwd", write=True, comm="sed", ts=T_INIT + 30)
    assert RULE.evaluate(write, st) is None
    later = opened(SHIM, "/etc/hostname", ts=T_INIT + 30 + 2)  # any later event: not sensitive
    assert RULE.evaluate(later, st) is None
    (earlier, f) = st.take_late()[0]
    assert earlier is write and f.severity == Severity.HIGH and f.evidence["context"] == ""


def test_an_entrypoint_that_exec_d_its_server_is_judged_by_what_it_ran_before(tmp_path: Path) -> None:
    st = _state(tmp_path, HOST_TREE[:2])
    for ev in (
        ENTRYPOINT,
        HOOK,
        _at(exec_ev(INIT, SHIM, "/usr/sbin/httpd", ("httpd", "-f")), T_INIT + 40),
    ):
        st.remember_exec(ev)
    assert RULE.evaluate(opened(60, "/etc/nginx/conf.d/default.conf", write=True, ts=T_INIT + 30), st) is None
    # the twin: a child of the server (after the exec) writing below /etc
    st.remember_exec(_at(exec_ev(95, INIT, "/bin/sh", ("sh", "-c", "echo x > /etc/x.conf")), T_INIT + 50))
    f = RULE.evaluate(opened(95, "/etc/x.conf", write=True, ts=T_INIT + 51), st)
    assert f is not None and f.severity == Severity.LOW and f.evidence["context"] == ""
