# SPDX-License-Identifier: Apache-2.0
"""Kernel struct member offsets from the running kernel's BTF (``/sys/kernel/btf/vmlinux``).

The probes are compiled by bcc against whatever kernel headers the host has (Debian 6.1 headers
on the lab's 6.18 kernel), so a struct read through those headers would use wrong offsets. The
few struct walks the exec probe makes (the parent's and the new program's executable:
``task->mm->exe_file``; the new program's fds 0-2: ``task->files->fdt->fd[i]``) use offsets
read here from the kernel's own type information and passed as ``-D`` constants; without BTF,
or when a member is missing, the walk is not compiled in and the record's fields stay empty. A
small reader of the BTF format (include/uapi/linux/btf.h): types only, no strings beyond
names, no relocation."""

from __future__ import annotations

import struct
from collections.abc import Mapping
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


class BtfError(ValueError):
    """The BTF blob is malformed or lacks a member asked for."""


class Btf:
    """The types of one BTF blob: struct/union members by name, for offset look-ups."""

    def __init__(self, data: bytes) -> None:
        if len(data) < _HDR.size:
            raise BtfError("BTF blob too short")
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack_from(data)
        if magic != _MAGIC:
            raise BtfError(f"not BTF (magic {magic:#x})")
        self._strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
        # type id -> (kind, name offset, size/type, members [(name offset, type, bit offset)])
        self.types: list[tuple[int, int, int, tuple[tuple[int, int, int], ...]]] = [(0, 0, 0, ())]
        self._structs: dict[str, int] = {}
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        unpack = _TYPE.unpack_from
        while pos < end:
            name_off, info, size_type = unpack(data, pos)
            pos += 12
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            members: tuple[tuple[int, int, int], ...] = ()
            if kind in (KIND_STRUCT, KIND_UNION):
                ms = []
                for i in range(vlen):
                    m_name, m_type, m_off = unpack(data, pos + 12 * i)
                    ms.append((m_name, m_type, m_off & 0xFFFFFF if kflag else m_off))
                members = tuple(ms)
                if name_off and kind == KIND_STRUCT:
                    self._structs.setdefault(self._name(name_off), len(self.types))
            pos += _PER_MEMBER.get(kind, 0) * vlen + _FIXED.get(kind, 0)
            self.types.append((kind, name_off, size_type, members))

    def _name(self, off: int) -> str:
        end = self._strings.find(b"\0", off)
        return self._strings[off:end].decode("ascii", "replace")

    def _resolve(self, tid: int) -> int:
        for _ in range(32):
            kind, _n, ref, _m = self.types[tid]
            if kind not in _QUALIFIERS:
                return tid
            tid = ref
        raise BtfError("type qualifier chain too long")

    def _member(self, tid: int, name: str) -> tuple[int, int] | None:
        """(bit offset, type id) of member ``name`` of struct/union ``tid``, looking into
        anonymous members."""
        for m_name, m_type, m_off in self.types[tid][3]:
            if m_name and self._name(m_name) == name:
                return m_off, m_type
            if not m_name:
                inner = self._resolve(m_type)
                if self.types[inner][0] in (KIND_STRUCT, KIND_UNION):
                    hit = self._member(inner, name)
                    if hit is not None:
                        return m_off + hit[0], hit[1]
        return None

    def offset(self, path: str) -> int:
        """Byte offset of ``struct.member[.member…]``; ``BtfError`` when absent."""
        struct_name, *names = path.split(".")
        tid = self._structs.get(struct_name)
        if tid is None or not names:
            raise BtfError(f"struct {struct_name} not in BTF")
        total = 0
        for i, name in enumerate(names):
            hit = self._member(tid, name)
            if hit is None:
                raise BtfError(f"{path}: no member {name}")
            total += hit[0]
            if i + 1 < len(names):
                tid = self._resolve(hit[1])
        if total % 8:
            raise BtfError(f"{path} is a bit field")
        return total // 8


def exe_offsets(vmlinux: Path) -> dict[str, str]:
    """The ``-D`` offsets of ``EXE_OFFSETS`` and ``STDIO_OFFSETS`` from the kernel's BTF; ``{}``
    when the file is missing or any member of ``EXE_OFFSETS`` is absent (the probes then leave
    the executable fields empty), without ``STDIO_OFFSETS`` when one of those is absent (the
    agent then reads stdio from /proc)."""
    try:
        btf = Btf(vmlinux.read_bytes())
        out = {define: str(btf.offset(path)) for define, path in EXE_OFFSETS.items()}
    except (OSError, BtfError, IndexError, struct.error):
        return {}
    try:
        out.update({define: str(btf.offset(path)) for define, path in STDIO_OFFSETS.items()})
    except (BtfError, IndexError, struct.error):
        pass
    return out
