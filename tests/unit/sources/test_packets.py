# SPDX-License-Identifier: Apache-2.0
"""Packet decoding and flow features on frames built with scapy (the real encoder)."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Ether

from agent.decoders.packets import TCP_ACK, TCP_RST, TCP_SYN, FlowAccumulator, MalformedPacket, decode_frame

ME, PEER, OTHER = "172.17.0.2", "172.17.0.3", "172.17.0.9"


def frame(pkt: object) -> bytes:
    return bytes(Ether(src="02:42:ac:11:00:02", dst="02:42:ac:11:00:03") / pkt)  # type: ignore[operator]


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, payload: bytes = b"") -> bytes:
    return frame(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags) / payload)


def test_decode_tcp_udp_dns_and_v6() -> None:
    p = decode_frame(tcp(ME, PEER, 40000, 80, "S"), outgoing=True)
    assert (p.proto, p.src, p.dst, p.sport, p.dport, p.tcp_flags) == ("tcp", ME, PEER, 40000, 80, TCP_SYN)
    q = frame(IP(src=ME, dst=PEER) / UDP(sport=5555, dport=53) / DNS(rd=1, qd=DNSQR(qname="Example.ORG")))
    d = decode_frame(q, outgoing=True)
    assert d.proto == "udp" and d.dns_query == "example.org"
    assert decode_frame(q, outgoing=False).dns_query == ""  # only our own queries count
    v6 = frame(IPv6(src="fd00::2", dst="fd00::3") / IPv6ExtHdrHopByHop() / TCP(sport=1, dport=443, flags="S"))
    p6 = decode_frame(v6, outgoing=True)
    assert (p6.proto, p6.dst, p6.dport) == ("tcp", "fd00::3", 443)
    arp = decode_frame(frame(ARP()), outgoing=True)
    assert arp.proto == "other" and arp.src == ""
    # A frame truncated to the snaplen still counts its wire length.
    big = tcp(ME, PEER, 40000, 80, "PA", b"x" * 1400)
    assert decode_frame(big[:96], outgoing=True, wire_length=len(big)).length == len(big)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00" * 10,  # shorter than Ethernet
        frame(IP(src=ME, dst=PEER) / TCP())[:30],  # IPv4 header cut
        frame(IP(src=ME, dst=PEER) / TCP())[:40],  # TCP header cut
        frame(IP(src=ME, dst=PEER, ihl=3) / TCP()),  # ihl < 5
        frame(IP(src=ME, dst=PEER) / UDP(sport=1, dport=2, len=4)),  # UDP length < 8
        frame(IP(src=ME, dst=PEER) / UDP(sport=1, dport=53) / b"\xff\x01"),  # not DNS
        frame(IPv6(src="fd00::2", dst="fd00::3") / TCP())[:50],  # IPv6 header cut
    ],
)
def test_malformed_frames_raise(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode_frame(data, outgoing=True)


def test_flow_features() -> None:
    acc = FlowAccumulator(syn_grace=1.0)
    seq = [
        # an answered connect with data both ways
        (tcp(ME, PEER, 40000, 80, "S"), True),
        (tcp(PEER, ME, 80, 40000, "SA"), False),
        (tcp(ME, PEER, 40000, 80, "PA", b"x" * 100), True),
        (tcp(PEER, ME, 80, 40000, "PA", b"y" * 300), False),
        # refused: RST answers the SYN
        (tcp(ME, PEER, 40001, 81, "S"), True),
        (tcp(PEER, ME, 81, 40001, "RA"), False),
        # unanswered
        (tcp(ME, OTHER, 40002, 4444, "S"), True),
        (frame(IP(src=ME, dst=PEER) / UDP(sport=5555, dport=53) / DNS(qd=DNSQR(qname="pool.miner.example"))), True),
    ]
    for data, out in seq:
        acc.add(decode_frame(data, out), now=10.0)
    late = tcp(ME, OTHER, 40003, 4444, "S")  # sent just before close: judged next window
    acc.add(decode_frame(late, True), now=10.9)
    w = acc.close(now=11.0)
    assert w["packets_out"] == 6 and w["packets_in"] == 3
    assert w["bytes_out"] == sum(len(d) for d, o in seq if o) + len(late)
    assert w["bytes_in"] == sum(len(d) for d, o in seq if not o)
    assert w["peers"] == {PEER, OTHER}
    assert w["dst_ports"] == {80, 81, 4444, 53}
    assert w["syn_sent"] == 4 and w["failed_connects"] == 1 and w["syn_unanswered"] == 1
    assert w["dns_names"] == {"pool.miner.example"}
    nxt = acc.close(now=12.0)
    assert nxt["syn_unanswered"] == 1 and nxt["packets_out"] == 0 and nxt["syn_sent"] == 0


def test_flow_sets_are_bounded() -> None:
    acc = FlowAccumulator(max_set=10)
    for i in range(50):
        acc.add(decode_frame(tcp(ME, f"10.0.0.{i}", 40000, 1000 + i, "S"), True), now=0.0)
    w = acc.close(now=5.0)
    assert len(w["peers"]) == 10 and len(w["dst_ports"]) == 10  # type: ignore[arg-type]
    assert w["syn_sent"] == 50 and w["syn_unanswered"] == 10
    assert TCP_ACK and TCP_RST  # flags are exported for detectors
