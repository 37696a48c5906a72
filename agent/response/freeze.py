# SPDX-License-Identifier: Apache-2.0
"""Freeze and thaw a container through its cgroup: v1 ``freezer.state`` or v2 ``cgroup.freeze``.

Writes go straight to the cgroup files found through ``HostPaths`` (no runtime API in the way:
a frozen container stays frozen even if dockerd is down). The v1 freezer can stay in FREEZING
while tasks fork concurrently; we retry as runc does (``libcontainer/cgroups/fs/freezer.go``):
re-write FROZEN, with an occasional THAWED + 10 ms pause so that the freeze eventually wins. The
v2 freeze is asynchronous: we poll ``cgroup.events`` until the kernel reports ``frozen 1``.
Every result is confirmed by reading the state back. ``evidence_snapshot`` records the process
tree and the sockets of the container's network namespace (taken before freezing).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import structlog

from agent.findings import Action, ActionResult
from agent.hostfs import HostPaths
from agent.runtime.cgroups import cgroup_dir_v1, cgroup_dir_v2
from agent.runtime.model import Container

log = structlog.get_logger("agent.response")

FreezerKind = Literal["v1", "v2"]
FreezeState = Literal["frozen", "thawed", "freezing", "gone"]


class FreezeError(Exception):
    """The container's cgroup could not be frozen or thawed."""


def freezer_of(paths: HostPaths, container: Container, method: str = "auto") -> tuple[FreezerKind, Path]:
    """The freezer the container is frozen through: (kind, cgroup directory).

    ``auto`` prefers the v1 freezer when the container has one (Docker on a hybrid host uses it
    for ``docker pause`` too), else the v2 cgroup. A root cgroup is refused: that is the host.
    """
    v1 = container.cgroup_v1.get("freezer", "")
    v2 = container.cgroup_v2
    if method == "v1" or (method == "auto" and v1):
        if not v1 or v1.strip("/") == "":
            raise FreezeError(f"container {container.short_id} has no v1 freezer cgroup of its own")
        return "v1", cgroup_dir_v1(paths, "freezer", v1)
    if not v2 or v2.strip("/") == "":
        raise FreezeError(f"container {container.short_id} has no v2 cgroup of its own")
    return "v2", cgroup_dir_v2(paths, v2)


def read_state(kind: FreezerKind, cgdir: Path) -> FreezeState:
    """The freezer state as the kernel reports it."""
    try:
        if kind == "v1":
            raw = (cgdir / "freezer.state").read_text().strip()
            return {"FROZEN": "frozen", "FREEZING": "freezing"}.get(raw, "thawed")  # type: ignore[return-value]
        events = (cgdir / "cgroup.events").read_text().split()
        frozen = dict(zip(events[::2], events[1::2], strict=False)).get("frozen") == "1"
        if frozen:
            return "frozen"
        return "freezing" if (cgdir / "cgroup.freeze").read_text().strip() == "1" else "thawed"
    except FileNotFoundError:
        return "gone"


def _freeze_v1(cgdir: Path, timeout: float) -> int:
    """runc's freezeWithRetries; returns the attempts used."""
    state_file = cgdir / "freezer.state"
    deadline = time.monotonic() + timeout
    for i in range(1000):
        if i % 50 == 49:
            # runc: "Occasional thaw and sleep improves the odds to complete freeze when there
            # are many processes under the cgroup" (new forks keep the freezer in FREEZING).
            state_file.write_text("THAWED")
            time.sleep(0.01)
        state_file.write_text("FROZEN")
        if i % 25 == 24:
            time.sleep(10e-6)
        state = state_file.read_text().strip()
        if state == "FROZEN":
            return i + 1
        if state != "FREEZING":
            raise FreezeError(f"unexpected freezer.state {state!r} in {cgdir}")
        if time.monotonic() > deadline:
            break
    state_file.write_text("THAWED")  # never leave a half-frozen cgroup behind
    raise FreezeError(f"{cgdir} stayed FREEZING (forks racing the freezer?)")


