# SPDX-License-Identifier: Apache-2.0
"""The ``kubernetes`` quarantine: the container's pod labelled and selected by a deny-all
NetworkPolicy (``agent.response.kube``); release removes both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent.findings import ActionResult
from agent.response.quarantine.common import MethodDeps, QuarantineError, result
from agent.runtime.model import Container

if TYPE_CHECKING:
    from agent.response.kube import KubeClient


def apply_kubernetes(kube: KubeClient, container: Container, dry_run: bool = False, reason: str = "") -> ActionResult:
    """Label the container's pod and select it with a deny-all NetworkPolicy (kube helper)."""
    from agent.response.kube import KubeError, pod_of

    ref = pod_of(container.ref())
    if ref is None:
        return result(container, False, "not a Kubernetes pod container", {})
    try:
        kstate = kube.quarantine_pod(ref.namespace, ref.name, dry_run=dry_run, reason=reason)
    except KubeError as exc:
        return result(container, False, f"kubernetes: {exc}", {})
    detail = f"pod {ref.namespace}/{ref.name} selected by NetworkPolicy {kstate['policy_name']}"
    return result(container, True, detail, {"method": "kubernetes", "pod": kstate}, dry_run=dry_run)


class KubernetesMethod:
    """The ``kubernetes`` quarantine method (see the module docstring)."""

    name = "kubernetes"

    def __init__(self, deps: MethodDeps) -> None:
        self.kube = deps.kube

    def apply(self, container: Container, dry_run: bool = False, reason: str = "") -> ActionResult:
        if self.kube is None:
            return result(container, False, "kubernetes is not enabled", {})
        return apply_kubernetes(self.kube, container, dry_run, reason)

    def release(self, container_id: str, init_pid: int, state: Mapping[str, Any]) -> str:
        if self.kube is None:
            raise QuarantineError("kubernetes is not enabled: cannot release the pod")
        self.kube.release_pod(state["pod"])
        return f"pod {state['pod']['namespace']}/{state['pod']['pod']} released"

    def is_applied(self, init_pid: int, state: Mapping[str, Any]) -> bool | None:
        return None  # the API server is the authority; not re-read on every sweep

    def reconcile(self, container: Container, state: Mapping[str, Any]) -> int:
        return 0
