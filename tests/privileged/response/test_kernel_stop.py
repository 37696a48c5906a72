# SPDX-License-Identifier: Apache-2.0
"""The in-kernel first response against real containers (probes/act.h, agent/response/fastpath.py).

``cat /etc/shadow > /tmp/out`` typed into a shell session inside a busybox container in enforce
mode: the kernel stops cat at its open, the fast path freezes the container and continues cat
inside the frozen cgroup. Proof that cat ran no instruction after the open: while frozen its
/etc/shadow descriptor is still at offset 0 (it never read) and /tmp/out is empty (nothing was
written); the kernel's stop time comes before the freeze. Release resumes everything: cat then
finishes and /tmp/out holds the file. The twins: /etc/passwd in the same container is never
stopped, and the same /etc/shadow read in a container in observe mode runs to the end while its
open is still reported.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

from agent.events import FileOpen
from agent.findings import Finding, Severity, Source
from tests.privileged.response.kstop_harness import KStop, kstop  # noqa: F401 - fixture
from tests.support import wait_for


def _pids_named(k: KStop, role: str, comm: str) -> list[int]:
    cid = k.records[role].id
    procs = Path(f"/sys/fs/cgroup/freezer/docker/{cid}/cgroup.procs").read_text().split()
    out = []
    for pid in procs:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                out.append(int(pid))
        except OSError:
            continue
    return out


def _fd_to(pid: int, target: str) -> tuple[str, int] | None:
    """(fd, file offset) of ``pid``'s descriptor open on ``target``."""
    for link in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if str(link.readlink()) == target:
                pos = Path(f"/proc/{pid}/fdinfo/{link.name}").read_text().split()[1]
                return link.name, int(pos)
        except OSError:
            continue
    return None


def test_shadow_read_is_stopped_at_the_open_and_release_resumes_it(kstop: KStop) -> None:  # noqa: F811
    k = kstop
    shadow = k.file_in("enforce", "/etc/shadow").read_bytes()
    assert shadow, "the image has an /etc/shadow to read"
    out = k.file_in("enforce", "/tmp/out")
    k.type_in("enforce", "cat /etc/shadow > /tmp/out; echo done > /tmp/done")
    wait_for(lambda: k.freezer_state("enforce") == "FROZEN", timeout=10, what="the container frozen")
    engine = k.response.engine
    [rec] = engine.records.active(k.records["enforce"].id)
    assert rec.action == "freeze" and rec.phase == "confirmed" and rec.actor == "kernel:RG-0002", rec
    # The fast path wrote the freeze itself on the freezer file it opened ahead (agent.response.freezers).
    assert rec.state.get("fast_path", {}).get("was") == "thawed", rec.state
    # cat is stopped inside the frozen cgroup, right after its open: offset 0, nothing written.
    [cat] = _pids_named(k, "enforce", "cat")
    fd = _fd_to(cat, "/etc/shadow")
    assert fd is not None, "cat has /etc/shadow open"
    assert fd[1] == 0, f"cat read /etc/shadow before it was stopped (offset {fd[1]})"
    # Boosted to SCHED_FIFO only while the freezer waited for it (agent.response.freezers).
    assert os.sched_getscheduler(cat) == os.SCHED_OTHER
    assert out.exists() and out.stat().st_size == 0, "bytes after the open reached /tmp/out"
    time.sleep(0.5)  # frozen means frozen: nothing moves while we wait
    assert out.stat().st_size == 0 and not k.file_in("enforce", "/tmp/done").exists()
    # The kernel's clock: syscall -> stopped before syscall -> frozen.
    k.response.worker.drain()
    st = k.response.fast.status()
    assert st["frozen"] >= 1 and st["syscall_to_frozen_ms"]["n"] >= 1, st
    times = k.source.act.stop_times(cat)
    assert times is not None, "no stop time recorded for cat"
    syscall_ns, stop_ns = times
    if stop_ns:  # cat took its SIGSTOP on the way back to user mode, before the freeze landed
        frozen_ms = st["syscall_to_frozen_ms"]["p50"]
        assert (stop_ns - syscall_ns) / 1e6 < frozen_ms, "the task stopped after the freeze"
    # else: on a busy host the freezer caught cat in the kernel first (its SIGSTOP still
    # pending, then cancelled by the SIGCONT): offset 0 above shows it ran nothing either way.
    # The finding names the kernel stop, with its verdict.
    found = engine.records.findings(container=k.records["enforce"].id)
    assert any(f.detector_id == "RG-0002" and f.evidence.get("must_act") for f in found), found
    # Release: the container resumes and cat finishes as if nothing had happened.
    [released] = engine.release(k.records["enforce"].id)
    assert released.phase == "released"
    wait_for(lambda: k.file_in("enforce", "/tmp/done").exists(), timeout=10, what="the session to resume")
    assert out.read_bytes() == shadow
    assert k.freezer_state("enforce") == "THAWED"


