# SPDX-License-Identifier: Apache-2.0
"""Files read inside a container's root for lineage, and a parent known by its executable.

busybox ``httpd`` forks a child per request that forks again to exec the CGI, without an exec
of its own: when the CGI ends within milliseconds, that fork child is gone before lineage can
read ``/proc``, and its comm alone (``httpd``) could be a script's name. The exec probe reads the
parent's executable in the kernel (``ProcessExec.parent_exe``: basename, inode, device), so the
parent is still known: by the file on the container's ``PATH`` that its comm names and that is
that executable (same inode and device: ``/bin/httpd`` → busybox), or by the executable itself
when it is a compiled program or a shell (not busybox or an interpreter, which run scripts whose
names a comm may carry and whose role the script decides).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.detectors.lineage_names import role_of
from agent.events import ProcessExec
from agent.settings.detectors import DetectorsSettings
from agent.vuln.rootfs import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

SHEBANG_BYTES = 256  # the kernel's BINPRM_BUF_SIZE: it reads no more of a #! line either
PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def _open_in_root(root: os.PathLike[str] | str, path: str) -> int | None:
    """An O_RDONLY fd of ``path`` resolved by the kernel inside ``root`` (``RESOLVE_IN_ROOT``, no
    magic links: a symlink cannot lead out), never blocking on a FIFO; None when it fails."""
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        rel = path.lstrip("/") or "."
        return openat2(root_fd, rel, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError:
        return None
    finally:
        os.close(root_fd)


def read_head_in_root(root: os.PathLike[str] | str, path: str, limit: int = SHEBANG_BYTES) -> bytes | None:
    """The first ``limit`` bytes of the regular file ``path`` inside ``root``; ``None`` when
    missing, not a regular file or unreadable. Never blocks on a FIFO (``O_NONBLOCK``)."""
    fd = _open_in_root(root, path)
    if fd is None:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def stat_in_root(root: os.PathLike[str] | str, path: str) -> os.stat_result | None:
    """``fstat`` of ``path`` resolved inside ``root`` (symlinks followed within it)."""
    fd = _open_in_root(root, path)
    if fd is None:
        return None
    try:
        return os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def parent_by_exe(ev: ProcessExec, root: Path | None, settings: DetectorsSettings) -> tuple[str, str, str] | None:
    """(executable path, program, role) of ``ev``'s parent from the executable the kernel read,
    or None when it does not tell (no executable read; busybox, a shell or an interpreter whose
    comm names no file on the container's PATH: the comm may be a script's name)."""
    exe, comm = ev.parent_exe, ev.parent_comm
    if not exe or not ev.parent_exe_ino:
        return None
    if root is not None and comm and "/" not in comm and comm not in (".", ".."):
        for d in PATH_DIRS:
            st = stat_in_root(root, f"{d}/{comm}")
            if st is not None and (st.st_ino, st.st_dev) == (ev.parent_exe_ino, ev.parent_exe_dev):
                return f"{d}/{comm}", comm, role_of(comm, settings, exe=f"{d}/{comm}")
    role = role_of(exe, settings)
    if role == "shell":
        return exe, exe, role  # a shell (or a script's subshell): a shell either way
    if exe == "busybox" or role == "interpreter":
        return None  # a script's interpreter: the script (supervisord, a CGI …) decides
    return exe, exe, role
