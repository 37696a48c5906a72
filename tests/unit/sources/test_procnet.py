# SPDX-License-Identifier: Apache-2.0
"""The one /proc/<pid>/net/{tcp,tcp6,udp,udp6} decoder on table text as the kernel prints it."""

from __future__ import annotations

import pytest

from agent.hostfs import HostPaths
from agent.sources.procnet import NetRow, decode_addr, is_listening, parse_table, read_tables

HEAD = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
TCP = HEAD + (
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0\n"
    "   1: 0100007F:1F90 0100007F:D3F6 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1\n"
    "   2: garbage\n"
    "   3: ZZ00007F:1F90 0100007F:D3F6 01 00000000:00000000 00:00000000 00000000     0        0 333 1\n"
)
TCP6 = HEAD + (
    "   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:D3F6 01 "
    "00000000:00000000 00:00000000 00000000     0        0 444 1 0 20 4 30 10 -1\n"
)
UDP = HEAD + (
    "  10: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 555 2 0 0\n"
    "  11: 0100007F:AAAA 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 666 2 0 0\n"
)


def test_addresses_are_host_order_words() -> None:
    assert decode_addr("0100007F:1F90") == ("127.0.0.1", 8080)
    assert decode_addr("00000000000000000000000001000000:0016") == ("::1", 22)
    mapped = "0000000000000000FFFF00000100007F:D3F6"
    assert decode_addr(mapped) == ("::ffff:127.0.0.1", 0xD3F6)
    assert decode_addr(mapped, unmap=True) == ("127.0.0.1", 0xD3F6)
    for bad in ("0100:0016", "zz:00", "0100007F"):
        with pytest.raises(ValueError):
            decode_addr(bad)


def test_rows_and_listening() -> None:
    rows = parse_table(TCP, "tcp")
    assert rows == [
        NetRow("tcp", "127.0.0.1", 8080, "0.0.0.0", 0, "0A", 111),
        NetRow("tcp", "127.0.0.1", 8080, "127.0.0.1", 0xD3F6, "01", 222),
    ]  # the garbage and the non-hex lines are skipped
    assert [r.inode for r in rows if is_listening(r)] == [111]
    udp = parse_table(UDP, "udp")
    assert [r.inode for r in udp if is_listening(r)] == [555]  # a connected UDP socket is not a listener
    assert parse_table(TCP6, "tcp6", unmap=True)[0].remote == "127.0.0.1"


def test_read_tables_of_a_pid(host_tree: HostPaths) -> None:
    net = host_tree.pid_dir(9) / "net"
    net.mkdir(parents=True)
    (net / "tcp").write_text(TCP)
    (net / "udp").write_text(UDP)  # no tcp6/udp6: IPv6 off in that namespace
    rows = read_tables(host_tree, 9)
    assert {(r.table, r.inode) for r in rows} == {("tcp", 111), ("tcp", 222), ("udp", 555), ("udp", 666)}
    assert read_tables(host_tree, 10) == []  # the process is gone
