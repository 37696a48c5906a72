# SPDX-License-Identifier: Apache-2.0
"""The BTF reader that gives the exec probe its struct offsets (agent/sources/ebpf/btf.py): a
synthetic blob with nested, typedef'd and anonymous members, and the running kernel's own."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from agent.sources.ebpf.btf import EXE_OFFSETS, STDIO_OFFSETS, Btf, BtfError, exe_offsets


def _blob() -> bytes:
    strings = b"\0int\0inner\0a\0name\0u\0outer\0x\0in\0inner_t\0"

    def off(name: str) -> int:
        return strings.index(b"\0" + name.encode() + b"\0") + 1

    def t(name_off: int, kind: int, vlen: int, size_type: int) -> bytes:
        return struct.pack("<III", name_off, (kind << 24) | vlen, size_type)

    def m(name_off: int, tid: int, bits: int) -> bytes:
        return struct.pack("<III", name_off, tid, bits)

    types = b"".join(
        (
            t(off("int"), 1, 0, 4) + struct.pack("<I", 32),  # 1: int
            t(off("inner"), 4, 2, 16) + m(off("a"), 1, 0) + m(off("name"), 3, 64),  # 2: struct inner
            t(0, 2, 0, 1),  # 3: int *
            t(0, 5, 1, 8) + m(off("u"), 1, 0),  # 4: anonymous union
            t(off("outer"), 4, 3, 40) + m(off("x"), 1, 0) + m(0, 4, 64) + m(off("in"), 6, 128),  # 5
            t(off("inner_t"), 8, 0, 2),  # 6: typedef struct inner inner_t
        )
    )
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def test_offsets_through_typedefs_and_anonymous_members() -> None:
    btf = Btf(_blob())
    assert btf.offset("outer.x") == 0
    assert btf.offset("outer.u") == 8  # inside the anonymous union at 8
    assert btf.offset("outer.in.name") == 16 + 8  # through the typedef to struct inner
    with pytest.raises(BtfError):
        btf.offset("outer.missing")
    with pytest.raises(BtfError):
        btf.offset("nosuch.x")
    with pytest.raises(BtfError):
        Btf(b"\0" * 32)


def test_a_missing_or_broken_file_gives_no_offsets(tmp_path: Path) -> None:
    assert exe_offsets(tmp_path / "absent") == {}
    (tmp_path / "broken").write_bytes(_blob()[:30])
    assert exe_offsets(tmp_path / "broken") == {}


def test_the_running_kernels_btf_has_every_member_the_exec_probe_reads() -> None:
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    if not vmlinux.exists():
        pytest.skip("This kernel exposes no BTF (/sys/kernel/btf/vmlinux).")
    got = exe_offsets(vmlinux)
    assert set(got) == set(EXE_OFFSETS) | set(STDIO_OFFSETS)
    assert all(0 <= int(v) < 8192 for v in got.values()), got


def _blob_of(paths: list[str]) -> bytes:
    """A BTF blob whose structs have exactly the members ``paths`` name (``struct.a.b``: member
    ``a`` a struct with member ``b``), each at offset 8 x its position, every leaf an int."""
    tree: dict[str, dict] = {}
    for path in paths:
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    strings = bytearray(b"\0")
    types: list[bytes] = []

    def name(s: str) -> int:
        strings.extend(s.encode() + b"\0")
        return len(strings) - len(s) - 1

    types.append(struct.pack("<IIII", name("int"), 1 << 24, 8, 64))  # type 1: int

    def add(sname: str, members: dict[str, dict]) -> int:
        ids = {m: add(f"{sname}_{m}", sub) if sub else 1 for m, sub in members.items()}
        body = b"".join(struct.pack("<III", name(m), ids[m], 64 * i) for i, m in enumerate(members))
        types.append(struct.pack("<III", name(sname), (4 << 24) | len(members), 8 * len(members)) + body)
        return len(types)

    for sname, members in tree.items():
        add(sname, members)
    blob = b"".join(types)
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(blob), len(blob), len(strings))
    return hdr + blob + bytes(strings)


def test_a_kernel_without_one_stdio_member_keeps_the_executables(tmp_path: Path) -> None:
    full = [*EXE_OFFSETS.values(), *STDIO_OFFSETS.values()]
    (tmp_path / "full").write_bytes(_blob_of(full))
    assert set(exe_offsets(tmp_path / "full")) == set(EXE_OFFSETS) | set(STDIO_OFFSETS)
    # fdtable.max_fds renamed: no stdio walk, the executables' walk stays
    (tmp_path / "no_fdt").write_bytes(_blob_of([p for p in full if p != "fdtable.max_fds"]))
    assert set(exe_offsets(tmp_path / "no_fdt")) == set(EXE_OFFSETS)
    # an executable member missing: nothing at all (the stdio walk needs file.f_inode too)
    (tmp_path / "no_exe").write_bytes(_blob_of([p for p in full if p != "mm_struct.exe_file"]))
    assert exe_offsets(tmp_path / "no_exe") == {}
