# SPDX-License-Identifier: Apache-2.0
"""The ``cgroup`` quarantine: an nftables table inside the container's network namespace whose
input and output hooks drop packets of the container's sockets.

A packet carries its socket only in the netns where the socket lives: on the host's forward path
(bridge → veth) ``meta cgroup`` and ``socket cgroupv2`` see no socket, so rules there would match
nothing. Inside the netns, output sees every packet the container sends (a SYN-ACK of a listener
too: the kernel maps its request socket to the listener, ``skb_to_full_sk``) and input sees every
packet it receives, so both directions are cut. On a host-network container the same rules land
in the host netns, where matching the cgroup is what keeps the host's own traffic untouched.

- v2: ``socket cgroupv2 level N "<path>"`` (nftables 1.0.6 has no JSON form for this key, and
  resolves the path below a hard-coded ``/sys/fs/cgroup``: the rule is sent as text). When the
  host's cgroup2 mount is elsewhere for the agent (``/host/sys/fs/cgroup`` in the DaemonSet, whose
  own ``/sys/fs/cgroup`` is the pod's view), nft runs in a thread whose private mount namespace
  has that mount at ``/sys/fs/cgroup``; and in the host's cgroup namespace, since the kernel reads
  the level relative to the rule creator's (``agent.runtime.netns.nft_cgroup_setup``).
- v1: the container's ``net_cls.classid`` written directly (the controller mounted at
  ``<cgroup>/net_cls`` when absent; processes started before that mount sit in the root net_cls
  cgroup and are moved into one of their own), matched with ``meta cgroup``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from agent.findings import ActionResult
from agent.hostfs import HostPaths
from agent.response.quarantine.common import (
    QuarantineError,
    TableMethod,
    failed,
    install_table,
    result,
    table_name,
)
from agent.runtime.cgroups import cgroup_dir_v2, container_pids, read_proc_cgroup
from agent.runtime.model import Container
from agent.runtime.netns import (
    NFT_CGROUP2_ROOT,
    NetnsError,
    container_netns,
    host_netns_inodes,
    nft_cgroup_setup,
)

log = structlog.get_logger("agent.response")

CLASSID_MAJOR = 0x5247  # "RG": the agent's net_cls classes are 5247:xxxx

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


# --- v1: net_cls ------------------------------------------------------------------------------
def _netcls_mount(paths: HostPaths) -> tuple[Path, bool]:
    """Where the v1 net_cls controller is mounted; mount it at ``<cgroup>/net_cls`` when absent.

    Returns (mount point, mounted_by_us).
    """
    for line in (paths.proc / "self" / "mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fields = post.split()
        if len(fields) >= 3 and fields[0] == "cgroup" and "net_cls" in fields[2].split(","):
            return Path(pre.split()[4]), False
    target = paths.cgroup_v1("net_cls")
    target.mkdir(exist_ok=True)
    # mount -t cgroup -o net_cls net_cls <target>
    if _libc.mount(b"net_cls", str(target).encode(), b"cgroup", 0, b"net_cls") != 0:
        err = ctypes.get_errno()
        raise QuarantineError(f"mount net_cls at {target}: {os.strerror(err)}")
    log.info("net_cls_mounted", path=str(target))
    return target, True


def _free_classid(mount: Path, container: Container) -> int:
    used: set[int] = set()
    for f in mount.glob("**/net_cls.classid"):
        with contextlib.suppress(OSError, ValueError):
            used.add(int(f.read_text().strip()))
    minor = int(container.id[:4], 16) or 1
    for _ in range(0xFFFF):
        classid = (CLASSID_MAJOR << 16) | minor
        if classid not in used:
            return classid
        minor = minor % 0xFFFF + 1
    raise QuarantineError("no free net_cls classid")


def _move_into(paths: HostPaths, container: Container, cgdir: Path, target_rel: str) -> int:
    """Move every process of the container into the net_cls cgroup ``cgdir``; return how many
    moved. Forks during the move land in the parent's old cgroup: repeat until none is left."""
    moved = 0
    for _ in range(20):
        pending = []
        for pid in container_pids(paths, container):
            try:
                if read_proc_cgroup(paths, pid).v1.get("net_cls", "/") != target_rel:
                    pending.append(pid)
            except Exception:
                continue
        if not pending:
            break
        for pid in pending:
            try:
                (cgdir / "cgroup.procs").write_text(str(pid))
                moved += 1
            except ProcessLookupError:
                continue
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise
    return moved


