# SPDX-License-Identifier: Apache-2.0
"""Kernel struct member offsets from the running kernel's BTF (``/sys/kernel/btf/vmlinux``).

The probes are compiled by bcc against whatever kernel headers the host has (Debian 6.1 headers
on the lab's 6.18 kernel), so a struct read through those headers would use wrong offsets. The
few struct walks the exec probe makes (the parent's and the new program's executable:
``task->mm->exe_file``; the new program's fds 0-2: ``task->files->fdt->fd[i]``) use offsets
read here from the kernel's own type information and passed as ``-D`` constants; without BTF,
or when a member is missing, the walk is not compiled in and the record's fields stay empty. A
small reader of the BTF format (include/uapi/linux/btf.h): types only, no strings beyond
names, no relocation; it reads the file mapped, in place, so the agent's heap never holds the
kernel's ~5 MiB of BTF nor an object per type."""

from __future__ import annotations

import mmap
import struct
from array import array
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

_HDR = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_MAGIC = 0xEB9F
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM = 1, 2, 3, 4, 5, 6
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT = 8, 9, 10, 11
KIND_FUNC_PROTO, KIND_VAR, KIND_DATASEC, KIND_DECL_TAG, KIND_TYPE_TAG, KIND_ENUM64 = 13, 14, 15, 17, 18, 19
_QUALIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)
# Extra bytes after struct btf_type: per member (vlen) or fixed.
_PER_MEMBER = {KIND_STRUCT: 12, KIND_UNION: 12, KIND_ENUM: 8, KIND_FUNC_PROTO: 8, KIND_DATASEC: 12, KIND_ENUM64: 12}
_FIXED = {KIND_INT: 4, KIND_ARRAY: 12, KIND_VAR: 4, KIND_DECL_TAG: 4}

# -D name -> "struct.member[.member...]" (a path through nested, possibly anonymous, members).
EXE_OFFSETS: Mapping[str, str] = {
    "RG_OFF_TASK_REAL_PARENT": "task_struct.real_parent",
    "RG_OFF_TASK_TGID": "task_struct.tgid",
    "RG_OFF_TASK_COMM": "task_struct.comm",
    "RG_OFF_TASK_MM": "task_struct.mm",
    "RG_OFF_MM_EXE_FILE": "mm_struct.exe_file",
    "RG_OFF_MM_ARG_START": "mm_struct.arg_start",
    "RG_OFF_MM_ARG_END": "mm_struct.arg_end",
    "RG_OFF_FILE_DENTRY": "file.f_path.dentry",
    "RG_OFF_FILE_INODE": "file.f_inode",
    "RG_OFF_DENTRY_NAME": "dentry.d_name.name",
    "RG_OFF_INODE_INO": "inode.i_ino",
    "RG_OFF_INODE_SB": "inode.i_sb",
    "RG_OFF_INODE_NLINK": "inode.i_nlink",
    "RG_OFF_SB_DEV": "super_block.s_dev",
}
# The new program's fds 0-2 (task->files->fdt->fd[i]->f_inode): their type, inode or device,
# and a FIFO's filesystem (pipefs or a named one). Used with EXE_OFFSETS; a set of its own, so a
# kernel that renamed one of these keeps the executables.
STDIO_OFFSETS: Mapping[str, str] = {
    "RG_OFF_TASK_FILES": "task_struct.files",
    "RG_OFF_FILES_FDT": "files_struct.fdt",
    "RG_OFF_FDT_MAX_FDS": "fdtable.max_fds",
    "RG_OFF_FDT_FD": "fdtable.fd",
    "RG_OFF_INODE_MODE": "inode.i_mode",
    "RG_OFF_INODE_RDEV": "inode.i_rdev",
    "RG_OFF_SB_MAGIC": "super_block.s_magic",
}
_STRUCTS = frozenset(path.split(".", 1)[0] for path in (*EXE_OFFSETS.values(), *STDIO_OFFSETS.values()))


class BtfError(ValueError):
    """The BTF blob is malformed or lacks a member asked for."""


# Every _STRIDE-th type's position is kept; a type between two is found by stepping over the
# ones before it (a few dozen slots, instead of one per type, for the kernel's ~150,000 types).
_STRIDE = 64
_MAX_DEPTH = 32  # nested anonymous members, qualifier chains: a cycle is a malformed blob


