# SPDX-License-Identifier: Apache-2.0
"""A container's listening services, read from its network namespace's ``/proc/<pid>/net``
(decoded by ``agent.sources.procnet``: reading them through the container's init pid needs no
``setns``)."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any

from agent.hostfs import HostPaths
from agent.sources import procnet


@dataclass(frozen=True, slots=True)
class Service:
    """One listening socket: protocol, bound address and port, socket inode."""

    proto: str  # tcp | tcp6 | udp | udp6
    address: str
    port: int
    inode: int

    @property
    def loopback_only(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "loopback_only": self.loopback_only}


def parse_net_table(text: str, proto: str) -> list[Service]:
    """Listening entries of one ``/proc/net/{tcp,tcp6,udp,udp6}`` table; bad lines are skipped."""
    rows = procnet.parse_table(text, proto, unmap=True)
    return [Service(proto, r.local, r.local_port, r.inode) for r in rows if procnet.is_listening(r)]


def listening_services(paths: HostPaths, pid: int) -> list[Service]:
    """Every listening TCP socket and bound UDP socket in ``pid``'s network namespace."""
    out: list[Service] = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            text = (paths.pid_dir(pid) / "net" / proto).read_text()
        except OSError:
            continue  # process gone, or IPv6 disabled in the namespace
        out.extend(parse_net_table(text, proto))
    return sorted(set(out), key=lambda s: (s.proto, s.port, s.address))
