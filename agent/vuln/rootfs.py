# SPDX-License-Identifier: Apache-2.0
"""Read-only views of a container or image filesystem that never resolve a path outside it.

Three views share one small interface (``read_bytes``, ``is_file``, ``is_dir``, ``listdir``):

* ``DirRoot``: a directory on the host (``/proc/<pid>/root`` of a running container, an unpacked
  rootfs). Every open goes through ``openat2(2)`` with ``RESOLVE_IN_ROOT``, so the kernel resolves
  absolute symlinks and ``..`` as if the directory were ``/``: a container's
  ``/var/lib/dpkg/status -> /etc/shadow`` reads the *container's* shadow file, never the host's.
* ``LayeredRoot``: Docker overlay2 layer directories (upper first, then the lower dirs), merged
  the way overlayfs does (whiteouts, opaque directories), with symlinks resolved by ``_resolve``
  inside the merged view; each per-layer lookup uses ``openat2`` with ``RESOLVE_NO_SYMLINKS``.
* ``TarImageRoot`` (``agent.vuln.tarroot``): a ``docker save`` tarball, its layers merged in
  memory (``.wh.`` whiteouts), symlinks resolved by the same in-root resolver.
"""

from __future__ import annotations

import ctypes
import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# openat2(2): Linux 5.6+, syscall number 437 on every architecture that uses the generic table
# (x86_64, arm64, riscv64 ...). Python's os module has no wrapper, so call it through libc.
SYS_OPENAT2 = 437
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

MAX_FILE_BYTES = 64 << 20  # a status file larger than this is not a package database
MAX_SYMLINKS = 40  # the kernel's own limit (MAXSYMLINKS)


class RootError(Exception):
    """A path could not be read inside the root (missing, escaping, or not a regular file)."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """``openat2(dirfd, path, {flags, 0, resolve})``; raises ``OSError`` with the kernel's errno."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    fd = _libc.syscall(
        ctypes.c_long(SYS_OPENAT2),
        ctypes.c_int(dirfd),
        ctypes.c_char_p(os.fsencode(path)),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def _rel(path: str) -> str:
    """``path`` as a relative, normalised path (``/var/lib/x`` → ``var/lib/x``, ``/`` → ``.``)."""
    norm = posixpath.normpath("/" + path.lstrip("/"))
    return norm.lstrip("/") or "."


class Root:
    """The read-only interface inventory readers use."""

    label: str = ""

    def read_bytes(self, path: str, limit: int = MAX_FILE_BYTES) -> bytes:
        raise NotImplementedError

    def is_file(self, path: str) -> bool:
        raise NotImplementedError

    def is_dir(self, path: str) -> bool:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str]:
        raise NotImplementedError

    def read_text(self, path: str, limit: int = MAX_FILE_BYTES) -> str:
        return self.read_bytes(path, limit).decode("utf-8", errors="replace")

    def try_read_text(self, path: str) -> str | None:
        """The file's text, or ``None`` when it is absent or unreadable inside the root."""
        try:
            return self.read_text(path)
        except RootError:
            return None

    def close(self) -> None:
        """Release whatever the view holds open."""


