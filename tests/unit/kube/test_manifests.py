# SPDX-License-Identifier: Apache-2.0
"""config/kubernetes/: the manifests parse and carry what the agent needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import AgentConfig, parse_config
from agent.context import AgentContext
from agent.events import ContainerRef, Event
from agent.findings import Finding, Severity, Source
from agent.hostfs import HostPaths
from agent.pipeline import Bus
from agent.response import patch
from agent.response.kube import KubeClient
from agent.runtime.model import ContainerRegistry
from agent.settings.response import KubernetesSettings
from agent.store import Store
from tests.fakes.kube_api import RunningFake, pod, serve, workload

ROOT = Path(__file__).resolve().parents[3] / "config" / "kubernetes"


def load() -> dict[str, list[dict[str, Any]]]:
    docs: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(ROOT.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                docs.setdefault(d["kind"], []).append(d)
    return docs


@pytest.fixture(scope="module")
def docs() -> dict[str, list[dict[str, Any]]]:
    return load()


def agent_config(docs: dict[str, list[dict[str, Any]]]) -> AgentConfig:
    [cm] = docs["ConfigMap"]
    return parse_config(yaml.safe_load(cm["data"]["agent.yaml"]), "configmap agent.yaml")


def test_every_file_parses_with_an_spdx_header() -> None:
    files = sorted(ROOT.glob("*.yaml"))
    assert {f.name for f in files} >= {"00-namespace.yaml", "10-rbac.yaml", "20-configmap.yaml", "30-daemonset.yaml"}
    for f in files:
        assert f.read_text().startswith("# SPDX-License-Identifier: Apache-2.0")
        assert all(isinstance(d, dict) and "kind" in d for d in yaml.safe_load_all(f.read_text()) if d)


def test_configmap_agent_yaml_is_a_valid_config(docs: dict[str, list[dict[str, Any]]]) -> None:
    cfg = agent_config(docs)
    assert cfg.kubernetes.enabled and cfg.kubernetes.connection == "in_cluster"
    assert cfg.host.root == Path("/host")
    assert cfg.outputs.metrics.address == "127.0.0.1"


def test_daemonset_has_host_pid_privilege_and_mounts(docs: dict[str, list[dict[str, Any]]]) -> None:
    [ds] = docs["DaemonSet"]
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostPID"] is True and spec["hostNetwork"] is True
    [c] = spec["containers"]
    assert c["securityContext"]["privileged"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert all(m["name"] in volumes for m in mounts.values()), "a mount names a missing volume"
    host_of = {p: volumes[m["name"]].get("hostPath", {}).get("path") for p, m in mounts.items()}

    # The agent's view (HostPaths re-rooted under host.root) lands on the node's real paths.
    cfg = agent_config(docs)
    paths = HostPaths.under(cfg.host.root)
    for field in ("proc", "sys", "docker_socket", "containerd_socket", "crio_socket"):
        inside = str(getattr(paths, field))
        assert host_of.get(inside) == "/" + str(Path(inside).relative_to(cfg.host.root)), field
    # State and control socket: host directories at the configured paths.
    assert host_of[str(cfg.state.dir)] == "/var/lib/riskguard"
    assert host_of[str(cfg.control.socket.parent)] == "/run/riskguard"
    # The config comes from the ConfigMap, mounted where the container's args point.
    config_mount = mounts["/etc/riskguard"]
    assert volumes[config_mount["name"]]["configMap"]["name"] == docs["ConfigMap"][0]["metadata"]["name"]
    assert "/etc/riskguard/agent.yaml" in c["args"]
    # Read-only config: group/world-writable files are refused by the agent.
    assert volumes[config_mount["name"]]["configMap"]["defaultMode"] & 0o022 == 0
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in c["env"]
    sa = spec["serviceAccountName"]
    assert [s["metadata"]["name"] for s in docs["ServiceAccount"]] == [sa]


def granted(docs: dict[str, list[dict[str, Any]]]) -> set[tuple[str, str, str]]:
    [role] = docs["ClusterRole"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_binds_the_service_account(docs: dict[str, list[dict[str, Any]]]) -> None:
    [binding] = docs["ClusterRoleBinding"]
    [role] = docs["ClusterRole"]
    [sa] = docs["ServiceAccount"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]}
    ]
    g = granted(docs)
    for verb in ("get", "list", "patch"):
        assert ("", "pods", verb) in g
    for verb in ("create", "delete"):
        assert ("networking.k8s.io", "networkpolicies", verb) in g
    for res in ("replicasets", "deployments", "statefulsets", "daemonsets"):
        assert ("apps", res, "get") in g and ("apps", res, "patch") in g
    assert not any(verb in ("*", "escalate", "bind", "impersonate") for _, _, verb in g)


@pytest.fixture
def fake() -> Iterator[RunningFake]:
    yield from serve()


def test_rbac_covers_every_request_the_agent_makes(
    docs: dict[str, list[dict[str, Any]]], fake: RunningFake, tmp_path: Path
) -> None:
    """Run quarantine, release, an owner walk and a patch plan; map each request to an RBAC verb."""
    for kind, res in (("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")):
        w = fake.kube.add(res, workload(kind, f"w-{res}"))
        fake.kube.add("pods", pod(f"p-{res}", owner=(kind, f"w-{res}", w["metadata"]["uid"])))
    dep = fake.kube.add("deployments", workload("Deployment", "web"))
    rs = fake.kube.add(
        "replicasets", workload("ReplicaSet", "web-1", owner=("Deployment", "web", dep["metadata"]["uid"]))
    )
    fake.kube.add("pods", pod("web-1-x", owner=("ReplicaSet", "web-1", rs["metadata"]["uid"])))
    settings = KubernetesSettings(enabled=True, connection="url", api_url=fake.url, fixed_tag_template="{tag}-fix")
    kc = KubeClient.from_settings(settings)
    state = kc.quarantine_pod("default", "web-1-x")
    kc.release_pod(state)
    kc.list_pods(node_name="node-1")
    ctx = AgentContext(
        config=AgentConfig(kubernetes=settings),
        paths=HostPaths(),
        store=Store(tmp_path / "db"),
        registry=ContainerRegistry(),
        events=Bus[Event]("e"),
        findings=Bus[Finding]("f"),
    )
    ev = {"package": "zlib", "version": "1", "fixed_version": "2", "ecosystem": "Debian:12"}
    vf = Finding(container=None, source=Source.VULN, detector_id="v", severity=Severity.HIGH, summary="", evidence=ev)
    for name in ("web-1-x", "p-statefulsets", "p-daemonsets"):
        labels = {
            "io.kubernetes.pod.name": name,
            "io.kubernetes.pod.namespace": "default",
            "io.kubernetes.container.name": "app",
        }
        plan = patch.plan_for(ctx, ContainerRef(id=name, name=name, image="", labels=labels), [vf], kube=kc)
        assert plan.status == patch.DRY_RUN_OK, plan.detail
    ctx.store.close()
    kc.close()

    verbs = {"GET": "get", "POST": "create", "PATCH": "patch", "DELETE": "delete"}
    needed = set()
    for r in fake.kube.requests:
        seg = r.path.strip("/").split("/")
        group = "" if seg[0] == "api" else seg[1]
        rest = seg[2:] if seg[0] == "api" else seg[3:]
        if rest[0] == "namespaces":
            rest = rest[2:]
        resource = rest[0]
        verb = verbs[r.method] if len(rest) > 1 or r.method != "GET" else "list"
        needed.add((group, resource, verb))
    assert ("apps", "statefulsets", "patch") in needed and ("networking.k8s.io", "networkpolicies", "delete") in needed
    missing = needed - granted(docs)
    assert not missing, f"the ClusterRole lacks {sorted(missing)}"
