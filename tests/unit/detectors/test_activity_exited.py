# SPDX-License-Identifier: Apache-2.0
"""A process that exited before its file record was judged keeps what lineage knew of it."""

from __future__ import annotations

from agent.detectors.activity import activity, lineage_of
from agent.detectors.lineage import ProcInfo
from agent.detectors.spec import DetectorState, container_key
from agent.events import ContainerRef, ProcessExec, ProcessExit

C = ContainerRef(id="e7" * 32, name="web", image="nginx")
HOOK = "/docker-entrypoint.d/10-config.sh"


def _hook_state(start_ts: float) -> tuple[DetectorState, str]:
    state = DetectorState()
    key = container_key(ProcessExec(ts=10, pid=98, container=C, ppid=1, uid=0, comm="10-config.sh", filename=HOOK))
    hook = ProcessExec(ts=10, pid=98, container=C, ppid=1, uid=0, comm="10-config.sh", filename=HOOK, argv=(HOOK,))
    sed = ProcessExec(ts=11, pid=99, container=C, ppid=98, uid=0, comm="sed", filename="/bin/sed", argv=("sed", "-i"))
    act = activity(state)
    act.observe_exec(hook)
    act.observe_exec(sed)
    # Lineage read the hook's #! line at its exec: a shell script, not a program named 10-config.sh.
    known = ProcInfo(98, 1, HOOK, "/bin/sh", "sh", (HOOK,), "shell", start_ts=start_ts, script=HOOK)
    act.keep_exited(key, known)
    state.lineage.on_exit(ProcessExit(ts=12, pid=98, container=C, comm="10-config.sh"))
    return state, key


def test_an_exited_hook_shell_is_judged_as_lineage_knew_it() -> None:
    state, key = _hook_state(start_ts=10)
    chain = lineage_of(state, key, 99, 98, "sed")
    assert [(p.pid, p.program, p.role, p.script) for p in chain[:2]] == [
        (99, "sed", "other", ""),
        (98, "sh", "shell", HOOK),
    ]


def test_lineage_of_another_exec_of_the_pid_is_not_attached() -> None:
    state, key = _hook_state(start_ts=5)  # an earlier program of pid 98, not this exec
    chain = lineage_of(state, key, 99, 98, "sed")
    assert chain[1].pid == 98 and chain[1].program == "10-config.sh" and chain[1].role != "shell"
