# SPDX-License-Identifier: Apache-2.0
"""The BTF reader that gives the exec probe its struct offsets (agent/sources/ebpf/btf.py): a
synthetic blob with nested, typedef'd and anonymous members, malformed and truncated blobs, and
the running kernel's own (the same offsets as the reader that kept every type as tuples)."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from agent.sources.ebpf.btf import EXE_OFFSETS, STDIO_OFFSETS, Btf, BtfError, exe_offsets

VMLINUX = Path("/sys/kernel/btf/vmlinux")
ALL_PATHS = [*EXE_OFFSETS.values(), *STDIO_OFFSETS.values()]


def _blob() -> bytes:
    strings = b"\0int\0inner\0a\0name\0u\0outer\0x\0in\0inner_t\0bits\0flag\0"

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
            # 7: struct bits, kind_flag set: a member offset's high 8 bits are its bitfield size
            struct.pack("<III", off("bits"), (1 << 31) | (4 << 24) | 2, 8)
            + m(off("a"), 1, (3 << 24) | 5)
            + m(off("flag"), 1, (8 << 24) | 32),
        )
    )
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def test_offsets_through_typedefs_and_anonymous_members() -> None:
    btf = Btf(_blob(), ("outer", "bits", "nosuch"))
    assert btf.offset("outer.x") == 0
    assert btf.offset("outer.u") == 8  # inside the anonymous union at 8
    assert btf.offset("outer.in.name") == 16 + 8  # through the typedef to struct inner
    assert btf.offset("bits.flag") == 4
    with pytest.raises(BtfError, match="bit field"):
        btf.offset("bits.a")  # bit 5, 3 bits wide
    with pytest.raises(BtfError):
        btf.offset("outer.missing")
    with pytest.raises(BtfError):
        btf.offset("nosuch.x")
    with pytest.raises(BtfError, match="not in BTF"):
        Btf(_blob(), ("bits",)).offset("outer.x")  # a struct not asked for at construction
    with pytest.raises(BtfError):
        Btf(b"\0" * 32, ("outer",))


def test_a_missing_or_broken_file_gives_no_offsets(tmp_path: Path) -> None:
    assert exe_offsets(tmp_path / "absent") == {}
    (tmp_path / "broken").write_bytes(_blob()[:30])
    assert exe_offsets(tmp_path / "broken") == {}


def _header(blob: bytes, **fields: int) -> bytes:
    """``blob`` with header fields (type_len, str_off, str_len...) replaced."""
    names = ("magic", "version", "flags", "hdr_len", "type_off", "type_len", "str_off", "str_len")
    values = dict(zip(names, struct.unpack_from("<HBBIIIII", blob), strict=True)) | fields
    return struct.pack("<HBBIIIII", *values.values()) + blob[24:]


def test_malformed_blobs_raise_btf_error(tmp_path: Path) -> None:
    blob = _blob()
    # cut anywhere: shorter than its header says
    for n in range(len(blob)):
        with pytest.raises(BtfError):
            Btf(blob[:n], ("outer",))
    # the type section ends inside a type (the string section moved along, so only the types are
    # wrong): the type, not a struct.error
    types_len = struct.unpack_from("<I", blob, 12)[0]
    for cut in (5, 12 + 4):
        short = _header(blob, type_len=types_len - cut, str_off=types_len - cut)
        short = short[: 24 + types_len - cut] + blob[24 + types_len :]
        with pytest.raises(BtfError, match=r"type \d+ truncated"):
            Btf(short, ("outer",))
    # a name offset beyond the string section; a member of a type id that does not exist
    with pytest.raises(BtfError, match="name offset"):
        Btf(_header(blob, str_len=3), ("outer",))
    assert blob.count(struct.pack("<III", 0, 4, 64)) == 1  # outer's anonymous union
    bad_type = blob.replace(struct.pack("<III", 0, 4, 64), struct.pack("<III", 0, 99, 64))
    with pytest.raises(BtfError, match="type id 99"):
        Btf(bad_type, ("outer",)).offset("outer.u")
    for name, data in (("short", blob[:30]), ("cut", _blob_of(ALL_PATHS)[:-7])):
        (tmp_path / name).write_bytes(data)
        assert exe_offsets(tmp_path / name) == {}
    (tmp_path / "empty").write_bytes(b"")
    assert exe_offsets(tmp_path / "empty") == {}


def test_a_struct_that_contains_itself_anonymously_is_an_error_not_a_recursion() -> None:
    strings = b"\0loop\0x\0"
    types = struct.pack("<III", 1, (4 << 24) | 1, 8) + struct.pack("<III", 0, 1, 0)  # 1: {struct loop;}
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    with pytest.raises(BtfError, match="too deep"):
        Btf(hdr + types + strings, ("loop",)).offset("loop.x")


def test_corrupted_bytes_give_offsets_or_nothing_never_an_exception(tmp_path: Path) -> None:
    """Every single byte of a blob with the probe's structs overwritten, and 300 random blobs
    with 8 bytes overwritten: ``exe_offsets`` returns (all, the executables', or no offsets)."""
    blob = _blob_of(ALL_PATHS)
    rng = random.Random(18)
    mutants = [blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1 :] for i in range(len(blob))]
    for _ in range(300):
        data = bytearray(blob)
        for _ in range(8):
            data[rng.randrange(len(data))] = rng.randrange(256)
        mutants.append(bytes(data))
    path = tmp_path / "vmlinux"
    outcomes = set()
    for data in mutants:
        path.write_bytes(data)
        got = exe_offsets(path)
        assert set(got) in (set(), set(EXE_OFFSETS), set(EXE_OFFSETS) | set(STDIO_OFFSETS))
        outcomes.add(len(got))
    assert len(outcomes) == 3, outcomes  # the mutations reached every outcome


