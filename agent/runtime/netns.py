# SPDX-License-Identifier: Apache-2.0
"""The one home for network namespaces: inspect them (a process's netns inode, a container's
netns checked against the inode recorded at discovery, the host's), enter them (one thread, or
a throwaway thread that runs a function there), and run libnftables there.

Used by the least-privilege rules (``agent.network``), network quarantine
(``agent.response.quarantine``), packet capture and sock_diag (``agent.sources``) and discovery.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agent.hostfs import HostPaths

if TYPE_CHECKING:
    from agent.runtime.model import Container

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
# libnftables resolves a ``socket cgroupv2`` path below this fixed directory of the calling
# thread's mount namespace (nftables src/datatype.c, SYSFS_CGROUPSV2_PATH): it stat()s the path
# for the cgroup id, and accepts no id in its place.
NFT_CGROUP2_ROOT = Path("/sys/fs/cgroup")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class NetnsError(Exception):
    """Work inside a network namespace failed (timed out, or nftables refused a command)."""


class NftError(NetnsError):
    """libnftables refused a command (its message is kept)."""


def netns_inode(paths: HostPaths, pid: int) -> int:
    """The inode of ``pid``'s network namespace (0 when the process is gone or unreadable)."""
    try:
        return paths.pid_netns(pid).stat().st_ino
    except OSError:
        return 0


def container_netns(paths: HostPaths, container: Container) -> Path:
    """The container's netns as a path, checked against the inode recorded at discovery (a
    recycled init pid must not redirect work into another namespace); ``NetnsError`` if not."""
    ns = paths.pid_netns(container.init_pid)
    try:
        inode = ns.stat().st_ino
    except OSError as exc:
        raise NetnsError(f"container {container.short_id}: init pid {container.init_pid} is gone") from exc
    if container.netns_inode and inode != container.netns_inode:
        raise NetnsError(f"container {container.short_id}: netns changed (pid reused?)")
    return ns


def host_netns_inodes(paths: HostPaths) -> set[int]:
    """Inodes of the host's netns (pid 1's) and of the agent's own (the host's, also for a
    DaemonSet with hostNetwork): neither may get a deny-all or a capture.

    Some sandboxes refuse even root a readlink/stat of /proc/1/ns/net; the agent's own netns
    still counts. Empty: cannot tell (callers refuse).
    """
    found = set()
    for ns in (paths.pid_netns(1), paths.proc / "self" / "ns" / "net"):
        try:
            found.add(ns.stat().st_ino)
        except OSError:
            continue
    return found


def enter_netns(netns: Path) -> None:
    """Move the calling thread into the network namespace at ``netns`` (setns(2) with
    CLONE_NEWNET: only this thread moves). Python 3.11 has no ``os.setns``: libc's is called
    through ctypes (pyroute2's wrapper would load all of pyroute2, ~24 MiB, for one call)."""
    fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _libc_call(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"{what}: {os.strerror(err)}")