def test_benign_twins_are_never_stopped(kstop: KStop) -> None:  # noqa: F811
    k = kstop
    # The same container (enforce): /etc/passwd is no stop path.
    k.type_in("enforce", "cat /etc/passwd > /tmp/pw; echo ok > /tmp/pw.done")
    wait_for(lambda: k.file_in("enforce", "/tmp/pw.done").exists(), timeout=10, what="the passwd read to finish")
    assert k.file_in("enforce", "/tmp/pw").read_bytes() == k.file_in("enforce", "/etc/passwd").read_bytes()
    # Stop paths are exact: a directory whose name starts like one is not /etc/shadow.
    k.type_in(
        "enforce",
        "mkdir -p /etc/shadowsocks; echo '{}' > /etc/shadowsocks/config.json; "
        "cat /etc/shadowsocks/config.json /etc/shadow-nope 2>/dev/null > /tmp/ss; echo ok > /tmp/ss.done",
    )
    wait_for(lambda: k.file_in("enforce", "/tmp/ss.done").exists(), timeout=10, what="the shadowsocks read")
    assert k.file_in("enforce", "/tmp/ss").read_text() == "{}\n"
    assert k.freezer_state("enforce") == "THAWED"
    # A credential tool doing its job (detectors.credential_consumers): passwd rewrites
    # /etc/shadow in the enforcing container and is not stopped (the detector judges it).
    k.type_in(
        "enforce",
        "ln -sf /bin/busybox /bin/passwd; printf 'Pw12345x\\nPw12345x\\n' | passwd root && echo ok > /tmp/pw.changed",
    )
    wait_for(lambda: k.file_in("enforce", "/tmp/pw.changed").exists(), timeout=10, what="passwd to finish")
    assert k.freezer_state("enforce") == "THAWED"
    assert k.file_in("enforce", "/etc/shadow").read_text().startswith("root:$"), "passwd changed nothing"
    wait_for(
        lambda: [e for e in k.events if isinstance(e, FileOpen) and e.comm == "passwd"],
        what="passwd's shadow open reported",
    )
    # Observe mode: the shadow read runs to its end, the container is never frozen, and the
    # open is still reported.
    observe = k.records["observe"]
    assert observe.cgroup_id not in k.source.act.rules(), "an observe container has kernel stop rules"
    k.type_in("observe", "cat /etc/shadow > /tmp/out; echo done > /tmp/done")
    wait_for(lambda: k.file_in("observe", "/tmp/done").exists(), timeout=10, what="the observe session to finish")
    assert k.file_in("observe", "/tmp/out").read_bytes() == k.file_in("observe", "/etc/shadow").read_bytes()
    assert k.freezer_state("observe") == "THAWED"
    assert not k.response.engine.records.active(observe.id)
    wait_for(
        lambda: [e for e in k.events if isinstance(e, FileOpen) and e.cgroup_id == observe.cgroup_id],
        what="the observe container's shadow open reported",
    )
    assert k.source.act.records == k.response.fast.counters["stops"]


def test_a_quarantined_container_is_still_frozen_by_a_kernel_stop(kstop: KStop) -> None:  # noqa: F811
    k = kstop
    cid = k.records["enforce"].id
    engine = k.response.engine
    # A network finding first: the incident climbs to quarantine (a rung above freeze).
    k.ctx.report(
        Finding(
            container=k.records["enforce"].ref(),
            source=Source.NETWORK,
            detector_id="RG-NET-TEST",
            severity=Severity.HIGH,
            summary="beaconing",
        )
    )
    k.ctx.findings.drain(10)
    assert [r.action for r in engine.records.active(cid)] == ["quarantine"]
    k.type_in("enforce", "cat /etc/shadow > /tmp/out2; echo done > /tmp/done2")
    wait_for(lambda: k.freezer_state("enforce") == "FROZEN", timeout=10, what="the quarantined container frozen")
    recs = {r.action: r for r in engine.records.active(cid)}
    assert recs["freeze"].actor == "kernel:RG-0002" and "must-act: freeze beside quarantine" in recs["freeze"].reason
    assert k.file_in("enforce", "/tmp/out2").stat().st_size == 0
    released = engine.release(cid)
    assert {r.action for r in released} == {"quarantine", "freeze"}
    wait_for(lambda: k.file_in("enforce", "/tmp/done2").exists(), timeout=10, what="the session to resume")


def test_docker_exec_into_an_enforcing_container_is_not_stopped(kstop: KStop) -> None:  # noqa: F811
    # The runtime's own setns (runc init joining the container's namespaces) and an operator's
    # shell are no namespace escape.
    k = kstop
    out = subprocess.run(
        ["docker", "exec", k.records["enforce"].id, "sh", "-c", "echo hello; cat /etc/passwd >/dev/null"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and out.stdout == "hello\n", out
    assert k.freezer_state("enforce") == "THAWED"
    assert not k.response.engine.records.active(k.records["enforce"].id)


def test_a_stop_whose_record_was_never_handled_is_continued(kstop: KStop) -> None:  # noqa: F811
    # A task stopped long ago with its entry still in rg_act_stop (its must-act record lost, or a
    # handler wedged): the sweep continues it. The stop is made by hand on a process of the test's.
    k = kstop
    proc = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        wait_for(lambda: _state(proc.pid) == "T", what="sleep stopped")
        table = k.source.act.bpf[b"rg_act_stop"]
        leaf = table.Leaf()
        leaf.syscall_ns = leaf.stop_ns = time.monotonic_ns() - 60 * 10**9
        table[ctypes.c_uint(proc.pid)] = leaf
        assert k.source.act.sweep_orphans() == [proc.pid]
        wait_for(lambda: _state(proc.pid) == "S", what="sleep continued")
        assert k.source.act.status()["orphans_continued"] >= 1
        assert k.source.act.sweep_orphans() == []  # handled entries and this one are gone
    finally:
        proc.kill()
        proc.wait()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