class _TupleBtf:
    """The reader as it was before it read the blob in place (issue 18): every type as a tuple,
    every struct name in a dict; whole-kernel look-ups compare against it."""

    def __init__(self, data: bytes) -> None:
        _magic, _v, _f, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
        self.strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
        self.types: list[tuple[int, int, int, tuple[tuple[int, int, int], ...]]] = [(0, 0, 0, ())]
        self.structs: dict[str, int] = {}
        per_member = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}
        fixed = {1: 4, 3: 12, 14: 4, 17: 4}
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        while pos < end:
            name_off, info, size_type = struct.unpack_from("<III", data, pos)
            pos += 12
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            members: tuple[tuple[int, int, int], ...] = ()
            if kind in (4, 5):
                ms = [struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen)]
                members = tuple((n, t, o & 0xFFFFFF if kflag else o) for n, t, o in ms)
                if name_off and kind == 4:
                    self.structs.setdefault(self.name(name_off), len(self.types))
            pos += per_member.get(kind, 0) * vlen + fixed.get(kind, 0)
            self.types.append((kind, name_off, size_type, members))

    def name(self, off: int) -> str:
        return self.strings[off : self.strings.find(b"\0", off)].decode("ascii", "replace")

    def resolve(self, tid: int) -> int:
        while self.types[tid][0] in (8, 9, 10, 11, 18):
            tid = self.types[tid][2]
        return tid

    def names(self, tid: int) -> list[tuple[str, int]]:
        """(name, type) of the members of ``tid``, those of anonymous members flattened."""
        out = []
        for m_name, m_type, _off in self.types[tid][3]:
            out.extend([(self.name(m_name), m_type)] if m_name else self.names(self.resolve(m_type)))
        return out

    def member(self, tid: int, name: str) -> tuple[int, int] | None:
        for m_name, m_type, m_off in self.types[tid][3]:
            if m_name and self.name(m_name) == name:
                return m_off, m_type
            if not m_name:
                hit = self.member(self.resolve(m_type), name)
                if hit is not None:
                    return m_off + hit[0], hit[1]
        return None

    def offset(self, path: str) -> int | None:
        """The byte offset, or None where the reader raises (absent member, bit field)."""
        struct_name, *names = path.split(".")
        tid, total = self.structs[struct_name], 0
        for i, name in enumerate(names):
            hit = self.member(tid, name)
            if hit is None:
                return None
            total += hit[0]
            tid = self.resolve(hit[1]) if i + 1 < len(names) else tid
        return None if total % 8 else total // 8


def test_the_running_kernels_offsets_are_those_of_the_tuple_reader() -> None:
    """Every member of every struct of the running kernel (through anonymous members, and one
    level deeper for the probe's structs): the same offset, or the same refusal."""
    if not VMLINUX.exists():
        pytest.skip("This kernel exposes no BTF (/sys/kernel/btf/vmlinux).")
    got = exe_offsets(VMLINUX)
    assert set(got) == set(EXE_OFFSETS) | set(STDIO_OFFSETS)
    assert all(0 <= int(v) < 8192 for v in got.values()), got
    data = VMLINUX.read_bytes()
    ref = _TupleBtf(data)
    assert got == {d: str(ref.offset(p)) for d, p in {**EXE_OFFSETS, **STDIO_OFFSETS}.items()}
    probe_structs = {p.split(".")[0] for p in ALL_PATHS}
    paths = []
    for sname, tid in ref.structs.items():
        for name, m_type in ref.names(tid):
            paths.append(f"{sname}.{name}")
            inner = ref.resolve(m_type)
            if sname in probe_structs and ref.types[inner][0] in (4, 5):
                paths.extend(f"{sname}.{name}.{n}" for n, _t in ref.names(inner))
    assert len(paths) > 10_000, len(paths)
    btf = Btf(data, ref.structs)

    def offset(path: str) -> int | None:
        try:
            return btf.offset(path)
        except BtfError:
            return None

    differ = [(p, want, offset(p)) for p in paths if (want := ref.offset(p)) != offset(p)]
    assert not differ, differ[:10]


def _blob_of(paths: list[str], ints: int = 1) -> bytes:
    """A BTF blob whose structs have exactly the members ``paths`` name (``struct.a.b``: member
    ``a`` a struct with member ``b``), each at offset 8 x its position, every leaf an int (the
    first of ``ints`` int types)."""
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

    types.extend([struct.pack("<IIII", name("int"), 1 << 24, 8, 64)] * ints)  # types 1...: int

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
    full = ALL_PATHS
    (tmp_path / "full").write_bytes(_blob_of(full))
    got = exe_offsets(tmp_path / "full")
    assert set(got) == set(EXE_OFFSETS) | set(STDIO_OFFSETS)
    # the same after 200 types, so the structs' ids are past the reader's first marks
    (tmp_path / "late").write_bytes(_blob_of(full, ints=200))
    assert exe_offsets(tmp_path / "late") == got
    # fdtable.max_fds renamed: no stdio walk, the executables' walk stays
    (tmp_path / "no_fdt").write_bytes(_blob_of([p for p in full if p != "fdtable.max_fds"]))
    assert set(exe_offsets(tmp_path / "no_fdt")) == set(EXE_OFFSETS)
    # an executable member missing: nothing at all (the stdio walk needs file.f_inode too)
    (tmp_path / "no_exe").write_bytes(_blob_of([p for p in full if p != "mm_struct.exe_file"]))
    assert exe_offsets(tmp_path / "no_exe") == {}
