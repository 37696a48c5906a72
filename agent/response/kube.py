# SPDX-License-Identifier: Apache-2.0
"""Kubernetes through the official client: pod quarantine by label + deny-all NetworkPolicy,
owner-chain walks and workload patches.

API used by the response engine::

    kc = KubeClient.from_settings(ctx.config.kubernetes)      # KubeError when unreachable/misconfigured
    ref = pod_of(container)                                    # PodRef | None (from CRI labels)
    state = kc.quarantine_pod(ref.namespace, ref.name)         # dict: what release_pod needs
    kc.release_pod(state)                                      # removes the policy, restores the label
    chain = kc.owner_chain(ref.namespace, ref.name)            # [pod, ReplicaSet, Deployment] as dicts

Every object handed back is the API's JSON shape (camelCase keys), so records and plans store
it as-is. Errors of the API become ``KubeError`` with the HTTP status.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from agent.events import ContainerRef
from agent.extras import require
from agent.runtime.model import Container
from agent.settings.response import KubernetesSettings

if TYPE_CHECKING:
    # The client is imported where a client is built (~30 MiB): an agent with Kubernetes off,
    # the default, never loads it.
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

log = structlog.get_logger("agent.kube")

# CRI labels every kubelet puts on the containers it starts (dockershim, cri-dockerd,
# containerd's CRI plugin and CRI-O use the same keys).
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"

MANAGED_BY = {"app.kubernetes.io/managed-by": "riskguard-agent"}
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"

# Workload kinds a patch plan can target, with their apps/v1 methods' resource names.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


class KubeError(Exception):
    """The Kubernetes API refused or could not be reached; ``status`` is the HTTP code (0: none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class PodRef:
    """The pod (and container name in it) a runtime container belongs to."""

    namespace: str
    name: str
    container: str = ""
    uid: str = ""


def pod_of(container: ContainerRef | Container | Mapping[str, Any]) -> PodRef | None:
    """The pod a container belongs to, from its CRI labels; ``None`` outside Kubernetes."""
    labels: Mapping[str, Any] = container.get("labels") or {} if isinstance(container, Mapping) else container.labels
    name = str(labels.get(POD_NAME_LABEL, ""))
    namespace = str(labels.get(POD_NAMESPACE_LABEL, ""))
    if not name or not namespace:
        return None
    return PodRef(
        namespace=namespace,
        name=name,
        container=str(labels.get(CONTAINER_NAME_LABEL, "")),
        uid=str(labels.get(POD_UID_LABEL, "")),
    )


def _configuration(settings: KubernetesSettings) -> k8s.Configuration:
    """Build a client configuration from the ``kubernetes`` config section."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    cfg = k8s.Configuration()
    mode = settings.connection
    if mode == "auto":
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            mode = "in_cluster"
        elif settings.kubeconfig is not None:
            mode = "kubeconfig"
        elif settings.api_url:
            mode = "url"
        else:
            raise KubeError(
                "kubernetes.connection is auto but this is no pod (KUBERNETES_SERVICE_HOST unset) "
                "and neither kubernetes.kubeconfig nor kubernetes.api_url is set"
            )
    try:
        if mode == "in_cluster":
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]  # untyped in kubernetes 37
        elif mode == "kubeconfig":
            if settings.kubeconfig is None:
                raise KubeError("kubernetes.connection is kubeconfig but kubernetes.kubeconfig is not set")
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(settings.kubeconfig),
                context=settings.context or None,
                client_configuration=cfg,
            )
        else:
            if not settings.api_url:
                raise KubeError("kubernetes.connection is url but kubernetes.api_url is not set")
            cfg.host = settings.api_url.rstrip("/")
            if settings.token_file is not None:
                token = Path(settings.token_file).read_text(encoding="utf-8").strip()
                cfg.api_key = {"authorization": token}
                cfg.api_key_prefix = {"authorization": "Bearer"}
            if settings.ca_file is not None:
                cfg.ssl_ca_cert = str(settings.ca_file)
            cfg.verify_ssl = settings.verify_tls
    except (ConfigException, OSError) as exc:
        raise KubeError(f"cannot configure the Kubernetes client ({mode}): {exc}") from None
    return cfg


def _label_value(text: str) -> str:
    """A valid label value naming ``text`` (≤ 63 chars, alphanumeric at both ends)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text).strip("-_.")
    if len(safe) <= 63 and safe:
        return safe
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return (safe[:52].strip("-_.") + "-" + digest).strip("-_.")


