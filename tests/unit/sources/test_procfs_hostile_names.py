# SPDX-License-Identifier: Apache-2.0
"""A process whose executable's name is not UTF-8 is read like any other: its comm and exe come
back with U+FFFD, never hidden (a decode error) and never carrying surrogates downstream."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.detectors.lineage import _readlink as lineage_readlink
from agent.hostfs import HostPaths
from agent.sources.ebpf.complete import _comm_of, _read_link
from agent.sources.procfs import read_process

NAME = b"\xff\xfe\x1b[2Jevil"


@pytest.fixture
def hostile_proc(tmp_path: Path) -> Iterator[int]:
    exe = os.path.join(os.fsencode(tmp_path), NAME)  # noqa: PTH118 - a bytes path: the non-UTF-8 name goes to exec as raw bytes
    shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)
    proc = subprocess.Popen([exe, "30"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_non_utf8_comm_and_exe_are_read_with_replacement(hostile_proc: int) -> None:
    info = read_process(HostPaths(), hostile_proc)
    assert info is not None  # a strict decode used to drop the process from the snapshot
    assert info.comm.startswith("\ufffd\ufffd") and info.comm.endswith("evil")
    assert info.exe.endswith("\ufffd\ufffd\x1b[2Jevil")
    info.exe.encode("utf-8")  # no surrogates left: the store and the outputs can take it
    assert _comm_of(HostPaths(), hostile_proc) == info.comm
    assert _read_link(HostPaths().pid_dir(hostile_proc) / "exe") == info.exe
    assert lineage_readlink(HostPaths().pid_dir(hostile_proc) / "exe") == info.exe
