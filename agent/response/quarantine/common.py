# SPDX-License-Identifier: Apache-2.0
"""What the nftables quarantine methods share: table names, base chains, and table removal
(the netns helpers live in ``agent.runtime.netns``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from agent.findings import Action, ActionResult
from agent.hostfs import HostPaths
from agent.runtime.model import Container
from agent.runtime.netns import delete_table, in_netns, netns_inode, nft_json, nft_text, table_exists
from agent.settings.core import RuntimeSettings

if TYPE_CHECKING:  # the Kubernetes client is imported only where a pod is quarantined
    from agent.response.kube import KubeClient

log = structlog.get_logger("agent.response")

TABLE_PREFIX = "riskguard_q_"
DEFAULT_DOCKER_URL = RuntimeSettings().docker_url


class QuarantineError(Exception):
    """A quarantine (or its release) could not be applied."""


@dataclass(frozen=True, slots=True)
class MethodDeps:
    """What the quarantine methods are built with."""

    paths: HostPaths
    cgroup_version: str = "auto"  # response.quarantine_cgroup: auto | v1 | v2
    kube: KubeClient | None = None
    docker_url: str = DEFAULT_DOCKER_URL  # runtime.docker_url: the dockerd the agent watches


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


def install_table(
    ns: Path,
    name: str,
    policy: str,
    rules: Sequence[tuple[str, list[dict[str, Any]]]] = (),
    text_rules: Sequence[str] = (),
    setup: Callable[[], None] | None = None,
) -> tuple[bool, bool]:
    """Add table ``name`` with its base chains in the netns ``ns`` and, when the table is new, its
    ``rules`` ((chain, nft JSON expression) pairs, one transaction) then its ``text_rules`` (nft
    commands as text), from a thread that ran ``setup`` first (``nft_cgroup_setup`` for
    ``socket cgroupv2`` rules); returns (the table existed before, the table is there now)."""

    def install() -> bool:
        existed = table_exists(name)
        cmds = base_chains(name, policy)
        if not existed:
            cmds += [rule(name, chain, expr) for chain, expr in rules]
        nft_json(cmds)
        if not existed:
            for line in text_rules:
                nft_text(line)
        return existed

    existed: bool = in_netns(ns, install, setup=setup)
    return existed, in_netns(ns, lambda: table_exists(name))


def release_table(paths: HostPaths, init_pid: int, state: Mapping[str, Any]) -> str:
    """Delete the table a method recorded, unless it existed before or its netns is gone."""
    if state.get("table_existed"):
        return f"table {state['table']} existed before the quarantine: kept"
    ns = paths.pid_netns(init_pid)
    inode = netns_inode(paths, init_pid)
    if not inode:
        return "the container's netns is gone: nothing to remove"
    if inode != state.get("netns_inode"):
        return "the container's netns is gone (pid reused): nothing to remove"
    removed = in_netns(ns, lambda: delete_table(str(state["table"])))
    return f"table {state['table']} {'removed' if removed else 'already absent'}"


def table_in_place(paths: HostPaths, init_pid: int, state: Mapping[str, Any]) -> bool:
    """Whether the recorded table is still in the recorded netns."""
    inode = netns_inode(paths, init_pid)
    if not inode or inode != state.get("netns_inode"):
        return False
    return in_netns(paths.pid_netns(init_pid), lambda: table_exists(str(state["table"])))


def result(
    container: Container, ok: bool, detail: str, state: Mapping[str, Any], dry_run: bool = False
) -> ActionResult:
    """A quarantine's ``ActionResult``."""
    return ActionResult(
        action=Action.QUARANTINE, container_id=container.id, ok=ok, detail=detail, dry_run=dry_run, state=state
    )


def failed(container: Container, method: str, exc: Exception, state: Mapping[str, Any]) -> ActionResult:
    """A quarantine that could not be applied: logged, and the partial ``state`` kept."""
    log.error("container_quarantine_failed", container_id=container.id, method=method, error=str(exc))
    return result(container, False, str(exc), state)


class TableMethod:
    """Base of the methods that install an nft table in the container's netns: ``release``
    deletes the table, ``is_applied`` looks for it; subclasses implement ``apply``."""

    name = ""

    def __init__(self, deps: MethodDeps) -> None:
        self.deps = deps
        self.paths = deps.paths

    def apply(self, container: Container, dry_run: bool = False, reason: str = "") -> ActionResult:
        raise NotImplementedError

    def release(self, container_id: str, init_pid: int, state: Mapping[str, Any]) -> str:
        return release_table(self.paths, init_pid, state)

    def is_applied(self, init_pid: int, state: Mapping[str, Any]) -> bool | None:
        return table_in_place(self.paths, init_pid, state)

    def reconcile(self, container: Container, state: Mapping[str, Any]) -> int:
        return 0