class Btf:
    """Struct/union members of one BTF blob, for offset look-ups, read from the blob itself
    (``bytes``, or the kernel's file mapped) when asked for: one pass at construction keeps the
    type ids of the structs ``structs`` names and the position of every 64th type, so no object
    is made per type (the whole kernel's types as tuples were tens of MiB of the agent's heap)."""

    def __init__(self, data: bytes | mmap.mmap, structs: Collection[str]) -> None:
        if len(data) < _HDR.size:
            raise BtfError("BTF blob too short")
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack_from(data)
        if magic != _MAGIC:
            raise BtfError(f"not BTF (magic {magic:#x})")
        start, end = hdr_len + type_off, hdr_len + type_off + type_len
        self._str, self._str_end = hdr_len + str_off, hdr_len + str_off + str_len
        if end > len(data) or self._str_end > len(data):
            raise BtfError(f"BTF blob truncated ({len(data)} bytes, sections up to {max(end, self._str_end)})")
        self._data, self._end = data, end
        wanted = {name.encode() for name in structs}
        self._structs: dict[str, int] = {}
        # type id -> position, for ids 0, _STRIDE, 2 x _STRIDE...; id 0 is void (no bytes).
        self._marks = array("I", [start])
        tid, pos, unpack = 1, start, _TYPE.unpack_from
        while pos < end:
            if tid % _STRIDE == 0:
                self._marks.append(pos)
            if pos + _TYPE.size > end:
                raise BtfError(f"type {tid} truncated")
            name_off, info, _size_type = unpack(data, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            if kind == KIND_STRUCT and name_off and wanted:
                name = self._name(name_off)
                if name in wanted:
                    wanted.discard(name)
                    self._structs[name.decode()] = tid
            pos += _TYPE.size + _PER_MEMBER.get(kind, 0) * vlen + _FIXED.get(kind, 0)
            tid += 1
        if pos > end:
            raise BtfError(f"type {tid - 1} truncated")
        self._count = tid

    def _name(self, off: int) -> bytes:
        start = self._str + off
        end = self._data.find(b"\0", start, self._str_end)
        if off < 0 or end < 0:
            raise BtfError(f"name offset {off} outside the string section")
        return self._data[start:end]

    def _type(self, tid: int) -> tuple[int, int, int, int, int]:
        """(kind, size/type, member count, kind_flag, position of the members) of type ``tid``."""
        if not 0 < tid < self._count:
            raise BtfError(f"type id {tid} out of range")
        pos, unpack = self._marks[tid // _STRIDE], _TYPE.unpack_from
        for _ in range(tid % _STRIDE - (tid < _STRIDE)):  # the slot of id 0 holds type 1
            info = unpack(self._data, pos)[1]
            kind = (info >> 24) & 0x1F
            pos += _TYPE.size + _PER_MEMBER.get(kind, 0) * (info & 0xFFFF) + _FIXED.get(kind, 0)
        _name_off, info, size_type = unpack(self._data, pos)
        return (info >> 24) & 0x1F, size_type, info & 0xFFFF, info >> 31, pos + _TYPE.size

    def _resolve(self, tid: int) -> int:
        for _ in range(_MAX_DEPTH):
            if tid == 0:
                return tid
            kind, ref, _vlen, _kflag, _pos = self._type(tid)
            if kind not in _QUALIFIERS:
                return tid
            tid = ref
        raise BtfError("type qualifier chain too long")

    def _member(self, tid: int, name: bytes, depth: int = 0) -> tuple[int, int] | None:
        """(bit offset, type id) of member ``name`` of struct/union ``tid``, looking into
        anonymous members."""
        if depth > _MAX_DEPTH:
            raise BtfError("anonymous members nested too deep")
        if tid == 0:
            return None
        kind, _size, vlen, kflag, pos = self._type(tid)
        if kind not in (KIND_STRUCT, KIND_UNION):
            return None
        # kind_flag: the member offset's low 24 bits are its bit offset, the high 8 a bitfield size.
        mask = 0xFFFFFF if kflag else 0xFFFFFFFF
        for i in range(vlen):
            m_name, m_type, m_off = _TYPE.unpack_from(self._data, pos + 12 * i)
            if m_name and self._name(m_name) == name:
                return m_off & mask, m_type
            if not m_name:
                hit = self._member(self._resolve(m_type), name, depth + 1)
                if hit is not None:
                    return (m_off & mask) + hit[0], hit[1]
        return None

    def offset(self, path: str) -> int:
        """Byte offset of ``struct.member[.member…]``; ``BtfError`` when absent."""
        struct_name, *names = path.split(".")
        tid = self._structs.get(struct_name)
        if tid is None or not names:
            raise BtfError(f"struct {struct_name} not in BTF")
        total = 0
        for i, name in enumerate(names):
            hit = self._member(tid, name.encode())
            if hit is None:
                raise BtfError(f"{path}: no member {name}")
            total += hit[0]
            if i + 1 < len(names):
                tid = self._resolve(hit[1])
        if total % 8:
            raise BtfError(f"{path} is a bit field")
        return total // 8


@contextmanager
def _mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The file mapped read-only (private: the kernel refuses a shared mapping of its BTF), read
    where it cannot be mapped (kernels before 6.16, an empty file)."""
    with path.open("rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        except (OSError, ValueError):
            yield f.read()
            return
        try:
            yield data
        finally:
            data.close()


def exe_offsets(vmlinux: Path) -> dict[str, str]:
    """The ``-D`` offsets of ``EXE_OFFSETS`` and ``STDIO_OFFSETS`` from the kernel's BTF; ``{}``
    when the file is missing or malformed or any member of ``EXE_OFFSETS`` is absent (the probes
    then leave the executable fields empty), without ``STDIO_OFFSETS`` when one of those is
    absent (the agent then reads stdio from /proc). The file is mapped, not read into the
    process, and unmapped before returning."""
    try:
        with _mapped(vmlinux) as data:
            btf = Btf(data, _STRUCTS)
            out = {define: str(btf.offset(path)) for define, path in EXE_OFFSETS.items()}
            try:
                out.update({define: str(btf.offset(path)) for define, path in STDIO_OFFSETS.items()})
            except BtfError:
                pass
            return out
    except (OSError, BtfError):
        return {}
