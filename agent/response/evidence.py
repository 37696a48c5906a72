# SPDX-License-Identifier: Apache-2.0
"""Evidence taken before an isolation: the container's process tree, the sockets of its network
namespace, and its recent events, stored next to the action record they justify."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from typing import Any

from agent.events import Event
from agent.hostfs import HostPaths
from agent.runtime.cgroups import container_pids
from agent.runtime.model import Container
from agent.sources import procnet
from agent.sources.procfs import stat_fields


def event_dict(ev: Event) -> dict[str, Any]:
    """An event as JSON-able evidence (scalars kept, collections cut to 32 items)."""
    out: dict[str, Any] = {"kind": ev.kind}
    for f in dataclasses.fields(ev):
        if f.name == "container":
            continue
        v = getattr(ev, f.name)
        if isinstance(v, str | int | float | bool) or v is None:
            out[f.name] = v
        elif isinstance(v, tuple | list | frozenset | set):
            out[f.name] = [x if isinstance(x, str | int | float) else str(x) for x in list(v)[:32]]
    return out


def _process(paths: HostPaths, pid: int) -> dict[str, Any] | None:
    d = paths.pid_dir(pid)
    try:
        stat = (d / "stat").read_text()
        cmdline = (d / "cmdline").read_bytes()
    except OSError:
        return None  # exited while we looked: normal
    comm, fields = stat_fields(stat)
    try:
        exe = str((d / "exe").readlink())
    except OSError:
        exe = ""
    return {
        "pid": pid,
        "ppid": int(fields[1]) if len(fields) > 1 else 0,
        "comm": comm,
        "state": fields[0] if fields else "",
        "exe": exe,
        "argv": [a.decode(errors="replace") for a in cmdline.split(b"\0") if a],
    }


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_proc_net(text: str, protocol: str) -> list[dict[str, Any]]:
    """Parse ``/proc/<pid>/net/{tcp,tcp6,udp,udp6}``; malformed lines are skipped."""
    return [
        {
            "protocol": protocol,
            "local": _hostport(r.local, r.local_port),
            "remote": _hostport(r.remote, r.remote_port),
            "state": procnet.TCP_STATES.get(r.state, r.state) if protocol.startswith("tcp") else "",
            "inode": r.inode,
        }
        for r in procnet.parse_table(text, protocol)
    ]


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
    pids = container_pids(paths, container)
    processes = [p for p in (_process(paths, pid) for pid in pids[:512]) if p is not None]
    return {
        "ts": time.time(),
        "container_id": container.id,
        "processes": processes,
        "connections": connections_of(paths, container) if connections else None,
        "recent_events": list(recent_events),
    }
