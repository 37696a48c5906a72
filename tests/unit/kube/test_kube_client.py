# SPDX-License-Identifier: Apache-2.0
"""KubeClient (official ``kubernetes`` client) against the local fake API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.events import ContainerRef
from agent.response.kube import KubeClient, KubeError, pod_of
from agent.runtime.model import Container
from agent.settings.response import KubernetesSettings
from tests.fakes.kube_api import RunningFake, pod, serve, workload


@pytest.fixture
def fake() -> Iterator[RunningFake]:
    yield from serve()


@pytest.fixture
def kc(fake: RunningFake, tmp_path: Path) -> Iterator[KubeClient]:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    settings = KubernetesSettings(enabled=True, connection="url", api_url=fake.url, token_file=token)
    client = KubeClient.from_settings(settings)
    yield client
    client.close()


def seed_deployment(fake: RunningFake) -> None:
    dep = fake.kube.add("deployments", workload("Deployment", "web"))
    rs = fake.kube.add(
        "replicasets",
        workload("ReplicaSet", "web-7d9f", owner=("Deployment", "web", dep["metadata"]["uid"])),
    )
    fake.kube.add("pods", pod("web-7d9f-abcde", owner=("ReplicaSet", "web-7d9f", rs["metadata"]["uid"])))


def test_pod_of_reads_cri_labels() -> None:
    ref = ContainerRef(
        id="c1",
        name="k8s_app_web",
        image="nginx",
        labels={
            "io.kubernetes.pod.name": "web-1",
            "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.container.name": "app",
        },
    )
    p = pod_of(ref)
    assert p is not None and (p.namespace, p.name, p.container) == ("shop", "web-1", "app")
    assert pod_of(ContainerRef(id="c2", name="plain", image="busybox")) is None
    rec = Container(id="c3", name="x", image="i", image_id="", runtime="containerd", init_pid=1, labels=ref.labels)
    assert pod_of(rec) == pod_of({"labels": dict(ref.labels)}) == p


def test_owner_chain_walks_pod_replicaset_deployment(fake: RunningFake, kc: KubeClient) -> None:
    seed_deployment(fake)
    chain = kc.owner_chain("default", "web-7d9f-abcde")
    assert [(c["kind"], c["name"]) for c in chain] == [
        ("Pod", "web-7d9f-abcde"),
        ("ReplicaSet", "web-7d9f"),
        ("Deployment", "web"),
    ]
    gets = [r.path for r in fake.kube.seen("GET")]
    assert gets == [
        "/api/v1/namespaces/default/pods/web-7d9f-abcde",
        "/apis/apps/v1/namespaces/default/replicasets/web-7d9f",
        "/apis/apps/v1/namespaces/default/deployments/web",
    ]
    # The bearer token from token_file travels on every request.
    assert all(r.authorization == "Bearer s3cret-token" for r in fake.kube.requests)


@pytest.mark.parametrize("kind,resource", [("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")])
def test_owner_chain_direct_controllers(fake: RunningFake, kc: KubeClient, kind: str, resource: str) -> None:
    w = fake.kube.add(resource, workload(kind, "db"))
    fake.kube.add("pods", pod("db-0", owner=(kind, "db", w["metadata"]["uid"])))
    chain = kc.owner_chain("default", "db-0")
    assert [c["kind"] for c in chain] == ["Pod", kind]
    assert chain[1]["object"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25.3"


def test_owner_chain_stops_at_unreadable_kind(fake: RunningFake, kc: KubeClient) -> None:
    fake.kube.add("pods", pod("job-x", owner=("Job", "nightly", "u-1")))
    chain = kc.owner_chain("default", "job-x")
    assert [(c["kind"], c["object"] is None) for c in chain] == [("Pod", False), ("Job", True)]


def test_quarantine_labels_pod_and_creates_deny_all_policy(fake: RunningFake, kc: KubeClient) -> None:
    fake.kube.add("pods", pod("api-1", labels={"app": "api"}))
    uid = fake.kube.get("pods", "default", "api-1")["metadata"]["uid"]  # type: ignore[index]
    state = kc.quarantine_pod("default", "api-1", reason="RG-0001 reverse shell")

    patch = fake.kube.seen("PATCH", "/pods/api-1")
    assert len(patch) == 1
    assert patch[0].content_type.startswith("application/strategic-merge-patch+json")
    assert patch[0].body == {"metadata": {"labels": {"riskguard.io/quarantine": uid}}}
    assert "dryRun" not in patch[0].query

    post = fake.kube.seen("POST", "/namespaces/default/networkpolicies")
    assert len(post) == 1
    spec = post[0].body["spec"]
    assert spec["podSelector"] == {"matchLabels": {"riskguard.io/quarantine": uid}}
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    assert spec.get("ingress", []) == [] and spec.get("egress", []) == []

    labels = fake.kube.get("pods", "default", "api-1")["metadata"]["labels"]  # type: ignore[index]
    assert labels == {"app": "api", "riskguard.io/quarantine": uid}
    assert fake.kube.get("networkpolicies", "default", state["policy_name"]) is not None
    assert state["created_policy"] is True and state["previous_label"] is None

    # Quarantining again is idempotent: the existing policy (409 AlreadyExists) is kept.
    again = kc.quarantine_pod("default", "api-1")
    assert again["created_policy"] is False

    kc.release_pod(state)
    delete = fake.kube.seen("DELETE")
    assert [r.path for r in delete] == [
        f"/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/{state['policy_name']}"
    ]
    assert fake.kube.seen("PATCH", "/pods/api-1")[-1].body == {
        "metadata": {"labels": {"riskguard.io/quarantine": None}}
    }
    assert fake.kube.get("networkpolicies", "default", state["policy_name"]) is None
    assert fake.kube.get("pods", "default", "api-1")["metadata"]["labels"] == {"app": "api"}  # type: ignore[index]

    # Releasing twice does not fail (the policy is already gone: 404 is tolerated).
    kc.release_pod(state)


def test_release_restores_a_previous_label_value(fake: RunningFake, kc: KubeClient) -> None:
    fake.kube.add("pods", pod("api-2", labels={"app": "api", "riskguard.io/quarantine": "manual"}))
    state = kc.quarantine_pod("default", "api-2")
    assert state["previous_label"] == "manual"
    kc.release_pod(state)
    labels = fake.kube.get("pods", "default", "api-2")["metadata"]["labels"]  # type: ignore[index]
    assert labels["riskguard.io/quarantine"] == "manual"


def test_quarantine_dry_run_persists_nothing(fake: RunningFake, kc: KubeClient) -> None:
    fake.kube.add("pods", pod("api-3"))
    state = kc.quarantine_pod("default", "api-3", dry_run=True)
    assert all(r.query.get("dryRun") == ["All"] for r in fake.kube.requests if r.method != "GET")
    assert fake.kube.get("networkpolicies", "default", state["policy_name"]) is None
    assert "riskguard.io/quarantine" not in fake.kube.get("pods", "default", "api-3")["metadata"]["labels"]  # type: ignore[index]


def test_missing_pod_is_a_kube_error(kc: KubeClient) -> None:
    with pytest.raises(KubeError) as err:
        kc.quarantine_pod("default", "nope")
    assert err.value.status == 404


def test_unreachable_api_is_a_kube_error(tmp_path: Path) -> None:
    settings = KubernetesSettings(
        enabled=True, connection="url", api_url="http://127.0.0.1:9", request_timeout_seconds=1
    )
    with pytest.raises(KubeError):
        KubeClient.from_settings(settings).get_pod("default", "x")


def test_auto_connection_without_cluster_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeError, match="api_url"):
        KubeClient.from_settings(KubernetesSettings(enabled=True))


def test_list_pods_on_node(fake: RunningFake, kc: KubeClient, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.kube.add("pods", pod("a"))
    other = pod("b")
    other["spec"]["nodeName"] = "node-2"
    fake.kube.add("pods", other)
    names = [p["metadata"]["name"] for p in kc.list_pods(node_name="node-1")]
    assert names == ["a"]
    assert fake.kube.requests[-1].query["fieldSelector"] == ["spec.nodeName=node-1"]
    monkeypatch.setenv("NODE_NAME", "node-2")
    assert [p["metadata"]["name"] for p in kc.pods_on_this_node()] == ["b"]
