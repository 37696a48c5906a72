# SPDX-License-Identifier: Apache-2.0
"""Listening sockets of a network namespace through NETLINK_SOCK_DIAG (inet_diag).

``/proc/<pid>/net/tcp`` and ``tcp6`` make the kernel walk the whole established-connection hash
table of the namespace on every read: 1.1 ms each on the lab VM, twice per container per
behaviour window. An inet_diag dump asked only for LISTEN sockets walks the listening table
alone. This is the one inet_diag request the agent makes, so the wire format (linux/
inet_diag.h, linux/sock_diag.h) is packed here rather than loading pyroute2's DiagSocket for it
(~24 MiB resident for the agent's lifetime).

The netlink socket must be created inside the target namespace (``in_netns``); it stays bound
to that namespace afterwards, so the dump itself runs in the calling thread.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from pathlib import Path

from agent.runtime.netns import in_netns

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
TCP_ESTABLISHED, TCP_CLOSE, TCP_LISTEN = 1, 7, 10

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states, then the 48-byte inet_diag_sockid.
_REQ = struct.Struct("=BBBxI48s")
# inet_diag_msg: family, state, timer, retrans, then the sockid: sport and dport (big-endian),
# src[16], dst[16], if, cookie[2]; then expires, rqueue, wqueue, uid, inode.
_MSG = struct.Struct("=BBBB")
_SOCKID = struct.Struct(">HH16s16s")


class SockDiagError(OSError):
    """The kernel refused the dump (its errno is kept)."""


def _request(family: int, protocol: int, states: int, seq: int) -> bytes:
    body = _REQ.pack(family, protocol, 0, states, bytes(48))
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def parse_dump(data: bytes, protocol: str) -> tuple[list[tuple[str, int, str]], bool]:
    """The (address, port, protocol) rows of a chunk of dump replies, and whether NLMSG_DONE
    was in it. ``protocol`` is "tcp" or "udp"; "6" is appended for IPv6 sockets, as in
    /proc/net/tcp6. A UDP socket with a peer port (connected) is not a bound listener."""
    out: list[tuple[str, int, str]] = []
    off = 0
    while off + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, off)
        if length < _NLMSGHDR.size or off + length > len(data):
            raise SockDiagError(0, f"truncated netlink message ({length} bytes at {off})")
        body = off + _NLMSGHDR.size
        if kind == NLMSG_DONE:
            return out, True
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, body)
            if err:
                raise SockDiagError(-err, f"inet_diag dump refused: {os.strerror(-err)}")
        elif kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSGHDR.size + _MSG.size + _SOCKID.size:
            family, _state, _timer, _retrans = _MSG.unpack_from(data, body)
            sport, dport, src, _dst = _SOCKID.unpack_from(data, body + _MSG.size)
            if not (protocol == "udp" and dport):
                v6 = family == socket.AF_INET6
                addr = str(ipaddress.IPv6Address(src) if v6 else ipaddress.IPv4Address(src[:4]))
                out.append((addr, sport, protocol + ("6" if v6 else "")))
        off += (length + 3) & ~3
    return out, False


def _dump(sock: socket.socket, family: int, protocol: str, states: int, seq: int) -> list[tuple[str, int, str]]:
    proto = socket.IPPROTO_TCP if protocol == "tcp" else socket.IPPROTO_UDP
    sock.send(_request(family, proto, states, seq))
    rows: list[tuple[str, int, str]] = []
    while True:
        chunk, done = parse_dump(sock.recv(65536), protocol)
        rows.extend(chunk)
        if done:
            return rows


def open_diag_socket(netns: Path) -> socket.socket:
    """A NETLINK_SOCK_DIAG socket bound to the network namespace at ``netns``."""

    def make() -> socket.socket:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
        s.settimeout(2.0)
        return s

    return in_netns(netns, make)


def listening(sock: socket.socket) -> list[tuple[str, int, str]]:
    """Listening TCP and bound (unconnected) UDP sockets of the socket's namespace, as
    ``agent.sources.procfs.listening_sockets`` reports them from /proc."""
    out: list[tuple[str, int, str]] = []
    seq = 0
    for family in (socket.AF_INET, socket.AF_INET6):
        for protocol, states in (("tcp", 1 << TCP_LISTEN), ("udp", 1 << TCP_CLOSE)):
            seq += 1
            out.extend(_dump(sock, family, protocol, states, seq))
    return sorted(set(out))
