# SPDX-License-Identifier: Apache-2.0
"""The hot path's shortcuts must not hide anything.

- The read-only open filter in front of the sensitive-prefix trie (``rg_open_hint``,
  probes/files.bpf.c): the kernel's hash of a path's first 8 bytes must agree with the loader's,
  or sensitive opens would be dropped in the kernel. Each read-only open of a watched path still
  arrives; a prefix too short for the filter turns it off and its opens still arrive.
- The filter's answer cached in a monitored task's storage (probes/task.h rg_wanted_task): a task
  that keeps running is no longer counted once its container leaves the filter.
- The sys_exit shortcut (probes/task.h rg_pending_n): while no task has an event staged, sys_exit
  leaves before the task-storage lookup; a staged event still gets its result.
"""

from __future__ import annotations

import ctypes
import subprocess
import time

from agent.events import FileOpen, ProcessExec
from agent.sources.ebpf.loader import HINT_BITS
from agent.syscall_table import syscall_number
from tests.privileged.ebpf.harness import Agent
from tests.support import wait_for

SYS_READ = syscall_number("read")
# A long syscall loop in b that keeps its task (and its task-storage entry) across the test.
DD = "dd if=/dev/zero of=/dev/null bs=1 count=2000000000 & echo $! > /tmp/dd.pid; wait"

ON = ctypes.c_int(1 << HINT_BITS)


def _hint_on(agent: Agent) -> int:
    return int(agent.source.bpf[b"rg_open_hint"][ON].value)


def _reported(agent: Agent, path: str) -> None:
    agent.exec_a("cat", path)
    opens = agent.wait(FileOpen, lambda e: e.path == path and e.comm == "cat", f"read-only open of {path}")
    assert all(e.cgroup_id == agent.ra.cgroup_id and not e.write for e in opens)


def _filtered(agent: Agent, path: str) -> None:
    agent.exec_a("cat", path)
    agent.wait(ProcessExec, lambda e: e.argv[:2] == ("cat", path), f"exec of cat {path}")
    assert not agent.of(FileOpen, lambda e: e.path == path), f"{path} should be filtered in the kernel"


def test_read_only_opens_of_every_default_prefix_pass_the_filter(agent: Agent) -> None:
    assert _hint_on(agent) == 1, "the filter is on with the default prefixes (all at least 8 bytes)"
    # Missing files too: the open is reported with its error.
    for path in ("/etc/gshadow", "/etc/sudoers", "/root/.ssh/id_rsa", "/run/docker.sock", "/var/run/docker.sock"):
        _reported(agent, path)
    # Benign twins: the same directory, another file.
    for path in ("/etc/hostname", "/root/.profile"):
        _filtered(agent, path)


def test_prefixes_set_at_run_time_update_the_filter(agent: Agent) -> None:
    src = agent.source
    defaults = (src.settings.sensitive_paths, src.settings.sensitive_write_prefixes)
    try:
        # Long enough for the filter: it stays on and knows the new prefix.
        src.set_sensitive((*defaults[0], "/srv/data/"), defaults[1])
        assert _hint_on(agent) == 1
        _reported(agent, "/srv/data/x")
        # Shorter than 8 bytes: the filter is off, every open takes the trie, and is reported.
        src.set_sensitive((*defaults[0], "/srv/"), defaults[1])
        assert _hint_on(agent) == 0
        _reported(agent, "/srv/y")
    finally:
        src.set_sensitive(*defaults)
    assert _hint_on(agent) == 1
    _filtered(agent, "/srv/z")


def _b_reads(agent: Agent) -> int:
    by_cg = {w.cgroup_id: w for w in agent.source.flush_window()}
    w = by_cg.get(agent.rb.cgroup_id)
    return w.counts.get(SYS_READ, 0) if w else 0


def test_a_running_task_is_not_counted_once_its_container_leaves_the_filter(agent: Agent) -> None:
    subprocess.run(["docker", "exec", "-d", agent.b.id, "sh", "-c", DD], check=True, timeout=30)
    try:
        time.sleep(0.5)
        agent.source.flush_window()
        time.sleep(0.3)
        assert _b_reads(agent) > 1000, "dd's reads are counted while b is monitored"
        agent.ctx.registry.remove(agent.rb.id)
        try:
            agent.source.flush_window()  # what was counted before the removal
            time.sleep(0.3)
            assert _b_reads(agent) == 0, "dd, still running, is counted after b left the filter"
        finally:
            agent.ctx.registry.upsert(agent.rb)
        time.sleep(0.3)
        agent.source.flush_window()
        time.sleep(0.3)
        assert _b_reads(agent) > 1000, "dd is counted again once b is back"
    finally:
        subprocess.run(["docker", "exec", agent.b.id, "sh", "-c", "kill $(cat /tmp/dd.pid)"], timeout=30)


def _pending(agent: Agent) -> int:
    return int(agent.source.bpf[b"rg_pending_n"][ctypes.c_int(0)].value)


def test_sys_exit_skips_the_task_lookup_only_while_nothing_is_staged(agent: Agent) -> None:
    """probes/task.h rg_pending_n: sys_exit looks up the task's storage only while some task has
    an event staged. A reader blocked opening a FIFO under a sensitive prefix is staged (1); once
    a writer opens it both opens complete with their results, and nothing is staged (0)."""
    fifo = "/root/.ssh/rg-fifo"
    agent.exec_a("sh", "-c", f"mkdir -p /root/.ssh && rm -f {fifo} && mkfifo {fifo}")
    assert _pending(agent) == 0
    subprocess.run(["docker", "exec", "-d", agent.a.id, "cat", fifo], check=True, timeout=30)
    try:
        wait_for(lambda: _pending(agent) == 1, what="the blocked open of the FIFO staged")
    finally:
        agent.exec_a("sh", "-c", f"echo x > {fifo}")
    opens = agent.wait(FileOpen, lambda e: e.path == fifo and e.comm == "cat", "the reader's open, completed")
    assert opens[0].ret >= 0 and not opens[0].write
    agent.wait(FileOpen, lambda e: e.path == fifo and e.write, "the writer's open")
    wait_for(lambda: _pending(agent) == 0, what="nothing staged once both opens returned")
    agent.exec_a("rm", "-f", fifo)
