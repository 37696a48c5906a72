# SPDX-License-Identifier: Apache-2.0
"""The /proc source on a /proc tree captured from a real container (scripts/fixtures/capture_proc.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agent.events import ProcSnapshot
from agent.hostfs import HostPaths
from agent.runtime.cgroups import container_pids
from agent.runtime.model import Container, ContainerRegistry
from agent.settings.sources import ProcfsSettings
from agent.sources.procfs import (
    ProcfsSource,
    exe_verdict,
    parse_net_table,
    parse_stat,
    read_process,
    snapshot,
)

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "proc"
DOC: dict[str, Any] = json.loads((FIX / "container.json").read_text())


@pytest.fixture
def tree(tmp_path: Path) -> HostPaths:
    shutil.copytree(FIX, tmp_path / "host", symlinks=True)
    return HostPaths.under(tmp_path / "host")


def record() -> Container:
    c = DOC["container"]
    return Container(
        id=c["id"],
        name=c["name"],
        image=c["image"],
        image_id=c["image_id"],
        runtime="docker",
        init_pid=c["init_pid"],
        cgroup_v1=c["cgroup_v1"],
        cgroup_v2=c["cgroup_v2"],
        cgroup_id=c["cgroup_id"],
        details=c["details"],
    )


def test_snapshot_of_a_captured_container(tree: HostPaths) -> None:
    c = record()
    snap = snapshot(tree, c, now=5.0)
    assert snap is not None
    present = DOC["present"]
    assert snap.processes == len(present) == 4
    assert snap.container is not None and snap.container.id == c.id
    assert snap.cgroup_id == c.cgroup_id
    assert snap.threads >= snap.processes
    assert snap.fds >= 3 * snap.processes  # every process has stdio; nc also its socket
    assert snap.rss_bytes > 0 and snap.cpu_seconds >= 0
    # nc -l -p 8080 binds the v6 wildcard; the nsenter helper bound udp 5353 (and maybe ::1:8443).
    assert ("::", 8080, "tcp6") in snap.listening
    assert ("0.0.0.0", 5353, "udp") in snap.listening
    tree_pids = {pid for pid, _ppid, _comm in snap.tree}
    assert tree_pids == set(present)
    comms = {comm for _pid, _ppid, comm in snap.tree}
    assert {"sleep", "nc"} <= comms
    init = c.init_pid
    assert all(ppid == init for pid, ppid, _ in snap.tree if pid != init)  # children of sh→sleep
    why = {exe: reason for _pid, exe, reason in snap.suspicious_exes}
    assert why == {"/tmp/x/sleep": "not_in_image", "/tmp/g/sleep (deleted)": "deleted"}


def test_a_pid_vanished_mid_read_is_left_out(tree: HostPaths) -> None:
    c = record()
    listed = container_pids(tree, c)
    assert set(DOC["vanished"]) <= set(listed)  # cgroup.procs named it ...
    for pid in DOC["vanished"]:
        assert read_process(tree, pid) is None  # ... but it was gone when we read it


def test_container_with_no_process_left(tree: HostPaths) -> None:
    c = record()
    for pid in DOC["present"]:
        shutil.rmtree(tree.pid_dir(pid))
    assert snapshot(tree, c) is None


def test_source_publishes_per_container(tree: HostPaths) -> None:
    reg = ContainerRegistry()
    reg.upsert(record())
    got: list[ProcSnapshot] = []
    src = ProcfsSource(ProcfsSettings(), tree, reg, got.append, interval=10)
    assert len(src.collect()) == 1 and len(got) == 1
    assert src.status()["snapshots"] == 1
    # A captured tree has no namespace to ask through sock_diag: the /proc tables are read.
    assert src.status()["listening_from_proc"] == 1
    assert ("0.0.0.0", 5353, "udp") in got[0].listening


def test_exe_verdicts(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "bin").mkdir(parents=True)
    (layer / "bin" / "busybox").touch()
    assert exe_verdict("/bin/busybox", [layer]) == ""
    assert exe_verdict("/memfd:payload (deleted)", [layer]) == "memfd"
    assert exe_verdict("/tmp/x (deleted)", [layer]) == "deleted"
    assert exe_verdict("/tmp/x", [layer]) == "not_in_image"
    assert exe_verdict("/data/tool", [layer], mounts=["/data"]) == ""
    assert exe_verdict("/tmp/x", []) == ""  # no layers known: cannot tell


def test_parsers_on_captured_text() -> None:
    init = DOC["container"]["init_pid"]
    comm, ppid, cpu, threads, rss = parse_stat((FIX / "proc" / str(init) / "stat").read_text())
    assert comm == "sleep" and ppid > 0 and threads == 1 and rss > 0 and cpu >= 0
    # comm may hold spaces and parentheses: split at the last ')'
    assert parse_stat("7 (a) b) S 1 7 7 0 -1 4194560 0 0 0 0 3 4 0 0 20 0 2 0 9 1 5 x")[0:2] == ("a) b", 1)
    udp = (FIX / "proc" / str(init) / "net" / "udp").read_text()
    assert parse_net_table(udp, "udp", False) == [("0.0.0.0", 5353, "udp")]
    assert parse_net_table(udp + "garbage line\n 9: zz:zz 00:00 07\n", "udp", False) == [("0.0.0.0", 5353, "udp")]


def _as_process(tree: HostPaths, pid: int, comm: str, exe: Path, threads: int, rss_pages: int) -> None:
    """Make captured ``pid`` a process called ``comm`` running ``exe`` (a runc init of a
    ``docker exec``: 6 Go threads, ~10 MiB)."""
    d = tree.pid_dir(pid)
    f = (d / "stat").read_text().rpartition(")")[2].split()
    f[17], f[21] = str(threads), str(rss_pages)
    (d / "stat").write_text(f"{pid} ({comm}) " + " ".join(f) + "\n")
    (d / "exe").unlink()
    (d / "exe").symlink_to(exe)


def test_the_runtimes_setup_process_is_not_the_containers(tree: HostPaths) -> None:
    """runc init of a `docker exec` runs inside the container's cgroup: it is left out of the
    snapshot when it runs the host's runc (same file), never because of its name alone."""
    from agent.runtime.executables import runtime_executables

    c = record()
    before = snapshot(tree, c, now=5.0)
    assert before is not None
    runc = tree.host("/usr/sbin/runc")
    runc.parent.mkdir(parents=True, exist_ok=True)
    runc.write_bytes(b"\x7fELF runc")
    ids = runtime_executables(tree, ("runc", "crun"))
    assert ids == {(runc.stat().st_dev, runc.stat().st_ino)}
    impostor = tree.host("/var/lib/docker/overlay2/x/merged/usr/sbin/runc")
    impostor.parent.mkdir(parents=True, exist_ok=True)
    impostor.write_bytes(b"\x7fELF runc")
    _as_process(tree, 25419, "runc:[2:INIT]", runc, threads=6, rss_pages=2600)
    _as_process(tree, 25420, "runc:[2:INIT]", impostor, threads=6, rss_pages=2600)
    snap = snapshot(tree, c, now=6.0, runtime_exes=ids)
    assert snap is not None
    pids = {pid for pid, _ppid, _comm in snap.tree}
    assert 25419 not in pids, "the host's runc is the runtime's"
    assert 25420 in pids, "a container's own file named runc:[2:INIT] is the container's"
    assert snap.processes == before.processes - 1
    # Twin: without the runtime's executables known, both count (as before this change).
    assert {pid for pid, _p, _c in snapshot(tree, c, now=6.0).tree} == set(DOC["present"])


def test_the_runtime_is_found_through_the_hosts_init_when_host_root_lacks_it(tree: HostPaths) -> None:
    """A DaemonSet mounts the host's /proc and /sys below /host but not its /usr: the host's runc
    is then found through /proc/1/root."""
    from agent.runtime.executables import runtime_executables

    assert runtime_executables(tree, ("runc",)) == frozenset()
    runc = tree.pid_root(1) / "usr/bin/runc"
    runc.parent.mkdir(parents=True)
    runc.write_bytes(b"\x7fELF runc")
    assert runtime_executables(tree, ("runc", "/opt/bin/crun")) == {(runc.stat().st_dev, runc.stat().st_ino)}