def sweep_netcls(paths: HostPaths, container: Container, state: Mapping[str, Any]) -> int:
    """Re-home processes that entered the container after a v1 quarantine into its net_cls
    cgroup. Needed when net_cls was mounted after the container started: the runtime's
    ``exec`` joins the cgroups it knew at creation, i.e. the root net_cls cgroup."""
    if state.get("cgroup_version") != "v1" or not state.get("netcls_moved_from"):
        return 0
    cgdir = Path(str(state["netcls_mount"])) / str(state["netcls_cgroup"]).lstrip("/")
    if not cgdir.exists():
        return 0
    return _move_into(paths, container, cgdir, str(state["netcls_cgroup"]))


def _apply_netcls(paths: HostPaths, container: Container, state: dict[str, Any]) -> int:
    """Put the container in a net_cls cgroup of its own with a fresh classid; return it."""
    mount, mounted = _netcls_mount(paths)
    state["netcls_mount"] = str(mount)
    state["netcls_mounted_by_us"] = mounted
    try:
        current = read_proc_cgroup(paths, container.init_pid).v1.get("net_cls", "/")
    except Exception as exc:
        raise QuarantineError(f"container {container.short_id} is gone") from exc
    own = container.cgroup_v1.get("freezer") or container.cgroup_v2
    if not own.strip("/"):
        raise QuarantineError(f"container {container.short_id} has no cgroup of its own")
    if current.strip("/") == "":
        # The controller was mounted after the container started: its processes sit in the root
        # net_cls cgroup, shared with the host. Give the container a cgroup of its own.
        target_rel = own
        cgdir = mount / target_rel.lstrip("/")
        created = not cgdir.exists()
        cgdir.mkdir(parents=True, exist_ok=True)
        state.update(netcls_cgroup=target_rel, netcls_created=created, netcls_moved_from=current)
        _move_into(paths, container, cgdir, target_rel)
    else:
        cgdir = mount / current.lstrip("/")
        state.update(netcls_cgroup=current, netcls_created=False, netcls_moved_from="")
    classid_file = cgdir / "net_cls.classid"
    state["netcls_previous_classid"] = int(classid_file.read_text().strip() or 0)
    classid = _free_classid(mount, container)
    # Writing the classid also re-tags the sockets the cgroup's tasks already hold
    # (net/core/netclassid_cgroup.c: update_classid_task).
    classid_file.write_text(str(classid))
    state["classid"] = classid
    return classid


def _release_netcls(state: Mapping[str, Any]) -> None:
    mount = Path(str(state["netcls_mount"]))
    cgdir = mount / str(state["netcls_cgroup"]).lstrip("/")
    if not cgdir.exists():
        return
    with contextlib.suppress(FileNotFoundError):
        (cgdir / "net_cls.classid").write_text(str(int(state.get("netcls_previous_classid", 0))))
    moved_from = str(state.get("netcls_moved_from", ""))
    if moved_from:
        back = mount / moved_from.lstrip("/")
        for _ in range(20):
            try:
                pids = [int(x) for x in (cgdir / "cgroup.procs").read_text().split()]
            except FileNotFoundError:
                pids = []
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    (back / "cgroup.procs").write_text(str(pid))
    if state.get("netcls_created"):
        with contextlib.suppress(OSError):
            cgdir.rmdir()


