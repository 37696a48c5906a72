# SPDX-License-Identifier: Apache-2.0
"""A container's listening services, read from its network namespace's ``/proc/<pid>/net``.

``/proc/<pid>/net/tcp`` (and ``tcp6``, ``udp``, ``udp6``) list the sockets of the namespace the
process lives in, so reading them through the container's init pid needs no ``setns``. Addresses
are hex in host byte order per 32-bit word (the kernel prints ``__be32`` with ``%08X``).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import asdict, dataclass
from typing import Any

from agent.hostfs import HostPaths

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


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


def _addr(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    # Each 32-bit word was printed as a native (little-endian here) integer: swap back per word.
    words = struct.unpack(f"<{len(raw) // 4}I", raw)
    packed = struct.pack(f">{len(words)}I", *words)
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    ip6 = ipaddress.IPv6Address(packed)
    return str(ip6.ipv4_mapped) if ip6.ipv4_mapped else str(ip6)


def parse_net_table(text: str, proto: str) -> list[Service]:
    """Listening entries of one ``/proc/net/{tcp,tcp6,udp,udp6}`` table; bad lines are skipped."""
    want = TCP_LISTEN if proto.startswith("tcp") else UDP_UNCONNECTED
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != want:
            continue
        try:
            host, port = fields[1].split(":")
            out.append(Service(proto, _addr(host), int(port, 16), int(fields[9])))
        except (ValueError, struct.error):
            continue
    return out


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
