# SPDX-License-Identifier: Apache-2.0
"""The exec record's stdio (``probes/exec.h`` ``stdio_kind``/``stdio_ino``): what the kernel read
of the new program's fds 0-2, named as ``/proc/<pid>/fd`` names them ("socket:[ino]",
"pipe:[ino]", "/dev/pts/N", "/dev/null"), so the source reads /proc only for the fds whose
path alone names them (a file, a directory, a named FIFO, an anonymous inode)."""

from __future__ import annotations

from collections.abc import Mapping

# stdio_kind values (probes/exec.h RG_FD_*)
FD_CLOSED, FD_SOCKET, FD_PIPE, FD_CHR, FD_OTHER = 0, 1, 2, 3, 4
# A stdio target the kernel could not name (a file, a directory, a named FIFO, an anonymous
# inode): its path is read from /proc/<pid>/fd by the source (complete.py), "" when gone.
STDIO_FROM_PROC = "?"
# Character devices by kernel dev_t (major << 20 | minor), named as /proc/<pid>/fd names them.
_CHR_NAMES: Mapping[int, str] = {
    (1 << 20) | 3: "/dev/null",
    (1 << 20) | 5: "/dev/zero",
    (1 << 20) | 7: "/dev/full",
    (1 << 20) | 8: "/dev/random",
    (1 << 20) | 9: "/dev/urandom",
    (5 << 20) | 0: "/dev/tty",
    (5 << 20) | 1: "/dev/console",
    (5 << 20) | 2: "/dev/ptmx",
    **{(4 << 20) | n: f"/dev/tty{n}" for n in range(64)},
}
PTS_MAJORS = range(136, 144)  # UNIX98_PTY_SLAVE_MAJOR .. + UNIX98_PTY_MAJOR_COUNT: /dev/pts/N


def stdio_name(kind: int, ino: int) -> str:
    """A stdio fd as /proc/<pid>/fd names it, from the kind and inode (or device) the probe
    read; ``STDIO_FROM_PROC`` when only its path would name it."""
    if kind == FD_PIPE:
        return f"pipe:[{ino}]"
    if kind == FD_SOCKET:
        return f"socket:[{ino}]"
    if kind == FD_CHR:
        name = _CHR_NAMES.get(ino)
        if name is not None:
            return name
        major = ino >> 20
        if major in PTS_MAJORS:
            return f"/dev/pts/{((major - PTS_MAJORS.start) << 8) + (ino & 0xFFFFF)}"
        return STDIO_FROM_PROC
    return "" if kind == FD_CLOSED else STDIO_FROM_PROC
