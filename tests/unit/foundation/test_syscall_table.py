# SPDX-License-Identifier: Apache-2.0
"""The one syscall table: generated from the UAPI header, and every user takes its numbers from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.decoders.ebpf import PRIV_SYSCALLS
from agent.syscall_table import X86_64, syscall_name, syscall_number

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
from scripts.gen_syscall_table import HEADER, parse, render  # noqa: E402


def test_known_numbers_and_fallback_name() -> None:
    assert syscall_number("execve") == 59 and syscall_name(59) == "execve"
    assert syscall_number("renameat2") == 316 and syscall_number("utimensat") == 280
    assert syscall_name(100_000) == "sys_100000"
    with pytest.raises(KeyError):
        syscall_number("no_such_call")


def test_priv_numbers_come_from_the_table() -> None:
    assert all(X86_64[nr] == name for name, nr in PRIV_SYSCALLS.items())


def test_render_round_trips_a_header() -> None:
    text = "#define __NR_read 0\n#define __NR_write 1\n#define __NR_exit 60\n"
    table = parse(text)
    assert table == {0: "read", 1: "write", 60: "exit"}
    ns: dict[str, object] = {}
    exec(render(table, "test"), ns)
    assert ns["X86_64"] == table


@pytest.mark.skipif(
    not HEADER.exists(), reason="linux-libc-dev is not installed, so there is no header to compare with"
)
def test_committed_table_is_the_generated_one() -> None:
    p = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_syscall_table.py"), "--check"], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout + p.stderr
