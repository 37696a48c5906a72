# SPDX-License-Identifier: Apache-2.0
"""Capture inside real containers' network namespaces: a TCP flow between two test containers on
Docker's default bridge, a refused connect and a DNS query, with the right features, attributed to
the right container. Both containers are the test's own (HOSTLAB network rule)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP, UDP
from scapy.utils import rdpcap

from agent.events import FlowWindow
from agent.hostfs import HostPaths
from agent.runtime.model import ContainerRegistry
from agent.runtime.netns import enter_netns
from agent.settings.sources import CaptureSettings
from agent.sources.capture import CaptureSource
from tests.support import need_tool

PAYLOAD = 60000


def _send_malformed(pid: int, dst: str, src: str) -> None:
    """From inside the container's netns, send frames with broken IPv4/TCP/UDP headers to ``dst``."""
    good = bytes(IP(src=src, dst=dst) / TCP(sport=1234, dport=9000, flags="S"))
    frames = [
        bytes(IP(src=src, dst=dst, ihl=3) / TCP(sport=1234, dport=9000)),  # IHL < 5
        good[:30],  # TCP header cut short (IP total length says 40)
        bytes(IP(src=src, dst=dst) / UDP(sport=1, dport=53, len=4)),  # UDP length < 8
    ]
    error: list[BaseException] = []

    def send() -> None:
        try:
            enter_netns(Path(f"/proc/{pid}/ns/net"))
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
                sock.bind(("eth0", 0))
                for f in frames:
                    # Broadcast destination: the bridge floods it to the server's port too.
                    sock.send(b"\xff" * 6 + b"\x02\x42\x00\x00\x00\x01" + b"\x08\x00" + f)
        except BaseException as exc:  # surfaced in the test thread below
            error.append(exc)

    t = threading.Thread(target=send)
    t.start()
    t.join(5)
    assert not error, error


def test_capture_sees_the_test_flow(
    run_container: Callable[..., Any], container_record: Callable[[Any], Any], tmp_path: Path
) -> None:
    need_tool("tcpdump")
    server = run_container(
        "sh",
        "-c",
        f"mkdir /tmp/www; head -c {PAYLOAD} /dev/zero > /tmp/www/blob; exec httpd -f -p 9000 -h /tmp/www",
        network_mode="bridge",
    )
    client = run_container("sleep", "600", network_mode="bridge")
    isolated = run_container("sleep", "600")  # network none: skipped
    reg = ContainerRegistry()
    recs = {c.id: container_record(c) for c in (server, client, isolated)}
    for r in recs.values():
        reg.upsert(r)
    server_ip = recs[server.id].details["ip_addresses"]["bridge"]
    client_ip = recs[client.id].details["ip_addresses"]["bridge"]
    got: list[FlowWindow] = []
    settings = CaptureSettings(
        enabled=True, bpf_filter="ip", pcap_evidence=True, pcap_dir=tmp_path / "pcap", pcap_file_mb=1, pcap_files=2
    )
    src = CaptureSource(settings, HostPaths(), reg, got.append, interval=3600)
    src.start()
    try:
        assert set(src.captures) == {server.id, client.id}
        assert "network mode none" in src.skipped[isolated.id]
        for cap in src.captures.values():
            assert cap.ready.wait(5) and cap.error == "", cap.error
        time.sleep(0.3)  # tcpdump opens its socket
        r = client.exec_run(["wget", "-q", "-O", "/dev/null", f"http://{server_ip}:9000/blob"])
        assert r.exit_code == 0, r.output
        client.exec_run(["nc", "-w", "1", server_ip, "9001"])  # nothing listens: RST
        client.exec_run(["nslookup", "-timeout=1", "rg-capture-test.example", server_ip])
        _send_malformed(recs[client.id].init_pid, server_ip, client_ip)
        time.sleep(0.5)
        windows = {w.container.id: w for w in src.flush(time.time()) if w.container is not None}
    finally:
        src.stop()
    c, s = windows[client.id], windows[server.id]
    assert isolated.id not in windows
    # The payload and its headers one way (server → client), the request and acks the other way;
    # both ends agree (up to header bytes: GSO/GRO may merge segments differently on each side).
    assert PAYLOAD < s.bytes_out < PAYLOAD * 1.1 and PAYLOAD < c.bytes_in < PAYLOAD * 1.1
    assert abs(s.bytes_out - c.bytes_in) < PAYLOAD * 0.05
    assert 0 < c.bytes_out < PAYLOAD / 5 and abs(c.bytes_out - s.bytes_in) < PAYLOAD * 0.05
    assert c.packets_out >= 3 and c.packets_in >= 2 and s.packets_in >= 3 and s.packets_out >= 2
    assert c.peers == {server_ip} and s.peers == {client_ip}
    assert {9000, 9001, 53} <= c.dst_ports
    assert c.syn_sent >= 2 and c.failed_connects >= 1
    assert "rg-capture-test.example" in c.dns_names
    # Three broken frames sent out of the client's eth0: counted and skipped. (The bridge's IPv4
    # sanity check, br_validate_ipv4, drops some of them before they reach the server.)
    assert c.malformed == 3 and s.malformed <= 3
    pcaps = list((tmp_path / "pcap" / client.id).glob("evidence.pcap*"))
    assert 0 < len(pcaps) <= settings.pcap_files
    flow = [p for f in pcaps for p in rdpcap(str(f)) if p.haslayer(TCP) and 9000 in (p[TCP].sport, p[TCP].dport)]
    assert len(flow) >= c.packets_in  # snaplen-truncated copies of the flow's packets
    assert sorted(w.container.id for w in got if w.container) == sorted(windows)


def test_a_host_network_container_is_not_captured(
    run_container: Callable[..., Any], container_record: Callable[[Any], Any]
) -> None:
    c = run_container("sleep", "600", network_mode="host")
    reg = ContainerRegistry()
    reg.upsert(container_record(c))
    src = CaptureSource(CaptureSettings(enabled=True), HostPaths(), reg, lambda w: None, interval=3600)
    src.start()
    try:
        assert src.captures == {}
        assert "host" in src.skipped[c.id]
    finally:
        src.stop()
