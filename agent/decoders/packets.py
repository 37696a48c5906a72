# SPDX-License-Identifier: Apache-2.0
"""Pure packet decoding and per-window flow features for the capture source.

``decode_frame`` turns one captured Ethernet frame into a ``PacketInfo`` (or raises
``MalformedPacket``); ``FlowAccumulator`` folds packets into the fields of a ``FlowWindow``:
bytes and packets each way, distinct peers and destination ports, SYNs sent and left
unanswered, failed connects (a RST answering our SYN), DNS names queried.

Link, IP and transport headers are read with ``struct``: scapy's dissection costs ~100 µs per
packet, too slow for accounting every packet of a busy container; dnspython parses the rare
payloads that need a real protocol parser (DNS queries).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import TypedDict

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
# IPv6 extension headers we walk over to reach TCP/UDP (RFC 8200 §4).
_V6_EXT = {0, 43, 60, 51}


class MalformedPacket(ValueError):
    """A frame whose headers are truncated or inconsistent; counted and skipped."""


@dataclass(frozen=True, slots=True)
class PacketInfo:
    """What the flow features need of one packet."""

    outgoing: bool
    length: int  # bytes on the wire (the frame length before snaplen truncation)
    proto: str  # tcp | udp | icmp | icmp6 | other
    src: str
    dst: str
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    dns_query: str = ""  # the qname of an outgoing DNS query


def _dns_qname(payload: bytes) -> str:
    """The first question's name of a DNS query (dnspython's wire parser); "" if it is not one.

    dnspython rather than scapy's DNS layer: same parse, a quarter of the memory in the agent.
    """
    import dns.exception
    import dns.flags
    import dns.message

    try:
        msg = dns.message.from_wire(payload, question_only=True)
    except (dns.exception.DNSException, ValueError, IndexError) as exc:
        raise MalformedPacket(f"unparseable DNS payload: {type(exc).__name__}") from None
    if msg.flags & dns.flags.QR or not msg.question:
        return ""
    return msg.question[0].name.to_text(omit_final_dot=True).lower()


def decode_frame(data: bytes, outgoing: bool, wire_length: int | None = None) -> PacketInfo:
    """Decode an Ethernet frame (possibly truncated to the snaplen after the headers)."""
    length = wire_length if wire_length is not None else len(data)
    if len(data) < 14:
        raise MalformedPacket(f"frame of {len(data)} bytes is shorter than an Ethernet header")
    (ethertype,) = struct.unpack_from("!H", data, 12)
    off = 14
    if ethertype == ETH_P_8021Q:
        if len(data) < 18:
            raise MalformedPacket("truncated VLAN tag")
        (ethertype,) = struct.unpack_from("!H", data, 16)
        off = 18
    if ethertype == ETH_P_IP:
        if len(data) < off + 20:
            raise MalformedPacket("truncated IPv4 header")
        vihl = data[off]
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20 or len(data) < off + ihl:
            raise MalformedPacket(f"bad IPv4 header (version/ihl byte {vihl:#x})")
        total = struct.unpack_from("!H", data, off + 2)[0]
        if total < ihl:
            raise MalformedPacket(f"IPv4 total length {total} < header length {ihl}")
        proto_n = data[off + 9]
        src = socket.inet_ntop(socket.AF_INET, data[off + 12 : off + 16])
        dst = socket.inet_ntop(socket.AF_INET, data[off + 16 : off + 20])
        frag_off = struct.unpack_from("!H", data, off + 6)[0] & 0x1FFF
        l4 = off + ihl
        if frag_off:  # a non-first fragment carries no transport header
            return PacketInfo(outgoing, length, "other", src, dst)
    elif ethertype == ETH_P_IPV6:
        if len(data) < off + 40:
            raise MalformedPacket("truncated IPv6 header")
        if data[off] >> 4 != 6:
            raise MalformedPacket("bad IPv6 version")
        proto_n = data[off + 6]
        src = socket.inet_ntop(socket.AF_INET6, data[off + 8 : off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, data[off + 24 : off + 40])
        l4 = off + 40
        hops = 0
        while proto_n in _V6_EXT:
            if len(data) < l4 + 8 or hops > 8:
                raise MalformedPacket("truncated IPv6 extension header")
            proto_n, hlen = data[l4], (data[l4 + 1] + 1) * 8
            l4 += hlen
            hops += 1
    else:
        return PacketInfo(outgoing, length, "other", "", "")
    if proto_n == 6:
        if len(data) < l4 + 20:
            raise MalformedPacket("truncated TCP header")
        sport, dport = struct.unpack_from("!HH", data, l4)
        doff = (data[l4 + 12] >> 4) * 4
        if doff < 20:
            raise MalformedPacket(f"TCP data offset {doff} < 20")
        return PacketInfo(outgoing, length, "tcp", src, dst, sport, dport, data[l4 + 13])
    if proto_n == 17:
        if len(data) < l4 + 8:
            raise MalformedPacket("truncated UDP header")
        sport, dport, ulen = struct.unpack_from("!HHH", data, l4)
        if ulen < 8:
            raise MalformedPacket(f"UDP length {ulen} < 8")
        qname = ""
        if outgoing and dport == 53:
            qname = _dns_qname(data[l4 + 8 : l4 + ulen])
        return PacketInfo(outgoing, length, "udp", src, dst, sport, dport, dns_query=qname)
    if proto_n in (1, 58):
        return PacketInfo(outgoing, length, "icmp" if proto_n == 1 else "icmp6", src, dst)
    return PacketInfo(outgoing, length, "other", src, dst)


class FlowFields(TypedDict):
    """The ``FlowWindow`` fields one window of a ``FlowAccumulator`` yields."""

    bytes_in: int
    bytes_out: int
    packets_in: int
    packets_out: int
    peers: frozenset[str]
    dst_ports: frozenset[int]
    syn_sent: int
    syn_unanswered: int
    failed_connects: int
    dns_names: frozenset[str]
    malformed: int


Conn = tuple[str, int, str, int]  # (local addr, local port, remote addr, remote port)


@dataclass
class FlowAccumulator:
    """Flow features of one container's traffic over the open window.

    A SYN we sent is *answered* by a SYN-ACK or a RST from its peer (a RST is also a failed
    connect); it is *unanswered* when neither came within ``syn_grace`` seconds. SYNs younger
    than the grace at window close are judged in the next window.
    """

    syn_grace: float = 1.0
    max_set: int = 4096
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    peers: set[str] = field(default_factory=set)
    dst_ports: set[int] = field(default_factory=set)
    dns_names: set[str] = field(default_factory=set)
    syn_sent: int = 0
    failed_connects: int = 0
    malformed: int = 0
    overflow: int = 0
    pending_syn: dict[Conn, float] = field(default_factory=dict)

    def _bounded(self, s: set[object], v: object) -> None:
        if v in s:
            return
        if len(s) >= self.max_set:
            self.overflow += 1
            return
        s.add(v)

    def count_only(self, outgoing: bool, length: int) -> None:
        """Account a packet's size and direction without decoding it (rate-limited or odd)."""
        if outgoing:
            self.bytes_out += length
            self.packets_out += 1
        else:
            self.bytes_in += length
            self.packets_in += 1

    def add(self, p: PacketInfo, now: float) -> None:
        self.count_only(p.outgoing, p.length)
        if p.proto == "other" and not p.src:
            return  # ARP and other non-IP frames: counted, nothing else to learn
        peer = p.dst if p.outgoing else p.src
        self._bounded(self.peers, peer)  # type: ignore[arg-type]
        if p.proto == "tcp":
            syn = p.tcp_flags & TCP_SYN
            ack = p.tcp_flags & TCP_ACK
            if p.outgoing and syn and not ack:
                self.syn_sent += 1
                self._bounded(self.dst_ports, p.dport)  # type: ignore[arg-type]
                if len(self.pending_syn) < self.max_set:
                    self.pending_syn.setdefault((p.src, p.sport, p.dst, p.dport), now)
            elif not p.outgoing:
                conn = (p.dst, p.dport, p.src, p.sport)
                if conn in self.pending_syn and ((syn and ack) or p.tcp_flags & TCP_RST):
                    del self.pending_syn[conn]
                    if p.tcp_flags & TCP_RST:
                        self.failed_connects += 1
        elif p.proto == "udp" and p.outgoing:
            self._bounded(self.dst_ports, p.dport)  # type: ignore[arg-type]
            if p.dns_query:
                self._bounded(self.dns_names, p.dns_query)  # type: ignore[arg-type]

    def close(self, now: float) -> FlowFields:
        """The ``FlowWindow`` fields of the window ending ``now``; resets for the next one."""
        stale = [c for c, t in self.pending_syn.items() if now - t >= self.syn_grace]
        for c in stale:
            del self.pending_syn[c]
        out: FlowFields = {
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "packets_in": self.packets_in,
            "packets_out": self.packets_out,
            "peers": frozenset(self.peers),
            "dst_ports": frozenset(self.dst_ports),
            "syn_sent": self.syn_sent,
            "syn_unanswered": len(stale),
            "failed_connects": self.failed_connects,
            "dns_names": frozenset(self.dns_names),
            "malformed": self.malformed,
        }
        pending = self.pending_syn
        fresh = FlowAccumulator(syn_grace=self.syn_grace, max_set=self.max_set)
        self.__dict__.update(fresh.__dict__)
        self.pending_syn = pending
        return out