def enter_ns(path: Path, nstype: int) -> None:
    """setns(2) of the calling thread into the namespace at ``path`` (of type ``nstype``)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _libc_call(_libc.setns(fd, nstype), f"setns({path})")
    finally:
        os.close(fd)


def show_cgroup2_to_nft(cgroup2: Path) -> None:
    """Give the calling thread a mount namespace of its own in which the cgroup2 hierarchy
    mounted at ``cgroup2`` (the host's: ``/host/sys/fs/cgroup[/unified]`` in the DaemonSet) is at
    ``/sys/fs/cgroup``, where libnftables looks ``socket cgroupv2`` paths up.

    In a pod, the agent's own ``/sys/fs/cgroup`` is its container's cgroup namespace view (or
    nothing), so nft cannot resolve the path of another container's cgroup there.
    unshare(CLONE_NEWNS) implies CLONE_FS: only this thread gets a copy of the mount table (and
    an fs_struct of its own); it is made private first, so the bind mount propagates neither to
    the agent nor to the host, and the namespace ends with the thread.
    """
    _libc_call(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _libc_call(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    src, dst = os.fsencode(cgroup2), os.fsencode(NFT_CGROUP2_ROOT)
    _libc_call(_libc.mount(src, dst, None, MS_BIND, None), f"mount --bind {cgroup2} {NFT_CGROUP2_ROOT}")


def host_cgroupns(paths: HostPaths) -> Path | None:
    """The host's cgroup namespace (pid 1's; kthreadd's, pid 2, where a sandbox hides pid 1's
    namespaces: a kernel thread is always in the initial ones) when the agent is in another one
    (a pod's); None when it is in the host's or cannot tell."""
    for pid in (1, 2):
        host_ns = paths.pid_dir(pid) / "ns" / "cgroup"
        try:
            if host_ns.stat().st_ino != (paths.proc / "self" / "ns" / "cgroup").stat().st_ino:
                return host_ns
            return None
        except OSError:
            continue
    return None


def nft_cgroup_setup(paths: HostPaths, cgroup2: Path | None) -> Callable[[], None] | None:
    """What a thread must do before libnftables adds ``socket cgroupv2`` rules for the host's
    cgroups (None: nothing, the agent runs in the host's namespaces):

    - join the host's cgroup namespace (``host_cgroupns``) when the agent has one of its own:
      the kernel adds the level of the rule creator's cgroup-namespace root to the rule's
      ``level`` (net/netfilter/nft_socket.c, nft_socket_cgroup_subtree_level: "make cgroupsv2
      matching work with namespaces", Linux 6.11, in stable from 6.1), so a rule made in the
      pod's namespace looks at the wrong ancestor and matches nothing;
    - with ``cgroup2``, see that cgroup2 mount at ``/sys/fs/cgroup`` (``show_cgroup2_to_nft``).
    """
    host_ns = host_cgroupns(paths)
    if host_ns is None and cgroup2 is None:
        return None

    def setup() -> None:
        if host_ns is not None:
            enter_ns(host_ns, CLONE_NEWCGROUP)
        if cgroup2 is not None:
            show_cgroup2_to_nft(cgroup2)

    return setup


def in_netns(netns: Path, fn: Callable[[], T], timeout: float = 10.0, setup: Callable[[], None] | None = None) -> T:
    """Run ``fn`` in a fresh thread that has entered the network namespace at ``netns`` (and
    then run ``setup`` there: ``nft_cgroup_setup``).

    setns(2) with CLONE_NEWNET changes only the calling thread, so the rest of the agent stays
    in its own netns; the thread ends afterwards (it is never reused in the wrong netns).
    """
    out: queue.Queue[tuple[bool, Any]] = queue.Queue(1)

    def run() -> None:
        try:
            enter_netns(netns)
            if setup is not None:
                setup()
            out.put((True, fn()))
        except BaseException as exc:
            out.put((False, exc))

    t = threading.Thread(target=run, name="netns", daemon=True)
    t.start()
    try:
        ok, value = out.get(timeout=timeout)
    except queue.Empty:
        raise NetnsError(f"timed out in netns {netns}") from None
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def nft_context() -> Any:
    """A libnftables context with JSON output and rule handles.

    libnftables opens its netlink socket in the netns of the thread that creates the context:
    create one per call, inside ``in_netns``.
    """
    import nftables

    n = nftables.Nftables()
    n.set_json_output(True)
    n.set_handle_output(True)
    return n


def nft_json(commands: list[dict[str, Any]]) -> None:
    """Run JSON commands in the current thread's netns as one transaction."""
    rc, _out, err = nft_context().json_cmd({"nftables": commands})
    if rc != 0:
        raise NftError(f"nft: {str(err).strip() or f'rc={rc}'}")


def nft_text(command: str) -> str:
    """Run one nft command line in the current thread's netns; its (JSON) output."""
    rc, out, err = nft_context().cmd(command)
    if rc != 0:
        raise NftError(f"nft {command!r}: {str(err).strip()}")
    return str(out)


def table_exists(name: str, family: str = "inet") -> bool:
    rc, _out, _err = nft_context().cmd(f"list table {family} {name}")
    return bool(rc == 0)


def delete_table(name: str, family: str = "inet") -> bool:
    """Delete the table; False when it was not there."""
    if not table_exists(name, family):
        return False
    nft_text(f"delete table {family} {name}")
    return True
