# SPDX-License-Identifier: Apache-2.0
"""Network quarantine of one container, and its exact undo.

Methods (``response.quarantine``):

- ``cgroup``: an nftables table *inside the container's network namespace* whose input and output
  hooks drop packets of the container's sockets. A packet carries its socket only in the netns
  where the socket lives: on the host's forward path (bridge → veth) ``meta cgroup`` and
  ``socket cgroupv2`` see no socket, so rules there would match nothing. Inside the netns, output
  sees every packet the container sends (a SYN-ACK of a listener too: the kernel maps its request
  socket to the listener, ``skb_to_full_sk``) and input sees every packet it receives, so both
  directions are cut. On a host-network container the same rules land in the host netns, where
  matching the cgroup is what keeps the host's own traffic untouched.
  - v2: ``socket cgroupv2 level N "<path>"`` (nftables 1.0.6 has no JSON form for this key, and
    resolves the path below a hard-coded ``/sys/fs/cgroup``: the rule is sent as text).
  - v1: the container's ``net_cls.classid`` written directly (the controller mounted at
    ``<cgroup>/net_cls`` when absent; processes started before that mount sit in the root
    net_cls cgroup and are moved into one of their own), matched with ``meta cgroup``.
- ``netns``: a deny-all table in the container's netns, loopback kept: works with any runtime.
  Refused when the container shares the host's network namespace.
- ``docker``: ``docker network disconnect`` from every network, recording aliases, static IPs
  and links so that release reconnects exactly as it was.
- ``kubernetes``: the pod labelled and selected by a deny-all NetworkPolicy (``agent.response.kube``).

Each ``apply_*`` returns an ``ActionResult`` whose ``state`` is all ``release`` needs.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import structlog

from agent.findings import Action, ActionResult
from agent.hostfs import HostPaths
from agent.network.nsexec import NetnsError, delete_table, in_netns, nft_json, nft_text, table_exists
from agent.runtime.cgroups import cgroup_dir_v1, cgroup_dir_v2, read_proc_cgroup
from agent.runtime.docker import docker_sdk
from agent.runtime.model import Container

log = structlog.get_logger("agent.response")

T = TypeVar("T")

TABLE_PREFIX = "riskguard_q_"
CLASSID_MAJOR = 0x5247  # "RG": the agent's net_cls classes are 5247:xxxx
# nft resolves ``socket cgroupv2`` paths below this fixed mount point (nftables src/datatype.c,
# cgroupv2_get_path), whatever our HostPaths say.
NFT_CGROUP2_ROOT = Path("/sys/fs/cgroup")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class QuarantineError(Exception):
    """A quarantine (or its release) could not be applied."""


def table_name(container: Container | str, kind: str) -> str:
    cid = container if isinstance(container, str) else container.id
    return f"{TABLE_PREFIX}{kind}_{cid[:12]}"


def container_netns(paths: HostPaths, container: Container) -> Path:
    """The container's netns as a path, checked against the inode recorded at discovery (a
    recycled init pid must not redirect the rules into another namespace)."""
    ns = paths.pid_netns(container.init_pid)
    try:
        inode = os.stat(ns).st_ino
    except OSError as exc:
        raise QuarantineError(f"container {container.short_id}: init pid {container.init_pid} is gone") from exc
    if container.netns_inode and inode != container.netns_inode:
        raise QuarantineError(f"container {container.short_id}: netns changed (pid reused?)")
    return ns


def host_netns_inodes(paths: HostPaths) -> set[int]:
    """Inodes of the host's netns (pid 1's) and of the agent's own: neither may get a deny-all.

    Some sandboxes refuse even root a readlink/stat of /proc/1/ns/net; the agent's own netns
    (the host's, for a DaemonSet with hostNetwork) still counts. Empty: cannot tell (callers
    refuse).
    """
    found = set()
    for ns in (paths.pid_netns(1), paths.proc / "self" / "ns" / "net"):
        try:
            found.add(os.stat(ns).st_ino)
        except OSError:
            continue
    return found


def _base_chains(name: str, policy: str) -> list[dict[str, Any]]:
    cmds: list[dict[str, Any]] = [{"add": {"table": {"family": "inet", "name": name}}}]
    for chain, hook in (("input", "input"), ("output", "output"), ("forward", "forward")):
        if policy == "accept" and hook == "forward":
            continue
        cmds.append(
            {
                "add": {
                    "chain": {
                        "family": "inet",
                        "table": name,
                        "name": chain,
                        "type": "filter",
                        "hook": hook,
                        # Before conntrack and every ordinary filter table (raw priority):
                        # nothing accepted elsewhere gets past us.
                        "prio": -300,
                        "policy": policy,
                    }
                }
            }
        )
    return cmds


def _rule(table: str, chain: str, expr: list[dict[str, Any]]) -> dict[str, Any]:
    return {"add": {"rule": {"family": "inet", "table": table, "chain": chain, "expr": expr}}}


# --- cgroup method --------------------------------------------------------------------------
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


def _container_pids(paths: HostPaths, container: Container) -> set[int]:
    dirs: list[Path] = []
    if container.cgroup_v2.strip("/"):
        dirs.append(cgroup_dir_v2(paths, container.cgroup_v2))
    if container.cgroup_v1.get("freezer", "").strip("/"):
        dirs.append(cgroup_dir_v1(paths, "freezer", container.cgroup_v1["freezer"]))
    for d in dirs:
        pids: set[int] = set()
        for procs in [d / "cgroup.procs", *d.glob("**/cgroup.procs")]:
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(x) for x in procs.read_text().split())
        if pids:
            return pids
    return {container.init_pid}


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
        for pid in _container_pids(paths, container):
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


def _v2_match(paths: HostPaths, container: Container) -> tuple[int, str]:
    """(level, path for nft) of the container's v2 cgroup."""
    rel = container.cgroup_v2.strip("/")
    if not rel:
        raise QuarantineError(f"container {container.short_id} has no v2 cgroup of its own")
    full = cgroup_dir_v2(paths, container.cgroup_v2)
    try:
        nft_path = full.relative_to(NFT_CGROUP2_ROOT)
    except ValueError:
        raise QuarantineError(f"nft resolves cgroupv2 paths below {NFT_CGROUP2_ROOT}; {full} is not") from None
    return len(rel.split("/")), str(nft_path)


