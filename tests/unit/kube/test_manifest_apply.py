# SPDX-License-Identifier: Apache-2.0
"""config/kubernetes/ applies in a working order with kubectl (client-side dry run).

``kubectl apply --dry-run=client`` still asks a server for discovery (kind -> resource), so the
test points kubectl at ``tests.fakes.kube_discovery``, a local server with the real discovery
documents. ``--validate=false``: schema validation would download the server's OpenAPI document,
which a discovery-only server does not have; the manifests' content is checked by
test_manifests.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fakes.kube_discovery import discovery_server

ROOT = Path(__file__).resolve().parents[3] / "config" / "kubernetes"
# Objects another object refers to come first (a DaemonSet before its namespace, service
# account or ConfigMap is refused or starts pods that cannot run).
ORDER = ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"]


def kubectl(server: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kubectl")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is missing (scripts/setup-host.sh installs kubernetes-client)")
        pytest.skip("kubectl is not installed (scripts/setup-host.sh installs kubernetes-client)")
    env = {**os.environ, "KUBECONFIG": os.devnull}
    return subprocess.run(
        [exe, "--server", server, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def kinds(names: list[str]) -> list[str]:
    kind_of = {
        "namespace": "Namespace",
        "serviceaccount": "ServiceAccount",
        "clusterrole.rbac.authorization.k8s.io": "ClusterRole",
        "clusterrolebinding.rbac.authorization.k8s.io": "ClusterRoleBinding",
        "configmap": "ConfigMap",
        "daemonset.apps": "DaemonSet",
    }
    return [kind_of[n.split("/", 1)[0]] for n in names]


@pytest.mark.parametrize("how", ["-f", "-k"])
def test_dry_run_applies_every_object_in_dependency_order(how: str) -> None:
    with discovery_server() as url:
        r = kubectl(url, "apply", "--dry-run=client", "--validate=false", "-o", "name", how, str(ROOT))
    assert r.returncode == 0, r.stderr
    assert kinds(r.stdout.split()) == ORDER


def test_a_file_kubectl_cannot_map_fails_the_dry_run(tmp_path: Path) -> None:
    # The dry run is a real check: an unknown kind makes it fail.
    bad = tmp_path / "00-bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "x"}}))
    with discovery_server() as url:
        r = kubectl(url, "apply", "--dry-run=client", "--validate=false", "-o", "name", "-f", str(tmp_path))
    assert r.returncode != 0 and "Gizmo" in r.stderr


def test_file_names_sort_in_apply_order() -> None:
    seen: list[str] = []
    for f in sorted(ROOT.glob("*.yaml")):
        seen += [d["kind"] for d in yaml.safe_load_all(f.read_text()) if d]
    assert seen == ORDER
    # kubectl apply -f reads *.yaml/*.yml/*.json only: the kustomization file has no extension.
    assert (ROOT / "Kustomization").is_file() and not list(ROOT.glob("kustomization.y*ml"))