def _freeze_v2(cgdir: Path, timeout: float) -> int:
    """Write ``1`` to cgroup.freeze and poll cgroup.events until ``frozen 1``; returns polls."""
    (cgdir / "cgroup.freeze").write_text("1")
    deadline = time.monotonic() + timeout
    delay = 20e-6
    polls = 0
    while True:
        polls += 1
        if read_state("v2", cgdir) == "frozen":
            return polls
        if time.monotonic() > deadline:
            (cgdir / "cgroup.freeze").write_text("0")
            raise FreezeError(f"{cgdir} did not report frozen within {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 2e-3)


def freeze(
    paths: HostPaths,
    container: Container,
    method: str = "auto",
    timeout: float = 5.0,
    dry_run: bool = False,
) -> ActionResult:
    """Freeze every process of ``container``; the result says how (``state``) and is confirmed."""
    try:
        kind, cgdir = freezer_of(paths, container, method)
    except FreezeError as exc:
        return ActionResult(action=Action.FREEZE, container_id=container.id, ok=False, detail=str(exc))
    state: dict[str, Any] = {"freezer": kind, "cgroup": str(cgdir)}
    if dry_run:
        return ActionResult(
            action=Action.FREEZE,
            container_id=container.id,
            ok=True,
            detail=f"would write {'freezer.state=FROZEN' if kind == 'v1' else 'cgroup.freeze=1'} in {cgdir}",
            dry_run=True,
            state=state,
        )
    before = read_state(kind, cgdir)
    if before == "gone":
        return ActionResult(
            action=Action.FREEZE, container_id=container.id, ok=False, detail=f"{cgdir} is gone", state=state
        )
    state["was"] = before
    try:
        attempts = _freeze_v1(cgdir, timeout) if kind == "v1" else _freeze_v2(cgdir, timeout)
    except (OSError, FreezeError) as exc:
        log.error("container_freeze_failed", container_id=container.id, error=str(exc))
        return ActionResult(action=Action.FREEZE, container_id=container.id, ok=False, detail=str(exc), state=state)
    confirmed = read_state(kind, cgdir)
    ok = confirmed == "frozen"
    state["attempts"] = attempts
    return ActionResult(
        action=Action.FREEZE,
        container_id=container.id,
        ok=ok,
        detail=f"{kind} freezer reads {confirmed}",
        state=state,
    )


def thaw(paths: HostPaths, container_id: str, state: Mapping[str, Any], dry_run: bool = False) -> ActionResult:
    """Thaw the cgroup recorded in ``state`` (what ``freeze`` returned); confirmed by read-back."""
    kind: FreezerKind = "v1" if state.get("freezer") == "v1" else "v2"
    cgdir = Path(str(state.get("cgroup", "")))
    if dry_run:
        return ActionResult(
            action=Action.FREEZE,
            container_id=container_id,
            ok=True,
            detail=f"would thaw {cgdir}",
            dry_run=True,
        )
    try:
        if kind == "v1":
            (cgdir / "freezer.state").write_text("THAWED")
        else:
            (cgdir / "cgroup.freeze").write_text("0")
    except FileNotFoundError:
        return ActionResult(
            action=Action.FREEZE,
            container_id=container_id,
            ok=True,
            detail=f"{cgdir} is gone (container exited)",
        )
    except OSError as exc:
        return ActionResult(action=Action.FREEZE, container_id=container_id, ok=False, detail=str(exc))
    deadline = time.monotonic() + 5.0
    now_state = read_state(kind, cgdir)
    while now_state not in ("thawed", "gone") and time.monotonic() < deadline:
        time.sleep(0.001)
        now_state = read_state(kind, cgdir)
    return ActionResult(
        action=Action.FREEZE,
        container_id=container_id,
        ok=now_state in ("thawed", "gone"),
        detail=f"{kind} freezer reads {now_state}",
    )


def current_state(paths: HostPaths, state: Mapping[str, Any]) -> FreezeState:
    """Read back the state of a recorded freeze (``state`` as ``freeze`` returned it)."""
    kind: FreezerKind = "v1" if state.get("freezer") == "v1" else "v2"
    return read_state(kind, Path(str(state.get("cgroup", ""))))


# --- evidence --------------------------------------------------------------------------------
def _cgroup_pids(cgdir: Path) -> list[int]:
    """Pids of a cgroup and its descendants (os.walk: pathlib's ``**`` glob costs milliseconds)."""
    pids: set[int] = set()
    for top, _dirs, files in os.walk(cgdir):
        if "cgroup.procs" in files:
            try:
                pids.update(int(x) for x in Path(top, "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                continue
    return sorted(pids)


def _process(paths: HostPaths, pid: int) -> dict[str, Any] | None:
    d = paths.pid_dir(pid)
    try:
        stat = (d / "stat").read_text()
        cmdline = (d / "cmdline").read_bytes()
    except OSError:
        return None  # exited while we looked: normal
    # comm may contain spaces and parentheses: split at the last ')'.
    head, _, rest = stat.rpartition(")")
    fields = rest.split()
    try:
        exe = str((d / "exe").readlink())
    except OSError:
        exe = ""
    return {
        "pid": pid,
        "ppid": int(fields[1]) if len(fields) > 1 else 0,
        "comm": head.partition("(")[2],
        "state": fields[0] if fields else "",
        "exe": exe,
        "argv": [a.decode(errors="replace") for a in cmdline.split(b"\0") if a],
    }


_TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}


def _addr(hexaddr: str) -> tuple[str, int]:
    import ipaddress

    ip, _, port = hexaddr.partition(":")
    raw = bytes.fromhex(ip)
    # /proc/net/tcp prints each 32-bit word in host (little-endian) byte order.
    words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]
    return str(ipaddress.ip_address(b"".join(words))), int(port, 16)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_proc_net(text: str, protocol: str) -> list[dict[str, Any]]:
    """Parse ``/proc/<pid>/net/{tcp,tcp6,udp,udp6}``; malformed lines are skipped."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        try:
            laddr, lport = _addr(f[1])
            raddr, rport = _addr(f[2])
        except ValueError:
            continue
        out.append(
            {
                "protocol": protocol,
                "local": _hostport(laddr, lport),
                "remote": _hostport(raddr, rport),
                "state": _TCP_STATES.get(f[3], f[3]) if protocol.startswith("tcp") else "",
                "inode": int(f[9]) if f[9].isdigit() else 0,
            }
        )
    return out


def connections_of(paths: HostPaths, container: Container) -> list[dict[str, Any]]:
    """The sockets of the container's network namespace (/proc/<init>/net/{tcp,tcp6,udp,udp6}).

    Each read walks the kernel's whole socket hash (~0.5 ms apiece on this host, whatever the
    netns), so this is the costly part of a snapshot."""
    connections: list[dict[str, Any]] = []
    net = paths.pid_dir(container.init_pid) / "net"
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            connections.extend(parse_proc_net((net / proto).read_text(), proto))
        except OSError:
            continue
    return connections[:1024]


def evidence_snapshot(
    paths: HostPaths,
    container: Container,
    recent_events: Iterable[Mapping[str, Any]] = (),
    connections: bool = True,
) -> dict[str, Any]:
    """Process tree, sockets of the container's netns (unless ``connections`` is false) and
    recent events, as a JSON-able dict."""
    cgdirs: list[Path] = []
    if container.cgroup_v1.get("freezer", "").strip("/"):
        cgdirs.append(cgroup_dir_v1(paths, "freezer", container.cgroup_v1["freezer"]))
    if container.cgroup_v2.strip("/"):
        cgdirs.append(cgroup_dir_v2(paths, container.cgroup_v2))
    pids: list[int] = []
    for d in cgdirs:
        pids = _cgroup_pids(d)
        if pids:
            break
    processes = [p for p in (_process(paths, pid) for pid in pids[:512]) if p is not None]
    return {
        "ts": time.time(),
        "container_id": container.id,
        "processes": processes,
        "connections": connections_of(paths, container) if connections else None,
        "recent_events": list(recent_events),
    }