def apply_cgroup(paths: HostPaths, container: Container, version: str = "auto", dry_run: bool = False) -> ActionResult:
    """Drop every packet of the container's sockets, matched by cgroup, inside its netns."""
    if version == "auto":
        version = "v2" if container.cgroup_v2.strip("/") else "v1"
    name = table_name(container, "cg")
    state: dict[str, Any] = {"method": "cgroup", "cgroup_version": version, "table": name}
    try:
        ns = container_netns(paths, container)
        state["netns_inode"] = os.stat(ns).st_ino
        state["host_netns"] = state["netns_inode"] in host_netns_inodes(paths)
        if dry_run:
            detail = f"would add table inet {name} in netns {state['netns_inode']} ({version} match)"
            return ActionResult(
                action=Action.QUARANTINE,
                container_id=container.id,
                ok=True,
                detail=detail,
                dry_run=True,
                state=state,
            )
        if version == "v2":
            level, nft_path = _v2_match(paths, container)
            state.update(level=level, nft_path=nft_path)

            def install_v2() -> bool:
                existed = table_exists(name)
                nft_json(_base_chains(name, "accept"))
                if not existed:
                    # nftables 1.0.6: no JSON parser for "socket cgroupv2" (and its JSON output
                    # drops the level), so these two rules go as text.
                    for chain in ("input", "output"):
                        nft_text(
                            f'add rule inet {name} {chain} socket cgroupv2 level {level} "{nft_path}" counter drop'
                        )
                return existed

            state["table_existed"] = in_netns(ns, install_v2)
        else:
            classid = _apply_netcls(paths, container, state)

            def install_v1() -> bool:
                existed = table_exists(name)
                cmds = _base_chains(name, "accept")
                if not existed:
                    for chain in ("input", "output"):
                        match = {"match": {"op": "==", "left": {"meta": {"key": "cgroup"}}, "right": classid}}
                        cmds.append(_rule(name, chain, [match, {"counter": None}, {"drop": None}]))
                nft_json(cmds)
                return existed

            state["table_existed"] = in_netns(ns, install_v1)
        confirmed = in_netns(ns, lambda: table_exists(name))
    except (OSError, QuarantineError, NetnsError) as exc:
        log.error("container_quarantine_failed", container_id=container.id, method="cgroup", error=str(exc))
        return ActionResult(action=Action.QUARANTINE, container_id=container.id, ok=False, detail=str(exc), state=state)
    return ActionResult(
        action=Action.QUARANTINE,
        container_id=container.id,
        ok=confirmed,
        detail=f"table inet {name} in the container's netns drops its {version} cgroup",
        state=state,
    )