# --- v2: socket cgroupv2 ----------------------------------------------------------------------
def _v2_match(paths: HostPaths, container: Container) -> tuple[int, str, Path | None]:
    """(level, path for nft, the cgroup2 mount nft must see at ``/sys/fs/cgroup``) of the
    container's v2 cgroup; the mount is None when the agent's own ``/sys/fs/cgroup`` holds it
    (on the host: ``unified/docker/<id>`` on a hybrid one)."""
    rel = container.cgroup_v2.strip("/")
    if not rel:
        raise QuarantineError(f"container {container.short_id} has no v2 cgroup of its own")
    if ".." in rel.split("/"):
        # /proc/<pid>/cgroup as read from a cgroup namespace that does not hold the container.
        raise QuarantineError(
            f"container {container.short_id}: cgroup {container.cgroup_v2} is relative to the agent's cgroup namespace"
        )
    full = cgroup_dir_v2(paths, container.cgroup_v2)
    if not full.is_dir():
        raise QuarantineError(f"container {container.short_id}: no cgroup directory {full}")
    level = len(rel.split("/"))
    if full.is_relative_to(NFT_CGROUP2_ROOT):
        return level, str(full.relative_to(NFT_CGROUP2_ROOT)), None
    return level, rel, paths.cgroup_v2


def apply_cgroup(paths: HostPaths, container: Container, version: str = "auto", dry_run: bool = False) -> ActionResult:
    """Drop every packet of the container's sockets, matched by cgroup, inside its netns."""
    if version == "auto":
        version = "v2" if container.cgroup_v2.strip("/") else "v1"
    name = table_name(container, "cg")
    state: dict[str, Any] = {"method": "cgroup", "cgroup_version": version, "table": name}
    try:
        ns = container_netns(paths, container)
        state["netns_inode"] = ns.stat().st_ino
        state["host_netns"] = state["netns_inode"] in host_netns_inodes(paths)
        if dry_run:
            detail = f"would add table inet {name} in netns {state['netns_inode']} ({version} match)"
            return result(container, True, detail, state, dry_run=True)
        if version == "v2":
            level, nft_path, cgroup2 = _v2_match(paths, container)
            setup = nft_cgroup_setup(paths, cgroup2)
            state.update(level=level, nft_path=nft_path, nft_cgroup2=str(cgroup2 or NFT_CGROUP2_ROOT))
            # nftables 1.0.6: no JSON parser for "socket cgroupv2" (and its JSON output drops the
            # level), so these two rules go as text.
            text = [
                f'add rule inet {name} {chain} socket cgroupv2 level {level} "{nft_path}" counter drop'
                for chain in ("input", "output")
            ]
            state["table_existed"], confirmed = install_table(ns, name, "accept", text_rules=text, setup=setup)
        else:
            classid = _apply_netcls(paths, container, state)
            match: dict[str, Any] = {"match": {"op": "==", "left": {"meta": {"key": "cgroup"}}, "right": classid}}
            drop = [(chain, [match, {"counter": None}, {"drop": None}]) for chain in ("input", "output")]
            state["table_existed"], confirmed = install_table(ns, name, "accept", drop)
    except (OSError, QuarantineError, NetnsError) as exc:
        return failed(container, "cgroup", exc, state)
    return result(container, confirmed, f"table inet {name} in the container's netns drops its {version} cgroup", state)


class CgroupMethod(TableMethod):
    """The ``cgroup`` quarantine method (see the module docstring)."""

    name = "cgroup"

    def apply(self, container: Container, dry_run: bool = False, reason: str = "") -> ActionResult:
        return apply_cgroup(self.paths, container, self.deps.cgroup_version, dry_run)

    def release(self, container_id: str, init_pid: int, state: Mapping[str, Any]) -> str:
        detail = super().release(container_id, init_pid, state)
        if state.get("cgroup_version") == "v1" and state.get("netcls_mount"):
            _release_netcls(state)
            detail += "; net_cls classid restored"
        return detail

    def reconcile(self, container: Container, state: Mapping[str, Any]) -> int:
        return sweep_netcls(self.paths, container, state)