class DirRoot(Root):
    """A host directory treated as ``/``; every lookup is confined by ``RESOLVE_IN_ROOT``."""

    RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV

    def __init__(self, path: str | os.PathLike[str], *, cross_mounts: bool = False) -> None:
        self.path = Path(path)
        self.label = str(path)
        # /proc/<pid>/root is itself a magic link: opening it (from outside) is what makes the
        # container's root our dirfd. Lookups *below* it then refuse magic links, so a
        # /proc/self/root symlink inside the container cannot lead back to the host.
        try:
            self._fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise RootError(f"cannot open root {path}: {exc.strerror}") from None
        # Volumes and bind mounts inside a container are other filesystems, and one of them may be
        # a host directory (``-v /:/host``): refused by default (RESOLVE_NO_XDEV), so a symlink
        # into a bind mount cannot feed a host file to the scanner. ``cross_mounts=True`` allows
        # them (site-packages on a volume) for trusted roots.
        self._resolve = self.RESOLVE if not cross_mounts else RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS

    def _open(self, path: str, flags: int) -> int:
        try:
            return openat2(self._fd, _rel(path), flags, self._resolve)
        except OSError as exc:
            raise RootError(f"{path}: {exc.strerror}") from None

    def read_bytes(self, path: str, limit: int = MAX_FILE_BYTES) -> bytes:
        # O_NONBLOCK: a FIFO planted at a package db path must not hang the scanner.
        fd = self._open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise RootError(f"{path}: not a regular file")
            if st.st_size > limit:
                raise RootError(f"{path}: larger than {limit} bytes")
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _stat(self, path: str) -> os.stat_result | None:
        try:
            fd = self._open(path, os.O_PATH)
        except RootError:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def is_file(self, path: str) -> bool:
        st = self._stat(path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def is_dir(self, path: str) -> bool:
        st = self._stat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def listdir(self, path: str) -> list[str]:
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return sorted(os.listdir(fd))  # noqa: PTH208 - a directory fd opened with RESOLVE_IN_ROOT, not a path
        finally:
            os.close(fd)

    def stat_mtime(self, path: str) -> float | None:
        """The mtime of ``path`` inside the root (used as a cheap change stamp)."""
        st = self._stat(path)
        return None if st is None else st.st_mtime

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: os may already be gone
            pass


# --- virtual trees (layers, tarballs): one in-root resolver --------------------------------
@dataclass(frozen=True, slots=True)
class Node:
    """One entry of a virtual tree: kind is ``file``, ``dir``, ``symlink`` or ``other``."""

    kind: str
    target: str = ""  # symlink target
    ref: object = None  # where the bytes live (a layer path, a tar member)


class VirtualRoot(Root):
    """A tree known entry by entry; symlinks are resolved here, clamped at ``/``."""

    def _lookup(self, path: str) -> Node | None:
        """The entry at the already-resolved absolute ``path`` (no symlink following)."""
        raise NotImplementedError

    def _children(self, path: str) -> list[str]:
        raise NotImplementedError

    def _read(self, node: Node, limit: int) -> bytes:
        raise NotImplementedError

    def _resolve(self, path: str, follow_last: bool = True) -> tuple[str, Node]:
        """Resolve ``path`` like the kernel would with ``/`` = this root.

        ``..`` at the root stays at the root and absolute symlink targets restart at this root,
        so no path ever names anything outside it.
        """
        pending = [p for p in path.split("/") if p and p != "."]
        pending.reverse()
        current = "/"
        node = Node("dir")
        hops = 0
        while pending:
            part = pending.pop()
            if part == "..":
                current = posixpath.dirname(current) or "/"
                node = Node("dir")
                continue
            if node.kind != "dir":
                raise RootError(f"{path}: not a directory")
            candidate = posixpath.join(current, part)
            found = self._lookup(candidate)
            if found is None:
                raise RootError(f"{path}: no such file")
            if found.kind == "symlink" and (pending or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise RootError(f"{path}: too many levels of symbolic links")
                parts = [p for p in found.target.split("/") if p and p != "."]
                pending.extend(reversed(parts))
                if found.target.startswith("/"):
                    current, node = "/", Node("dir")
                continue
            current, node = candidate, found
        return current, node

    def read_bytes(self, path: str, limit: int = MAX_FILE_BYTES) -> bytes:
        _, node = self._resolve(path)
        if node.kind != "file":
            raise RootError(f"{path}: not a regular file")
        return self._read(node, limit)

    def is_file(self, path: str) -> bool:
        try:
            return self._resolve(path)[1].kind == "file"
        except RootError:
            return False

    def is_dir(self, path: str) -> bool:
        try:
            return self._resolve(path)[1].kind == "dir"
        except RootError:
            return False

    def listdir(self, path: str) -> list[str]:
        resolved, node = self._resolve(path)
        if node.kind != "dir":
            raise RootError(f"{path}: not a directory")
        return sorted(self._children(resolved))


WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


class LayeredRoot(VirtualRoot):
    """overlay2 layer directories merged top-down (``upper`` first, then ``lower_dirs``)."""

    def __init__(self, layers: list[str | os.PathLike[str]]) -> None:
        if not layers:
            raise RootError("no layer directories")
        self.layers = [DirRoot(p) for p in layers]
        self.label = ":".join(str(p) for p in layers)

    def _layer_lstat(self, layer: DirRoot, path: str) -> os.stat_result | None:
        # RESOLVE_NO_SYMLINKS: the kernel follows no symlink at all inside a layer; a symlinked
        # parent is handled by _resolve in the merged view, never by the host's resolution.
        try:
            fd = openat2(layer._fd, _rel(path), os.O_PATH | os.O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)
        except OSError:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def _is_opaque(self, layer: DirRoot, path: str) -> bool:
        try:
            fd = openat2(layer._fd, _rel(path), os.O_PATH | os.O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)
        except OSError:
            return False
        try:
            # overlay2 marks an opaque directory with the trusted.overlay.opaque xattr; O_PATH fds
            # do not support getxattr, so read it through the fd's /proc/self/fd link.
            return os.getxattr(f"/proc/self/fd/{fd}", "trusted.overlay.opaque") == b"y"
        except OSError:
            return False
        finally:
            os.close(fd)

    def _lookup(self, path: str) -> Node | None:
        for layer in self.layers:
            st = self._layer_lstat(layer, path)
            if st is None:
                if self._hidden_below(layer, path):
                    return None
                continue
            # overlayfs whiteout: a 0/0 character device hides the name in lower layers.
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None
            if stat.S_ISLNK(st.st_mode):
                try:
                    fd = openat2(
                        layer._fd,
                        _rel(posixpath.dirname(path)),
                        os.O_PATH | os.O_DIRECTORY,
                        RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS,
                    )
                except OSError:
                    return None
                try:
                    target = os.readlink(posixpath.basename(path), dir_fd=fd)
                finally:
                    os.close(fd)
                return Node("symlink", target=target)
            if stat.S_ISREG(st.st_mode):
                return Node("file", ref=(layer, path))
            if stat.S_ISDIR(st.st_mode):
                return Node("dir", ref=(layer, path))
            return Node("other")
        return None

    def _hidden_below(self, layer: DirRoot, path: str) -> bool:
        """True when an opaque parent in ``layer`` hides ``path`` in every lower layer."""
        parent = posixpath.dirname(path)
        while parent not in ("", "/"):
            st = self._layer_lstat(layer, parent)
            if st is not None and stat.S_ISDIR(st.st_mode) and self._is_opaque(layer, parent):
                return True
            parent = posixpath.dirname(parent)
        return False

    def _children(self, path: str) -> list[str]:
        names: set[str] = set()
        hidden: set[str] = set()
        for layer in self.layers:
            st = self._layer_lstat(layer, path)
            if st is None or not stat.S_ISDIR(st.st_mode):
                if st is not None:
                    break  # a non-directory in an upper layer hides lower directories
                continue
            try:
                fd = openat2(layer._fd, _rel(path), os.O_RDONLY | os.O_DIRECTORY, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)
            except OSError:
                continue
            try:
                with os.scandir(fd) as it:
                    for entry in it:
                        if entry.name in hidden or entry.name in names:
                            continue
                        est = entry.stat(follow_symlinks=False)
                        if stat.S_ISCHR(est.st_mode) and est.st_rdev == 0:
                            hidden.add(entry.name)
                        else:
                            names.add(entry.name)
            finally:
                os.close(fd)
            if self._is_opaque(layer, path):
                break
        return list(names)

    def _read(self, node: Node, limit: int) -> bytes:
        ref = node.ref
        assert isinstance(ref, tuple)
        layer, path = ref
        assert isinstance(layer, DirRoot) and isinstance(path, str)
        return layer.read_bytes(path, limit)

    def close(self) -> None:
        for layer in self.layers:
            layer.close()


def walk(root: Root, top: str, max_depth: int = 12) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(dir, names)`` below ``top`` inside ``root``, not following directory symlinks."""
    stack = [(top.rstrip("/") or "/", 0)]
    while stack:
        d, depth = stack.pop()
        try:
            names = root.listdir(d)
        except RootError:
            continue
        yield d, names
        if depth >= max_depth:
            continue
        for name in names:
            child = posixpath.join(d, name)
            if _is_real_dir(root, child):
                stack.append((child, depth + 1))


def _is_real_dir(root: Root, path: str) -> bool:
    if isinstance(root, VirtualRoot):
        try:
            return root._resolve(path, follow_last=False)[1].kind == "dir"
        except RootError:
            return False
    if isinstance(root, DirRoot):
        try:
            fd = openat2(root._fd, _rel(path), os.O_PATH | os.O_NOFOLLOW, root._resolve)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOENT, errno.EXDEV):
                return False
            return False
        try:
            return stat.S_ISDIR(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
    return root.is_dir(path)
