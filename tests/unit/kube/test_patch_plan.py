# SPDX-License-Identifier: Apache-2.0
"""Patch plans: owner-chain walk, fixed image, dry-run patch against the fake API, storage, ctl."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import ctl
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.control import ControlServer
from agent.events import ContainerRef
from agent.findings import Finding, Severity, Source
from agent.response import patch, plans
from agent.settings.response import KubernetesSettings
from tests.fakes.kube_api import RunningFake, pod, serve, workload

K8S_LABELS = {
    "io.kubernetes.pod.name": "web-7d9f-abcde",
    "io.kubernetes.pod.namespace": "shop",
    "io.kubernetes.container.name": "app",
}


def vuln(pkg: str, installed: str, fixed: str, eco: str = "Debian:12", vid: str = "CVE-2024-0001") -> Finding:
    return Finding(
        container=None,
        source=Source.VULN,
        detector_id="vuln",
        severity=Severity.HIGH,
        summary=f"{pkg} {installed} vulnerable",
        evidence={
            "package": pkg,
            "version": installed,
            "fixed_version": fixed,
            "ecosystem": eco,
            "vuln_id": vid,
        },
    )


@pytest.fixture
def fake() -> Iterator[RunningFake]:
    yield from serve()


def k8s_ctx(make_ctx: Callable[..., AgentContext], fake: RunningFake, **kw: Any) -> AgentContext:
    settings = KubernetesSettings(enabled=True, connection="url", api_url=fake.url, **kw)
    return make_ctx(AgentConfig(kubernetes=settings))


def seed(fake: RunningFake, image: str = "registry.local:5000/shop/web:1.4.2") -> None:
    dep = fake.kube.add("deployments", workload("Deployment", "web", "shop", image=image))
    rs = fake.kube.add(
        "replicasets",
        workload("ReplicaSet", "web-7d9f", "shop", image=image, owner=("Deployment", "web", dep["metadata"]["uid"])),
    )
    fake.kube.add(
        "pods",
        pod("web-7d9f-abcde", "shop", image=image, owner=("ReplicaSet", "web-7d9f", rs["metadata"]["uid"])),
    )


def test_fixes_merge_per_package_at_highest_fixed_version() -> None:
    fixes = patch.fixes_from_findings(
        [
            vuln("openssl", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2", vid="CVE-A"),
            vuln("openssl", "3.0.11-1~deb12u1", "3.0.13-1~deb12u1", vid="CVE-B"),
            vuln("requests", "2.25.0", "2.31.0", eco="PyPI"),
            vuln("musl", "1.2.3-r4", "1.2.3-r5", eco="Alpine:v3.18"),
            {"evidence": {"package": "nofix", "version": "1"}},  # no fixed version: nothing to do
        ]
    )
    by = {f.name: f for f in fixes}
    assert set(by) == {"openssl", "requests", "musl"}
    assert by["openssl"].fixed == "3.0.13-1~deb12u1" and by["openssl"].vulns == ("CVE-A", "CVE-B")
    assert by["openssl"].command() == "apt-get install -y --only-upgrade 'openssl=3.0.13-1~deb12u1'"
    assert by["requests"].command() == "pip install requests==2.31.0"
    assert by["musl"].command() == "apk add --upgrade musl=1.2.3-r5"


def test_hostile_package_names_never_reach_a_command() -> None:
    fixes = patch.fixes_from_findings(
        [vuln("x; rm -rf /", "1", "2"), vuln("ok", "1", "$(reboot)"), vuln("fine", "1", "2")]
    )
    cmds = {f.name: f.command() for f in fixes}
    assert cmds == {"x; rm -rf /": "", "ok": "", "fine": "apt-get install -y --only-upgrade fine=2"}


@pytest.mark.parametrize(
    "image,mapping,template,expected",
    [
        ("nginx:1.25.3", {"nginx": "1.25.4"}, "", "nginx:1.25.4"),
        ("nginx:1.25.3", {"nginx:1.25.3": "mirror.local/nginx:1.25.4"}, "", "mirror.local/nginx:1.25.4"),
        ("reg:5000/a/b:2.0@sha256:abc", {}, "{tag}-patched", "reg:5000/a/b:2.0-patched"),
        ("reg:5000/a/b", {}, "{tag}-patched", ""),  # no tag to derive from
        ("nginx:1.25.4", {"nginx": "1.25.4"}, "", ""),  # already there
    ],
)
def test_fixed_image(image: str, mapping: dict[str, str], template: str, expected: str) -> None:
    s = KubernetesSettings(fixed_images=mapping, fixed_tag_template=template)
    assert patch.fixed_image(image, s) == expected


def test_plan_without_kubernetes_lists_upgrade_commands(make_ctx: Callable[..., AgentContext]) -> None:
    ctx = make_ctx()
    c = ContainerRef(id="abc123", name="web", image="debian:12")
    plan = patch.plan_for(ctx, c, [vuln("openssl", "3.0.11-1", "3.0.13-1")])
    assert plan.status == patch.PACKAGES_ONLY and plan.kubernetes is None
    assert plan.commands == ["apt-get install -y --only-upgrade openssl=3.0.13-1"]
    stored = plans.list_plans(ctx, container="abc")
    assert [p["id"] for p in stored] == [plan.id] and stored[0]["commands"] == plan.commands


def test_plan_on_kubernetes_dry_runs_the_deployment_patch(
    make_ctx: Callable[..., AgentContext], fake: RunningFake
) -> None:
    seed(fake)
    ctx = k8s_ctx(make_ctx, fake, fixed_images={"registry.local:5000/shop/web": "1.4.3"})
    c = ContainerRef(id="c0ffee", name="k8s_app_web", image="registry.local:5000/shop/web:1.4.2", labels=K8S_LABELS)
    plan = patch.plan_for(ctx, c, [vuln("openssl", "3.0.11-1", "3.0.13-1")])

    assert plan.status == patch.DRY_RUN_OK, plan.detail
    k = plan.kubernetes
    assert k is not None
    assert [o["kind"] for o in k["owner_chain"]] == ["Pod", "ReplicaSet", "Deployment"]
    assert k["target"] == {"kind": "Deployment", "name": "web"}
    assert k["new_image"] == "registry.local:5000/shop/web:1.4.3"
    assert k["server_image"] == "registry.local:5000/shop/web:1.4.3"  # what the server would run

    patches = fake.kube.seen("PATCH")
    assert [r.path for r in patches] == ["/apis/apps/v1/namespaces/shop/deployments/web"]
    assert patches[0].query["dryRun"] == ["All"]
    assert patches[0].content_type.startswith("application/strategic-merge-patch+json")
    assert patches[0].body == {
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.local:5000/shop/web:1.4.3"}]}}}
    }
    # Dry run: the stored Deployment is unchanged.
    dep = fake.kube.get("deployments", "shop", "web")
    assert dep is not None
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local:5000/shop/web:1.4.2"


def test_plan_applies_when_configured(make_ctx: Callable[..., AgentContext], fake: RunningFake) -> None:
    seed(fake, image="nginx:1.25.3")
    ctx = k8s_ctx(make_ctx, fake, fixed_tag_template="{tag}-fixed", apply_patches=True)
    c = ContainerRef(id="c1", name="web", image="nginx:1.25.3", labels=K8S_LABELS)
    plan = patch.plan_for(ctx, c, [vuln("zlib", "1", "2")])
    assert plan.status == patch.APPLIED
    assert "dryRun" not in fake.kube.seen("PATCH")[0].query
    dep = fake.kube.get("deployments", "shop", "web")
    assert dep is not None and dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25.3-fixed"


def test_plan_without_known_fixed_image_sends_no_patch(
    make_ctx: Callable[..., AgentContext], fake: RunningFake
) -> None:
    seed(fake)
    ctx = k8s_ctx(make_ctx, fake)
    c = ContainerRef(id="c2", name="web", image="x", labels=K8S_LABELS)
    plan = patch.plan_for(ctx, c, [vuln("zlib", "1", "2")])
    assert plan.status == patch.NO_FIXED_IMAGE
    assert plan.kubernetes is not None and plan.kubernetes["current_image"] == "registry.local:5000/shop/web:1.4.2"
    assert fake.kube.seen("PATCH") == []
    assert plan.commands == ["apt-get install -y --only-upgrade zlib=2"]


def test_plan_for_a_vanished_pod_is_stored_as_failed(make_ctx: Callable[..., AgentContext], fake: RunningFake) -> None:
    ctx = k8s_ctx(make_ctx, fake)
    c = ContainerRef(id="c3", name="web", image="x", labels=K8S_LABELS)
    plan = patch.plan_for(ctx, c, [vuln("zlib", "1", "2")])
    assert plan.status == patch.FAILED and "404" in plan.detail
    assert plans.list_plans(ctx)[0]["status"] == patch.FAILED


def test_riskguardctl_plans_over_the_control_socket(
    make_ctx: Callable[..., AgentContext], capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = make_ctx()
    plans.register_control(ctx)
    plans.register_control(ctx)  # idempotent
    plan = patch.plan_for(ctx, ContainerRef(id="abc", name="web", image="debian:12"), [vuln("curl", "7", "8")])
    sockdir = Path(tempfile.mkdtemp(prefix="rg-"))  # short path: AF_UNIX paths are ≤ 107 bytes
    server = ControlServer(sockdir / "s", ctx.control_methods)
    server.start()
    capsys.readouterr()  # unconfigured structlog prints to stdout: drop the plan's log line
    try:
        assert ctl.main(["--socket", str(sockdir / "s"), "plans", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert [p["id"] for p in out] == [plan.id]
        assert ctl.main(["--socket", str(sockdir / "s"), "plans", "--container", "web"]) == 0
        text = capsys.readouterr().out
        assert ["curl", "7", "8", "CVE-2024-0001"] in [line.split() for line in text.splitlines()], text
        assert "apt-get install -y --only-upgrade curl=8" in text
        assert "not applied (no workload to patch)" in text
    finally:
        server.stop()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_plan_covers_the_containers_stored_vuln_findings(make_ctx: Callable[..., AgentContext]) -> None:
    ctx = make_ctx()
    rows = [
        (
            "f1",
            "abc",
            "vuln",
            json.dumps(
                {
                    "package": "zlib",
                    "version": "1",
                    "fixed_version": "2",
                    "ecosystem": "Debian:12",
                    "vulnerability": "CVE-Z",
                }
            ),
        ),
        ("f2", "abc", "vuln", "{not json"),  # malformed: skipped
        ("f3", "other", "vuln", json.dumps({"package": "curl", "version": "7", "fixed_version": "8"})),
        ("f4", "abc", "rule", json.dumps({"package": "bash", "fixed_version": "9"})),  # not a vuln finding
    ]
    for fid, cid, source, evidence in rows:
        ctx.store.execute(
            "INSERT INTO findings(id, ts, container_id, container_name, image, source, detector_id, severity, summary,"
            " evidence) VALUES (?, 0, ?, '', '', ?, 'vuln.package', 3, '', ?)",
            (fid, cid, source, evidence),
        )
    plan = patch.plan_for(
        ctx, ContainerRef(id="abc", name="web", image="debian:12"), [vuln("openssl", "3.0.11-1", "3.0.13-1")]
    )
    assert [(p.name, p.fixed, p.vulns) for p in plan.packages] == [
        ("openssl", "3.0.13-1", ("CVE-2024-0001",)),
        ("zlib", "2", ("CVE-Z",)),
    ]
    only = patch.plan_for(ctx, ContainerRef(id="abc", name="web", image="d"), [], include_stored=False)
    assert only.status == patch.NO_FIX and only.packages == []