# --- netns deny-all -------------------------------------------------------------------------
def apply_netns(paths: HostPaths, container: Container, dry_run: bool = False) -> ActionResult:
    """A deny-all ruleset (loopback kept) in the container's netns; refused on the host netns."""
    name = table_name(container, "ns")
    state: dict[str, Any] = {"method": "netns", "table": name}
    try:
        ns = container_netns(paths, container)
        inode = os.stat(ns).st_ino
        state["netns_inode"] = inode
        hosts = host_netns_inodes(paths)
        if not hosts:
            raise QuarantineError("cannot tell the host's network namespace: deny-all refused")
        if inode in hosts:
            raise QuarantineError(
                f"container {container.short_id} shares the host's network namespace: deny-all would cut the host"
            )
        if dry_run:
            return ActionResult(
                action=Action.QUARANTINE,
                container_id=container.id,
                ok=True,
                detail=f"would add deny-all table inet {name} in netns {inode}",
                dry_run=True,
                state=state,
            )

        def install() -> bool:
            existed = table_exists(name)
            cmds = _base_chains(name, "drop")
            if not existed:
                cmds.append(_rule(name, "input", [_iface("iifname", "lo"), {"accept": None}]))
                cmds.append(_rule(name, "output", [_iface("oifname", "lo"), {"accept": None}]))
            nft_json(cmds)
            return existed

        state["table_existed"] = in_netns(ns, install)
        confirmed = in_netns(ns, lambda: table_exists(name))
    except (OSError, QuarantineError, NetnsError) as exc:
        log.error("container_quarantine_failed", container_id=container.id, method="netns", error=str(exc))
        return ActionResult(action=Action.QUARANTINE, container_id=container.id, ok=False, detail=str(exc), state=state)
    return ActionResult(
        action=Action.QUARANTINE,
        container_id=container.id,
        ok=confirmed,
        detail=f"deny-all table inet {name} in the container's netns (loopback kept)",
        state=state,
    )


def _iface(key: str, value: str) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"meta": {"key": key}}, "right": value}}


def _release_tables(paths: HostPaths, container_id: str, init_pid: int, state: Mapping[str, Any]) -> str:
    if state.get("table_existed"):
        return f"table {state['table']} existed before the quarantine: kept"
    ns = paths.pid_netns(init_pid)
    try:
        inode = os.stat(ns).st_ino
    except OSError:
        return "the container's netns is gone: nothing to remove"
    if inode != state.get("netns_inode"):
        return "the container's netns is gone (pid reused): nothing to remove"
    removed = in_netns(ns, lambda: delete_table(str(state["table"])))
    return f"table {state['table']} {'removed' if removed else 'already absent'}"


# --- docker ---------------------------------------------------------------------------------
def _docker(paths: HostPaths) -> Any:
    docker = docker_sdk()
    return docker.DockerClient(base_url=f"unix://{paths.docker_socket}", timeout=30)


