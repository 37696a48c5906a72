# SPDX-License-Identifier: Apache-2.0
"""The component's dispatch (a rule sees only the events it can judge) and the per-settings
caches of the rules' hot path: each gives the answer the uncached code gives."""

from __future__ import annotations

import pytest

from agent.detectors.activity import RecentExec
from agent.detectors.component import DetectorsComponent
from agent.detectors.miner_stratum import SPEC as MINER
from agent.detectors.pipes import is_reader
from agent.detectors.registry import DETECTORS
from agent.detectors.sensitive_file import classify
from agent.detectors.spec import DetectorState, syscall_name
from agent.events import ContainerRef, PrivilegeEvent, ProcessExec
from agent.settings.detectors import DetectorsSettings

C = ContainerRef(id="cd" * 32, name="app", image="app:1")
PRIVILEGE_RULES = [d for d in DETECTORS if PrivilegeEvent in d.events]
# The syscalls the privilege probe reports (and some more), whatever the rules declare.
SYSCALLS = sorted(
    {s for d in PRIVILEGE_RULES for s in d.syscalls}
    | {"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "capset"}
    | {"ptrace", "process_vm_writev", "bpf", "perf_event_open", "init_module", "finit_module", "delete_module"}
    | {"mount", "umount2", "unshare", "setns", "pivot_root", "chroot", "fsmount", "move_mount", "open_tree"}
    | {"fsopen", "fsconfig", "mount_setattr", "keyctl", "add_key", "userfaultfd", "kexec_load", "iopl", "ioperm"}
    | {"kill", "prctl", "open", "clone", "clone3", "personality"}
)


def priv(syscall: str, *, uid: int = 1000, comm: str = "app", args: tuple[int, ...] = (0, 0, 0)) -> PrivilegeEvent:
    return PrivilegeEvent(ts=10.0, pid=7, container=C, comm=comm, syscall=syscall, args=args, uid=uid)


@pytest.mark.parametrize("prefix", ["", "sys_", "__x64_sys_"])
@pytest.mark.parametrize("call", SYSCALLS)
def test_a_privilege_rule_finds_nothing_in_a_syscall_it_does_not_declare(prefix: str, call: str) -> None:
    # The component hands a PrivilegeEvent only to the rules declaring its syscall: a rule
    # that judged an undeclared one would go silent in the agent.
    for d in PRIVILEGE_RULES:
        for args in ((0, 0, 0), (16, 0, 0), (5, 1, 0)):  # become root; ptrace ATTACH; bpf PROG_LOAD
            for ev in (priv(prefix + call, args=args), priv(prefix + call, args=args, uid=0)):
                found = d.evaluate(ev, DetectorState())
                if found is not None:
                    assert d.syscalls and syscall_name(ev.syscall) in d.syscalls, (d.id, ev.syscall)


@pytest.mark.parametrize(
    ("event", "rules", "twin"),
    [
        (priv("__x64_sys_mount"), {"RG-0008"}, priv("__x64_sys_mount", comm="runc:[2:INIT]")),
        (priv("setuid"), {"RG-0006"}, priv("setuid", uid=0)),  # root dropping to a user: allowed
        (priv("ptrace", args=(16, 9)), {"RG-0007"}, priv("ptrace", args=(0, 0))),  # TRACEME
        (priv("finit_module"), {"RG-0009"}, priv("delete_module")),  # unloading: no rule's call
        (priv("bpf", args=(5,)), {"RG-0010"}, priv("bpf", args=(5,), comm="runc")),
        (priv("kill"), set(), priv("kill", uid=0)),
    ],
)
def test_the_component_runs_the_privilege_rules_of_the_syscall_only(
    event: PrivilegeEvent, rules: set[str], twin: PrivilegeEvent
) -> None:
    comp = DetectorsComponent(DetectorsSettings(), DETECTORS)
    comp.handle(event)
    comp.handle(event)
    assert dict(comp.evaluated) == dict.fromkeys(rules, 2)
    assert dict(comp.findings) == dict.fromkeys(rules, 1)  # the repeat is suppressed
    quiet = DetectorsComponent(DetectorsSettings(), DETECTORS)
    quiet.handle(twin)
    assert set(quiet.evaluated) <= rules
    assert sum(quiet.findings.values()) == 0


def test_every_exec_rule_runs_on_every_exec() -> None:
    comp = DetectorsComponent(DetectorsSettings(), DETECTORS)
    for pid in (5, 6, 7):
        comp.handle(ProcessExec(ts=1.0, pid=pid, container=C, ppid=1, uid=0, comm="ls", filename="/bin/ls"))
    assert dict(comp.evaluated) == {d.id: 3 for d in DETECTORS if ProcessExec in d.events}


def test_the_path_classes_are_remembered_per_settings_and_per_write() -> None:
    state = DetectorState()
    assert classify("/etc/passwd", True, state) == "identity"
    assert classify("/etc/passwd", False, state) == ""  # reading the account list is not sensitive
    assert classify("/etc/passwd", True, state) == "identity"
    assert classify("/etc/shadow", False, state) == "secret"
    other = DetectorState(settings=DetectorsSettings(identity_write_paths=("/etc/group",)))
    assert classify("/etc/passwd", True, other) == "config"  # another settings object, its own answer
    assert classify("/etc/passwd", True, state) == "identity"


def exec_of(filename: str, argv: tuple[str, ...], pid: int) -> ProcessExec:
    return ProcessExec(ts=1.0, pid=pid, container=C, ppid=1, uid=0, comm="x", filename=filename, argv=argv)


def test_a_remembered_command_line_keeps_the_filename_when_argv_is_empty() -> None:
    state = DetectorState()
    assert MINER.evaluate(exec_of("/opt/xmrig", ("",), 1), state) is not None
    assert MINER.evaluate(exec_of("/bin/ls", ("",), 2), state) is None  # same argv, other file
    assert MINER.evaluate(exec_of("/bin/ls", (), 3), state) is None
    assert MINER.evaluate(exec_of("/opt/xmrig", (), 4), state) is not None
    assert MINER.evaluate(exec_of("/bin/app", ("app", "-o", "stratum+tcp://p:3333"), 5), state) is not None
    assert MINER.evaluate(exec_of("/bin/app", ("app", "-o", "tcp://p:3333"), 6), state) is None
    assert MINER.evaluate(exec_of("/bin/app", ("app", "-o", "stratum+tcp://p:3333"), 7), state) is not None


def test_a_reader_is_judged_with_the_settings_asked_about() -> None:
    rec = RecentExec(C.id, 5, 1, 1.0, "sh", ("-s",), ("sh", "-s"), ("pipe:[1]", "pipe:[2]", ""))
    assert is_reader(rec, DetectorState())
    assert not is_reader(rec, DetectorState(settings=DetectorsSettings(shells=("bash",))))
    assert is_reader(rec, DetectorState())
    versioned = RecentExec(C.id, 6, 1, 1.0, "python3.11", (), ("python3.11",), ())
    assert is_reader(versioned, DetectorState())
    assert not is_reader(RecentExec(C.id, 7, 1, 1.0, "ls", (), ("ls",), ()), DetectorState())


def pipeline_exec(comm: str, argv: tuple[str, ...], pid: int, ts: float, stdio: tuple[str, ...]) -> ProcessExec:
    return ProcessExec(
        ts=ts, pid=pid, container=C, ppid=50, uid=0, comm=comm, filename=f"/bin/{comm}", argv=argv, stdio=stdio
    )


@pytest.mark.parametrize(
    ("nc_ts", "sh_ts", "paired"),
    [
        (100.2, 100.0, True),  # nc H P | sh: siblings within detectors.pipe_pair_seconds
        (103.0, 100.0, False),  # its benign twin: the same two processes, 3 s apart
        (100.0, 100.3, True),  # the shell's record came first, stamped later (per-CPU buffers)
        (100.0, 102.0, False),
    ],
)
def test_a_lone_exec_is_not_looked_at_as_half_of_a_pipeline(nc_ts: float, sh_ts: float, paired: bool) -> None:
    comp = DetectorsComponent(DetectorsSettings(), DETECTORS)
    comp.handle(pipeline_exec("sh", ("sh",), 11, sh_ts, ("pipe:[7]", "pipe:[8]", "")))
    comp.handle(pipeline_exec("nc", ("nc", "h", "1"), 12, nc_ts, ("pipe:[8]", "pipe:[7]", "")))
    assert (comp.findings["RG-0014"] == 1) is paired
