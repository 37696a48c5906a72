# SPDX-License-Identifier: Apache-2.0
"""The one decoder of ``/proc/<pid>/net/{tcp,tcp6,udp,udp6}``: the socket tables of the network
namespace a process lives in (reading them through a pid needs no ``setns``).

The kernel prints each address as 32-bit words with ``%08X`` of the ``__be32`` value, so on a
little-endian host every word comes out byte-swapped: ``0100007F:1F90`` is 127.0.0.1:8080. The
state column is the TCP state in hex (``0A`` = LISTEN; an unconnected UDP socket shows ``07``).
Each read makes the kernel walk the whole socket hash: prefer sock_diag
(``agent.sources.sockdiag``) for repeated listings.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.hostfs import HostPaths

TABLES = ("tcp", "tcp6", "udp", "udp6")
_V4_MAPPED = bytes(10) + b"\xff\xff"
TCP_LISTEN = "0A"  # include/net/tcp_states.h TCP_LISTEN, as the table prints it
UDP_UNCONNECTED = "07"  # an unconnected UDP socket is TCP_CLOSE (7)
# include/net/tcp_states.h, as the table prints them
TCP_STATES: Mapping[str, str] = {
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


@dataclass(frozen=True, slots=True)
class NetRow:
    """One socket of a table: ``table`` (tcp, tcp6, udp, udp6), local and remote address and
    port, the state as printed (hex), the socket inode."""

    table: str
    local: str
    local_port: int
    remote: str
    remote_port: int
    state: str
    inode: int


def decode_addr(text: str, unmap: bool = False) -> tuple[str, int]:
    """``ADDR:PORT`` of a table -> (address, port); ``unmap``: an IPv4-mapped IPv6 address
    (``::ffff:a.b.c.d``) as its IPv4 address. ``ValueError`` when malformed."""
    addr, _, port = text.partition(":")
    raw = bytes.fromhex(addr)
    if len(raw) not in (4, 16):
        raise ValueError(f"not a /proc/net address: {text!r}")
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return socket.inet_ntop(socket.AF_INET, words), int(port, 16)
    if unmap and words[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, words[12:]), int(port, 16)
    # inet_ntop, as sock_diag's addresses are printed: ::ffff:127.0.0.1, not ::ffff:7f00:1
    return socket.inet_ntop(socket.AF_INET6, words), int(port, 16)


def parse_table(text: str, table: str, unmap: bool = False) -> list[NetRow]:
    """Every socket row of one table's text; malformed lines are skipped."""
    out: list[NetRow] = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        try:
            la, lp = decode_addr(f[1], unmap)
            ra, rp = decode_addr(f[2], unmap)
            inode = int(f[9])
        except ValueError:
            continue
        out.append(NetRow(table, la, lp, ra, rp, f[3], inode))
    return out


def read_tables(paths: HostPaths, pid: int, tables: Iterable[str] = TABLES, unmap: bool = False) -> list[NetRow]:
    """The rows of ``pid``'s netns tables; a table that cannot be read (the process is gone, IPv6
    is off in the namespace) contributes nothing."""
    out: list[NetRow] = []
    for table in tables:
        try:
            text = (paths.pid_dir(pid) / "net" / table).read_text()
        except OSError:
            continue
        out.extend(parse_table(text, table, unmap))
    return out


def is_listening(row: NetRow) -> bool:
    """A listening TCP socket, or a bound unconnected UDP socket."""
    if row.table.startswith("tcp"):
        return row.state == TCP_LISTEN
    return row.state == UDP_UNCONNECTED and row.remote_port == 0
