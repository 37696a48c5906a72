# SPDX-License-Identifier: Apache-2.0
"""What the nftables quarantine methods share: table names, the container's netns (checked
against the inode recorded at discovery), the host's netns, base chains, and table removal."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.findings import ActionResult
from agent.hostfs import HostPaths
from agent.network.nsexec import delete_table, in_netns, table_exists
from agent.runtime.model import Container

if TYPE_CHECKING:  # the Kubernetes client is imported only where a pod is quarantined
    from agent.response.kube import KubeClient

TABLE_PREFIX = "riskguard_q_"


class QuarantineError(Exception):
    """A quarantine (or its release) could not be applied."""


@dataclass(frozen=True, slots=True)
class MethodDeps:
    """What the quarantine methods are built with."""

    paths: HostPaths
    cgroup_version: str = "auto"  # response.quarantine_cgroup: auto | v1 | v2
    kube: KubeClient | None = None


class QuarantineMethod(Protocol):
    """One way to cut a container off the network, and its exact undo.

    ``apply`` returns an ``ActionResult`` whose ``state`` is all the other three need.
    """

    name: str

    def apply(self, container: Container, dry_run: bool = False, reason: str = "") -> ActionResult:
        """Cut ``container`` off (or say what would be done, with ``dry_run``)."""
        ...

    def release(self, container_id: str, init_pid: int, state: Mapping[str, Any]) -> str:
        """Undo what ``apply`` recorded in ``state``; returns what was done, raises on failure."""
        ...

    def is_applied(self, init_pid: int, state: Mapping[str, Any]) -> bool | None:
        """Whether the quarantine is still in place (None: cannot tell)."""
        ...

    def reconcile(self, container: Container, state: Mapping[str, Any]) -> int:
        """Periodic upkeep of a quarantine in place; returns how many things it fixed."""
        ...


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


def base_chains(name: str, policy: str) -> list[dict[str, Any]]:
    """nft JSON commands for table ``name`` with input/output (and, for drop, forward) chains."""
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


def rule(table: str, chain: str, expr: list[dict[str, Any]]) -> dict[str, Any]:
    """An nft JSON ``add rule`` command."""
    return {"add": {"rule": {"family": "inet", "table": table, "chain": chain, "expr": expr}}}


def release_table(paths: HostPaths, init_pid: int, state: Mapping[str, Any]) -> str:
    """Delete the table a method recorded, unless it existed before or its netns is gone."""
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


def table_in_place(paths: HostPaths, init_pid: int, state: Mapping[str, Any]) -> bool:
    """Whether the recorded table is still in the recorded netns."""
    ns = paths.pid_netns(init_pid)
    try:
        if os.stat(ns).st_ino != state.get("netns_inode"):
            return False
    except OSError:
        return False
    return in_netns(ns, lambda: table_exists(str(state["table"])))
