# SPDX-License-Identifier: Apache-2.0
"""Network quarantine of one container, and its exact undo.

Methods (``response.quarantine``), one module each behind ``QuarantineMethod`` (apply / release /
is_applied / reconcile), looked up in ``METHODS``:

- ``cgroup``: an nftables table inside the container's netns dropping its cgroup's packets
  (``agent.response.quarantine.cgroup``);
- ``netns``: a deny-all table in the container's netns, loopback kept; refused on the host's
  netns (``.netns``);
- ``docker``: disconnected from every Docker network, reconnected exactly as it was (``.docker``);
- ``kubernetes``: the pod labelled and selected by a deny-all NetworkPolicy (``.kubernetes``).

``auto`` = kubernetes for a pod when a client is given, else ``cgroup``, falling back to
``netns``. Each ``apply`` returns an ``ActionResult`` whose ``state`` is all ``release`` needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from agent.findings import Action, ActionResult
from agent.hostfs import HostPaths
from agent.response.quarantine.cgroup import CgroupMethod, apply_cgroup, sweep_netcls
from agent.response.quarantine.common import (
    DEFAULT_DOCKER_URL,
    TABLE_PREFIX,
    MethodDeps,
    QuarantineError,
    QuarantineMethod,
    table_name,
)
from agent.response.quarantine.docker import DockerMethod, apply_docker
from agent.response.quarantine.kubernetes import KubernetesMethod, apply_kubernetes
from agent.response.quarantine.netns import NetnsMethod, apply_netns
from agent.runtime.model import Container

if TYPE_CHECKING:
    from agent.response.kube import KubeClient
from agent.runtime.netns import container_netns, host_netns_inodes

__all__ = [
    "METHODS",
    "TABLE_PREFIX",
    "QuarantineError",
    "QuarantineMethod",
    "apply",
    "apply_cgroup",
    "apply_docker",
    "apply_kubernetes",
    "apply_netns",
    "container_netns",
    "host_netns_inodes",
    "is_applied",
    "reconcile",
    "release",
    "sweep_netcls",
    "table_name",
]

log = structlog.get_logger("agent.response")

METHODS: dict[str, Callable[[MethodDeps], QuarantineMethod]] = {
    "cgroup": CgroupMethod,
    "netns": NetnsMethod,
    "docker": DockerMethod,
    "kubernetes": KubernetesMethod,
}
# ``auto`` outside Kubernetes: the first method that works.
AUTO = ("cgroup", "netns")


def _method(
    name: str,
    paths: HostPaths,
    cgroup_version: str = "auto",
    kube: KubeClient | None = None,
    docker_url: str = DEFAULT_DOCKER_URL,
) -> QuarantineMethod:
    factory = METHODS.get(name)
    if factory is None:
        raise QuarantineError(f"unknown quarantine method {name!r} in the record")
    return factory(MethodDeps(paths=paths, cgroup_version=cgroup_version, kube=kube, docker_url=docker_url))


def _chain(method: str, container: Container, kube: KubeClient | None) -> tuple[str, ...]:
    """The methods to try, in order, for the configured (or requested) ``method``."""
    from agent.response.kube import pod_of

    if method == "auto" and kube is not None and pod_of(container.ref()) is not None:
        return ("kubernetes",)
    if method in METHODS:
        return (method,)
    return AUTO


def apply(
    paths: HostPaths,
    container: Container,
    method: str = "auto",
    cgroup_version: str = "auto",
    dry_run: bool = False,
    kube: KubeClient | None = None,
    reason: str = "",
    docker_url: str = DEFAULT_DOCKER_URL,
) -> ActionResult:
    """Quarantine ``container`` with ``method``; ``auto`` = kubernetes for a pod when a client is
    given, else the cgroup match, falling back to the netns deny-all."""
    chain = _chain(method, container, kube)
    result: ActionResult | None = None
    for i, name in enumerate(chain):
        result = _method(name, paths, cgroup_version, kube, docker_url).apply(container, dry_run, reason)
        if result.ok or i == len(chain) - 1:
            break
        log.warning("quarantine_fell_back", container_id=container.id, reason=result.detail, to=chain[i + 1])
    assert result is not None
    return result


def release(
    paths: HostPaths,
    container_id: str,
    init_pid: int,
    state: Mapping[str, Any],
    dry_run: bool = False,
    kube: KubeClient | None = None,
    docker_url: str = DEFAULT_DOCKER_URL,
) -> ActionResult:
    """Undo what ``apply`` recorded in ``state``: exactly that, nothing more."""
    method = str(state.get("method", ""))
    if dry_run:
        return ActionResult.dry(Action.QUARANTINE, container_id, f"would release {method}")
    try:
        detail = _method(method, paths, kube=kube, docker_url=docker_url).release(container_id, init_pid, state)
    except Exception as exc:
        log.error("container_release_failed", container_id=container_id, method=method, error=repr(exc))
        return ActionResult(action=Action.QUARANTINE, container_id=container_id, ok=False, detail=str(exc))
    return ActionResult(action=Action.QUARANTINE, container_id=container_id, ok=True, detail=detail)


def is_applied(paths: HostPaths, init_pid: int, state: Mapping[str, Any]) -> bool | None:
    """Whether a recorded quarantine is still in place (None: cannot tell, e.g. Kubernetes)."""
    name = str(state.get("method", ""))
    if name not in METHODS:
        return None
    return _method(name, paths).is_applied(init_pid, state)


def reconcile(paths: HostPaths, container: Container, state: Mapping[str, Any]) -> int:
    """Periodic upkeep of a quarantine in place (v1: re-home late processes into net_cls)."""
    name = str(state.get("method", ""))
    if name not in METHODS:
        return 0
    return _method(name, paths).reconcile(container, state)