class KubeClient:
    """A thin, typed wrapper over the official client for the calls the agent makes."""

    def __init__(self, api_client: k8s.ApiClient, settings: KubernetesSettings | None = None) -> None:
        from kubernetes import client as k8s

        self.settings = settings or KubernetesSettings(enabled=True)
        self.api = api_client
        self.core = k8s.CoreV1Api(api_client)
        self.apps = k8s.AppsV1Api(api_client)
        self.net = k8s.NetworkingV1Api(api_client)
        self._timeout = self.settings.request_timeout_seconds

    @classmethod
    def from_settings(cls, settings: KubernetesSettings) -> KubeClient:
        """Connect as the config section says (in-cluster, kubeconfig or URL + token)."""
        require("kubernetes")  # the client is the [kubernetes] extra: say so instead of ImportError
        from kubernetes import client as k8s

        return cls(k8s.ApiClient(_configuration(settings)), settings)

    @property
    def node_name(self) -> str:
        """This node's name: ``kubernetes.node_name``, else ``$NODE_NAME`` (the DaemonSet's downward API)."""
        return self.settings.node_name or os.environ.get("NODE_NAME", "")

    def pods_on_this_node(self) -> list[dict[str, Any]]:
        """Pods scheduled on this node (all pods when the node name is unknown)."""
        return self.list_pods(node_name=self.node_name)

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    # --- plumbing --------------------------------------------------------------------------
    def _json(self, obj: Any) -> dict[str, Any]:
        data = self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return dict(data) if isinstance(data, dict) else {}

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._json(fn(*args, _request_timeout=self._timeout, **kwargs))
        except ApiException as exc:
            raise KubeError(
                f"{what}: HTTP {exc.status} {exc.reason}: {_status_message(exc)}", exc.status or 0
            ) from None
        except Exception as exc:  # urllib3 connection errors, pydantic validation of odd replies
            raise KubeError(f"{what}: {exc}") from None

    # --- pods ------------------------------------------------------------------------------
    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(f"get pod {namespace}/{name}", self.core.read_namespaced_pod, name, namespace)

    def list_pods(self, namespace: str = "", label_selector: str = "", node_name: str = "") -> list[dict[str, Any]]:
        """Pods of one namespace (or all), optionally on one node."""
        kwargs: dict[str, Any] = {}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if node_name:
            kwargs["field_selector"] = f"spec.nodeName={node_name}"
        if namespace:
            data = self._call(f"list pods in {namespace}", self.core.list_namespaced_pod, namespace, **kwargs)
        else:
            data = self._call("list pods", self.core.list_pod_for_all_namespaces, **kwargs)
        return list(data.get("items") or [])

    def patch_pod(self, namespace: str, name: str, body: Mapping[str, Any], dry_run: bool = False) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"_content_type": STRATEGIC_MERGE}
        if dry_run:
            kwargs["dry_run"] = "All"
        return self._call(
            f"patch pod {namespace}/{name}",
            self.core.patch_namespaced_pod,
            name,
            namespace,
            dict(body),
            **kwargs,
        )

    # --- workloads -------------------------------------------------------------------------
    def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        fn = {
            "Deployment": self.apps.read_namespaced_deployment,
            "StatefulSet": self.apps.read_namespaced_stateful_set,
            "DaemonSet": self.apps.read_namespaced_daemon_set,
            "ReplicaSet": self.apps.read_namespaced_replica_set,
        }.get(kind)
        if fn is None:
            raise KubeError(f"unsupported workload kind {kind!r}")
        obj = self._call(f"get {kind} {namespace}/{name}", fn, name, namespace)
        obj.setdefault("kind", kind)
        return obj

    def patch_workload(
        self, kind: str, namespace: str, name: str, body: Mapping[str, Any], dry_run: bool = True
    ) -> dict[str, Any]:
        """Strategic-merge ``body`` into a workload; ``dry_run`` sends ``dryRun=All`` (nothing persists)."""
        fn = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "StatefulSet": self.apps.patch_namespaced_stateful_set,
            "DaemonSet": self.apps.patch_namespaced_daemon_set,
            "ReplicaSet": self.apps.patch_namespaced_replica_set,
        }.get(kind)
        if fn is None:
            raise KubeError(f"unsupported workload kind {kind!r}")
        kwargs: dict[str, Any] = {"_content_type": STRATEGIC_MERGE}
        if dry_run:
            kwargs["dry_run"] = "All"
        return self._call(f"patch {kind} {namespace}/{name}", fn, name, namespace, dict(body), **kwargs)

    def owner_chain(self, namespace: str, pod: str) -> list[dict[str, Any]]:
        """The pod and its controllers, innermost first: [Pod, ReplicaSet, Deployment] or [Pod, StatefulSet]…

        Each element is ``{"kind", "name", "namespace", "uid", "object"}``; the walk follows the
        ``controller: true`` owner reference and stops at a kind it cannot read (Job, a CRD).
        """
        obj = self.get_pod(namespace, pod)
        chain: list[dict[str, Any]] = [_link("Pod", namespace, obj)]
        seen = {chain[0]["uid"]}
        while True:
            owner = _controller_ref(chain[-1]["object"])
            if owner is None:
                return chain
            kind = str(owner.get("kind", ""))
            name = str(owner.get("name", ""))
            if kind not in WORKLOAD_KINDS:
                chain.append(
                    {
                        "kind": kind,
                        "name": name,
                        "namespace": namespace,
                        "uid": owner.get("uid", ""),
                        "object": None,
                    }
                )
                return chain
            obj = self.get_workload(kind, namespace, name)
            link = _link(kind, namespace, obj)
            if link["uid"] in seen or len(chain) > 8:  # a cycle cannot happen in a sane cluster
                return chain
            seen.add(link["uid"])
            chain.append(link)

    # --- quarantine ------------------------------------------------------------------------
    def policy_name(self, pod: str) -> str:
        """The NetworkPolicy name for a pod (a DNS-1123 subdomain, ≤ 253 chars)."""
        name = f"{self.settings.policy_name_prefix}{pod}".lower()
        if len(name) > 253:
            name = name[:242] + "-" + hashlib.sha256(pod.encode()).hexdigest()[:10]
        return name

    def quarantine_pod(self, namespace: str, name: str, dry_run: bool = False, reason: str = "") -> dict[str, Any]:
        """Label the pod and create a deny-all (ingress + egress) NetworkPolicy selecting that label.

        Returns the state ``release_pod`` needs: namespace, pod, uid, label key/value, the label's
        previous value (None when absent), the policy name and whether this call created it.
        Idempotent: an existing policy of ours is kept (``created_policy`` False).
        """
        key = self.settings.quarantine_label
        pod = self.get_pod(namespace, name)
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        value = _label_value(uid or name)
        previous = (meta.get("labels") or {}).get(key)
        policy = self.policy_name(name)
        state: dict[str, Any] = {
            "namespace": namespace,
            "pod": name,
            "uid": uid,
            "label_key": key,
            "label_value": value,
            "previous_label": previous,
            "policy_name": policy,
            "created_policy": False,
            "dry_run": dry_run,
        }
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": policy,
                "namespace": namespace,
                "labels": dict(MANAGED_BY),
                "annotations": {"riskguard.io/pod": name, "riskguard.io/reason": reason[:1000]},
            },
            "spec": {
                # Empty ingress/egress lists with both policy types: every packet to or from the
                # selected pod is denied (NetworkPolicies are allow-lists).
                "podSelector": {"matchLabels": {key: value}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [],
                "egress": [],
            },
        }
        # Label first: a policy selecting a label nobody carries yet is harmless, and the
        # label on the pod is what makes the quarantine visible to an operator (kubectl get -l).
        self.patch_pod(namespace, name, {"metadata": {"labels": {key: value}}}, dry_run=dry_run)
        kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        try:
            self._call(
                f"create networkpolicy {namespace}/{policy}",
                self.net.create_namespaced_network_policy,
                namespace,
                body,
                **kwargs,
            )
            state["created_policy"] = True
        except KubeError as exc:
            if exc.status != 409:  # AlreadyExists: an earlier quarantine of ours is still in place
                raise
        log.info("pod_quarantined", namespace=namespace, pod=name, policy=policy, dry_run=dry_run)
        return state

    def release_pod(self, state: Mapping[str, Any]) -> None:
        """Undo ``quarantine_pod``: delete the policy and restore the label as it was."""
        namespace = str(state["namespace"])
        name = str(state["pod"])
        key = str(state["label_key"])
        dry_run = bool(state.get("dry_run", False))
        kwargs: dict[str, Any] = {"dry_run": "All"} if dry_run else {}
        try:
            self._call(
                f"delete networkpolicy {namespace}/{state['policy_name']}",
                self.net.delete_namespaced_network_policy,
                str(state["policy_name"]),
                namespace,
                **kwargs,
            )
        except KubeError as exc:
            if exc.status != 404:
                raise
        previous = state.get("previous_label")
        try:
            # A JSON null in a merge patch deletes the key.
            self.patch_pod(namespace, name, {"metadata": {"labels": {key: previous}}}, dry_run=dry_run)
        except KubeError as exc:
            if exc.status != 404:  # the pod is gone: nothing left to unlabel
                raise
        log.info("pod_released", namespace=namespace, pod=name, policy=state["policy_name"], dry_run=dry_run)


def _link(kind: str, namespace: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        "kind": kind,
        "name": str(meta.get("name", "")),
        "namespace": str(meta.get("namespace", namespace)),
        "uid": str(meta.get("uid", "")),
        "object": dict(obj),
    }


def _controller_ref(obj: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not obj:
        return None
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def _status_message(exc: ApiException) -> str:
    import json

    try:
        body = json.loads(exc.body or "")
        return str(body.get("message", "")) or str(exc.body)[:200]
    except (ValueError, AttributeError):
        return str(exc.body or "")[:200]
