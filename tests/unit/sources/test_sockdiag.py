# SPDX-License-Identifier: Apache-2.0
"""sock_diag replies: malformed and refused dumps are errors, never a wrong socket list.

The well-formed path is checked against /proc on a real container in
tests/privileged/sources/test_procfs_live.py; here, what a broken or refusing kernel reply does.
"""

from __future__ import annotations

import errno
import struct

import pytest

from agent.sources.sockdiag import NLMSG_DONE, NLMSG_ERROR, SockDiagError, parse_dump

HDR = struct.Struct("=IHHII")


def message(kind: int, body: bytes) -> bytes:
    return HDR.pack(HDR.size + len(body), kind, 2, 1, 0) + body


def test_done_ends_an_empty_dump() -> None:
    assert parse_dump(message(NLMSG_DONE, struct.pack("=i", 0)), "tcp") == ([], True)
    assert parse_dump(b"", "tcp") == ([], False)  # nothing yet: keep reading


def test_a_refused_dump_raises_with_the_errno() -> None:
    with pytest.raises(SockDiagError) as err:
        parse_dump(message(NLMSG_ERROR, struct.pack("=i", -errno.EPERM) + bytes(16)), "udp")
    assert err.value.errno == errno.EPERM


def test_a_truncated_message_raises() -> None:
    whole = message(20, bytes(72))
    with pytest.raises(SockDiagError):
        parse_dump(whole[:40], "tcp")
    bad_len = HDR.pack(8, 20, 0, 1, 0) + bytes(72)  # a length shorter than the header itself
    with pytest.raises(SockDiagError):
        parse_dump(bad_len, "tcp")