def apply_docker(paths: HostPaths, container: Container, dry_run: bool = False) -> ActionResult:
    """Disconnect the container from every Docker network, recording how to reconnect it."""
    state: dict[str, Any] = {"method": "docker", "networks": []}
    try:
        client = _docker(paths)
        try:
            dc = client.containers.get(container.id)
            mode = str((dc.attrs.get("HostConfig") or {}).get("NetworkMode", ""))
            if mode == "host" or mode.startswith("container:") or mode == "none":
                raise QuarantineError(f"network mode {mode!r} cannot be disconnected")
            nets: Mapping[str, Any] = (dc.attrs.get("NetworkSettings") or {}).get("Networks") or {}
            for net_name, info in nets.items():
                ipam = (info or {}).get("IPAMConfig") or {}
                aliases = [a for a in (info.get("Aliases") or []) if a not in (container.short_id, container.id)]
                state["networks"].append(
                    {
                        "name": net_name,
                        "id": info.get("NetworkID", ""),
                        "aliases": aliases,
                        "links": list(info.get("Links") or []),
                        # Only statically configured addresses are re-requested: Docker refuses
                        # user-specified IPs on its default bridge.
                        "ipv4_address": ipam.get("IPv4Address") or "",
                        "ipv6_address": ipam.get("IPv6Address") or "",
                        "ip_address": info.get("IPAddress", ""),
                        "mac_address": info.get("MacAddress", ""),
                    }
                )
            if not state["networks"]:
                raise QuarantineError("the container is on no Docker network")
            if dry_run:
                names = ", ".join(n["name"] for n in state["networks"])
                return ActionResult(
                    action=Action.QUARANTINE,
                    container_id=container.id,
                    ok=True,
                    detail=f"would disconnect from {names}",
                    dry_run=True,
                    state=state,
                )
            for net in state["networks"]:
                client.networks.get(net["id"] or net["name"]).disconnect(container.id, force=True)
            dc.reload()
            left = sorted(((dc.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())
        finally:
            client.close()
    except QuarantineError as exc:
        return ActionResult(action=Action.QUARANTINE, container_id=container.id, ok=False, detail=str(exc), state=state)
    except Exception as exc:  # docker.errors.* and socket errors
        log.error("container_quarantine_failed", container_id=container.id, method="docker", error=repr(exc))
        return ActionResult(
            action=Action.QUARANTINE,
            container_id=container.id,
            ok=False,
            detail=f"docker: {exc}",
            state=state,
        )
    return ActionResult(
        action=Action.QUARANTINE,
        container_id=container.id,
        ok=not left,
        detail="disconnected from " + ", ".join(n["name"] for n in state["networks"]),
        state=state,
    )


def _release_docker(paths: HostPaths, container_id: str, state: Mapping[str, Any]) -> str:
    docker = docker_sdk()
    client = _docker(paths)
    try:
        try:
            dc = client.containers.get(container_id)
        except docker.errors.NotFound:
            return "the container is gone: nothing to reconnect"
        present = set(((dc.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())
        done = []
        for net in state.get("networks", []):
            if net["name"] in present:
                continue
            kwargs: dict[str, Any] = {}
            if net.get("aliases"):
                kwargs["aliases"] = net["aliases"]
            if net.get("links"):
                kwargs["links"] = net["links"]
            if net.get("ipv4_address"):
                kwargs["ipv4_address"] = net["ipv4_address"]
            if net.get("ipv6_address"):
                kwargs["ipv6_address"] = net["ipv6_address"]
            client.networks.get(net["id"] or net["name"]).connect(container_id, **kwargs)
            done.append(net["name"])
        dc.reload()
        now = set(((dc.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())
        missing = [n["name"] for n in state.get("networks", []) if n["name"] not in now]
        if missing:
            raise QuarantineError(f"not reconnected to {', '.join(missing)}")
        return "reconnected to " + ", ".join(done) if done else "already connected"
    finally:
        client.close()


# --- kubernetes -----------------------------------------------------------------------------
def apply_kubernetes(kube: Any, container: Container, dry_run: bool = False, reason: str = "") -> ActionResult:
    """Label the container's pod and select it with a deny-all NetworkPolicy (kube helper)."""
    from agent.response.kube import KubeError, pod_of

    ref = pod_of(container.ref())
    if ref is None:
        return ActionResult(
            action=Action.QUARANTINE,
            container_id=container.id,
            ok=False,
            detail="not a Kubernetes pod container",
        )
    try:
        kstate = kube.quarantine_pod(ref.namespace, ref.name, dry_run=dry_run, reason=reason)
    except KubeError as exc:
        return ActionResult(action=Action.QUARANTINE, container_id=container.id, ok=False, detail=f"kubernetes: {exc}")
    return ActionResult(
        action=Action.QUARANTINE,
        container_id=container.id,
        ok=True,
        detail=f"pod {ref.namespace}/{ref.name} selected by NetworkPolicy {kstate['policy_name']}",
        dry_run=dry_run,
        state={"method": "kubernetes", "pod": kstate},
    )


# --- entry points ---------------------------------------------------------------------------
def apply(
    paths: HostPaths,
    container: Container,
    method: str = "auto",
    cgroup_version: str = "auto",
    dry_run: bool = False,
    kube: Any = None,
    reason: str = "",
) -> ActionResult:
    """Quarantine ``container`` with ``method``; ``auto`` = kubernetes for a pod when a client is
    given, else the cgroup match, falling back to the netns deny-all."""
    from agent.response.kube import pod_of

    if method == "auto" and kube is not None and pod_of(container.ref()) is not None:
        method = "kubernetes"
    if method == "kubernetes":
        if kube is None:
            return ActionResult(
                action=Action.QUARANTINE,
                container_id=container.id,
                ok=False,
                detail="kubernetes is not enabled",
            )
        return apply_kubernetes(kube, container, dry_run, reason)
    if method == "docker":
        return apply_docker(paths, container, dry_run)
    if method == "netns":
        return apply_netns(paths, container, dry_run)
    result = apply_cgroup(paths, container, cgroup_version, dry_run)
    if result.ok or method == "cgroup":
        return result
    log.warning("quarantine_fell_back", container_id=container.id, reason=result.detail, to="netns")
    fallback = apply_netns(paths, container, dry_run)
    return fallback


def release(
    paths: HostPaths,
    container_id: str,
    init_pid: int,
    state: Mapping[str, Any],
    dry_run: bool = False,
    kube: Any = None,
) -> ActionResult:
    """Undo what ``apply`` recorded in ``state``: exactly that, nothing more."""
    method = str(state.get("method", ""))
    if dry_run:
        return ActionResult(
            action=Action.QUARANTINE,
            container_id=container_id,
            ok=True,
            detail=f"would release {method}",
            dry_run=True,
        )
    try:
        if method == "kubernetes":
            if kube is None:
                raise QuarantineError("kubernetes is not enabled: cannot release the pod")
            kube.release_pod(state["pod"])
            detail = f"pod {state['pod']['namespace']}/{state['pod']['pod']} released"
        elif method == "docker":
            detail = _release_docker(paths, container_id, state)
        elif method in ("cgroup", "netns"):
            detail = _release_tables(paths, container_id, init_pid, state)
            if method == "cgroup" and state.get("cgroup_version") == "v1" and state.get("netcls_mount"):
                _release_netcls(state)
                detail += "; net_cls classid restored"
        else:
            raise QuarantineError(f"unknown quarantine method {method!r} in the record")
    except Exception as exc:
        log.error("container_release_failed", container_id=container_id, method=method, error=repr(exc))
        return ActionResult(action=Action.QUARANTINE, container_id=container_id, ok=False, detail=str(exc))
    return ActionResult(action=Action.QUARANTINE, container_id=container_id, ok=True, detail=detail)


def is_applied(paths: HostPaths, init_pid: int, state: Mapping[str, Any]) -> bool | None:
    """Whether a recorded quarantine is still in place (None: cannot tell, e.g. Kubernetes)."""
    method = state.get("method")
    if method in ("cgroup", "netns"):
        ns = paths.pid_netns(init_pid)
        try:
            if os.stat(ns).st_ino != state.get("netns_inode"):
                return False
        except OSError:
            return False
        return in_netns(ns, lambda: table_exists(str(state["table"])))
    return None
