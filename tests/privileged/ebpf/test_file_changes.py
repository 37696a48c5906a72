# SPDX-License-Identifier: Apache-2.0
"""File changes anti-forensics makes (unlink, rename, explicit timestamps), process discovery
through /proc/<pid>/cmdline|environ, and process exits, from real commands in a real busybox
container; each with its benign twin that must stay silent.

Every command runs in a shell in the container (``docker exec sh -c`` plays a session that
outlives the command, as an interactive shell does). A benign twin is checked after an event
the same session caused arrives (the exit of its process), so "nothing came" is not a race.
"""

from __future__ import annotations

from agent.events import FileChange, FileOpen, ProcessExec, ProcessExit
from tests.privileged.ebpf.harness import Agent


def _run(agent: Agent, *argv: str) -> ProcessExit:
    """Run ``argv`` in ``a`` (docker exec) and wait for the exec and the exit of that process:
    every record it caused has been read by then."""
    agent.exec_a(*argv)
    ex = agent.wait(ProcessExec, lambda e: e.argv == argv, f"exec of {argv}")[-1]
    return agent.wait(ProcessExit, lambda e: e.pid == ex.pid and e.ts >= ex.ts, f"exit of {argv}")[0]


def _changes(agent: Agent, path: str) -> list[FileChange]:
    return agent.of(FileChange, lambda e: path in (e.path, e.new_path))


def test_rm_of_a_log_file_is_reported_and_rm_in_tmp_is_not(agent: Agent) -> None:
    agent.exec_a("sh", "-c", "echo x > /var/log/rg-a.log; echo y > /tmp/rg-a.tmp")
    agent.exec_a("rm", "/var/log/rg-a.log")
    ev = agent.wait(FileChange, lambda e: e.path == "/var/log/rg-a.log", "unlink of /var/log/rg-a.log")[0]
    assert ev.op == "unlink" and ev.ret == 0 and ev.comm == "rm"
    assert ev.cgroup_id == agent.ra.cgroup_id and not ev.explicit_times
    # The benign twin: the same rm in /tmp is filtered in the kernel.
    _run(agent, "rm", "/tmp/rg-a.tmp")
    assert _changes(agent, "/tmp/rg-a.tmp") == []


def test_relative_rm_is_resolved_against_the_shell_cwd(agent: Agent) -> None:
    # rm (a busybox applet forked by the shell) is gone when its record is read: the path is
    # resolved against its parent's cwd, the shell's.
    agent.exec_a("sh", "-c", "cd /var/log && echo x > rg-rel.log && rm rg-rel.log; sleep 0.5")
    ev = agent.wait(FileChange, lambda e: e.path == "/var/log/rg-rel.log", "relative unlink in /var/log")[0]
    assert ev.op == "unlink" and ev.ret == 0 and ev.comm == "rm"
    # Relative in /tmp: let through by the kernel, resolved and dropped in user space.
    before = agent.source.status()["changes_filtered"]
    _run(agent, "sh", "-c", "cd /tmp && echo x > rg-rel.tmp && rm rg-rel.tmp; sleep 0.5")
    assert agent.of(FileChange, lambda e: e.path.endswith("rg-rel.tmp")) == []
    assert agent.source.status()["changes_filtered"] > before


def test_history_files_are_watched_by_name_anywhere(agent: Agent) -> None:
    # unset HISTFILE; rm ~/.ash_history (here in /tmp, so only the name selects it)
    agent.exec_a("sh", "-c", "mkdir -p /tmp/rgh && echo ls > /tmp/rgh/.ash_history && rm /tmp/rgh/.ash_history")
    ev = agent.wait(FileChange, lambda e: e.path == "/tmp/rgh/.ash_history", "unlink of a history file")[0]
    assert ev.op == "unlink" and ev.ret == 0


def test_mv_of_a_log_and_into_a_watched_place(agent: Agent) -> None:
    agent.exec_a("sh", "-c", "echo x > /var/log/rg-mv.log && mv /var/log/rg-mv.log /var/log/rg-mv.old")
    ev = agent.wait(FileChange, lambda e: e.path == "/var/log/rg-mv.log", "rename in /var/log")[0]
    assert ev.op == "rename" and ev.new_path == "/var/log/rg-mv.old" and ev.ret == 0
    # Moving over a history file from /tmp: selected by the new path.
    agent.exec_a("sh", "-c", "echo x > /tmp/rg-empty && mv /tmp/rg-empty /root/.ash_history")
    ev = agent.wait(FileChange, lambda e: e.new_path == "/root/.ash_history", "rename onto a history file")[0]
    assert ev.path == "/tmp/rg-empty" and ev.op == "rename"
    # The benign twin: a rename within /tmp.
    _run(agent, "sh", "-c", "echo x > /tmp/rg-mv1 && mv /tmp/rg-mv1 /tmp/rg-mv2")
    assert _changes(agent, "/tmp/rg-mv1") == []


def test_touch_with_explicit_times_is_reported_and_plain_touch_is_not(agent: Agent) -> None:
    agent.exec_a("sh", "-c", "echo x > /tmp/rg-t1 && echo x > /tmp/rg-t2 && echo x > /tmp/rg-t3")
    agent.exec_a("touch", "-d", "2020-01-01 00:00:00", "/tmp/rg-t1")
    ev = agent.wait(FileChange, lambda e: e.path == "/tmp/rg-t1", "touch -d")[0]
    assert ev.op == "utimes" and ev.explicit_times and ev.ret == 0 and ev.cgroup_id == agent.ra.cgroup_id
    agent.exec_a("touch", "-r", "/etc/passwd", "/tmp/rg-t2")
    ev = agent.wait(FileChange, lambda e: e.path == "/tmp/rg-t2", "touch -r")[0]
    assert ev.op == "utimes" and ev.explicit_times
    # The benign twin: plain touch sets "now".
    _run(agent, "touch", "/tmp/rg-t3")
    assert _changes(agent, "/tmp/rg-t3") == []


def test_reading_another_process_cmdline_and_environ(agent: Agent) -> None:
    agent.exec_a("cat", "/proc/1/cmdline")
    ev = agent.wait(FileOpen, lambda e: e.path == "/proc/1/cmdline", "open of /proc/1/cmdline")[0]
    assert ev.comm == "cat" and ev.ret >= 0 and ev.cgroup_id == agent.ra.cgroup_id and not ev.write
    agent.exec_a("cat", "/proc/1/environ")
    agent.wait(FileOpen, lambda e: e.path == "/proc/1/environ", "open of /proc/1/environ")
    # The benign twins: the process's own cmdline and another process's status.
    agent.exec_a("cat", "/proc/self/cmdline")
    _run(agent, "cat", "/proc/1/status")
    assert agent.of(FileOpen, lambda e: e.path in ("/proc/self/cmdline", "/proc/1/status")) == []


def test_process_exit_carries_the_status(agent: Agent) -> None:
    ex = _run(agent, "sh", "-c", "sleep 0.1; exit 3")
    assert ex.exit_code == 3 and ex.cgroup_id == agent.ra.cgroup_id
    # Killed by a signal: no exit call, the status is unknown.
    killed = _run(agent, "sh", "-c", "sleep 0.1; kill -9 $$")
    assert killed.exit_code == -1
    # Only thread-group leaders of monitored containers: b, which only sleeps, never exits.
    assert agent.of(ProcessExit, lambda e: e.cgroup_id == agent.rb.cgroup_id) == []
