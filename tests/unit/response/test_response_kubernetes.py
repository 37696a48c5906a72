# SPDX-License-Identifier: Apache-2.0
"""The engine's Kubernetes quarantine (label + deny-all NetworkPolicy) and patch verdicts,
through the official client against the local fake API server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.findings import Finding, Severity, Source
from agent.response.engine import ResponseEngine
from agent.response.kube import KubeClient
from agent.runtime.model import Container
from tests.fakes.kube_api import RunningFake, pod, serve
from tests.unit.response.test_response_engine import fake_host


@pytest.fixture
def fake() -> Iterator[RunningFake]:
    yield from serve()


@pytest.fixture
def setup(
    fake: RunningFake, tmp_path: Path, make_ctx: Callable[..., AgentContext]
) -> tuple[AgentContext, Container, ResponseEngine]:
    token = tmp_path / "token"
    token.write_text("t0ken")
    cfg = AgentConfig.model_validate(
        {
            "response": {"mode": "enforce"},
            "kubernetes": {"enabled": True, "connection": "url", "api_url": fake.url, "token_file": str(token)},
        }
    )
    paths, c = fake_host(tmp_path / "host")
    c = Container(
        **{
            **c.to_dict(),
            "labels": {"io.kubernetes.pod.name": "web-1", "io.kubernetes.pod.namespace": "shop"},
            "details": {},
        }
    )
    ctx = make_ctx(config=cfg, paths=paths)
    ctx.registry.upsert(c)
    fake.kube.add("pods", pod("web-1", namespace="shop", labels={"app": "web"}))
    kube = KubeClient.from_settings(cfg.kubernetes)
    return ctx, c, ResponseEngine(ctx, kube=kube)


def test_network_finding_quarantines_the_pod_and_release_restores_it(
    fake: RunningFake, setup: tuple[AgentContext, Container, ResponseEngine]
) -> None:
    _ctx, c, engine = setup
    engine.on_finding(
        Finding(container=c.ref(), source=Source.NETWORK, detector_id="net-seq", severity=Severity.HIGH, summary="x")
    )
    [rec] = engine.records.active(c.id)
    assert rec.phase == "confirmed" and rec.method == "kubernetes"
    labels = fake.kube.get("pods", "shop", "web-1")["metadata"]["labels"]  # type: ignore[index]
    assert labels["app"] == "web" and "riskguard.io/quarantine" in labels
    policy = fake.kube.get("networkpolicies", "shop", rec.state["pod"]["policy_name"])
    assert policy is not None and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert fake.kube.seen("POST", "/networkpolicies")
    engine.release(c.id)
    assert fake.kube.get("networkpolicies", "shop", rec.state["pod"]["policy_name"]) is None
    labels = fake.kube.get("pods", "shop", "web-1")["metadata"]["labels"]  # type: ignore[index]
    assert labels == {"app": "web"}


def test_vuln_finding_gets_a_stored_patch_plan(setup: tuple[AgentContext, Container, ResponseEngine]) -> None:
    _ctx, c, engine = setup
    engine.on_finding(
        Finding(
            container=c.ref(),
            source=Source.VULN,
            detector_id="CVE-2024-0001",
            severity=Severity.CRITICAL,
            summary="openssl",
            evidence={"package": "openssl", "version": "3.0.1", "fixed_version": "3.0.13", "ecosystem": "Debian"},
        )
    )
    [rec] = engine.records.actions()
    assert rec.action == "patch" and rec.phase == "confirmed" and not rec.active
    assert rec.state["plan_id"]
    assert engine.records.findings()[0].verdict.action_id == rec.id


def test_without_a_pod_label_auto_does_not_use_kubernetes(
    fake: RunningFake, setup: tuple[AgentContext, Container, ResponseEngine], tmp_path: Path
) -> None:
    from agent.response import quarantine

    ctx, c, engine = setup
    plain = Container(**{**c.to_dict(), "labels": {}, "details": {}})
    res = quarantine.apply(ctx.paths, plain, "kubernetes", kube=engine.kube)
    assert not res.ok and "not a Kubernetes pod" in res.detail
    assert not fake.kube.seen("POST")
