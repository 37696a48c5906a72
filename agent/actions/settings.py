# SPDX-License-Identifier: Apache-2.0
"""Config sections ``response`` and ``kubernetes``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from agent.settings_base import Section


class ResponseSettings(Section):
    mode: Literal["observe", "enforce"] = "observe"


class KubernetesSettings(Section):
    """How the agent reaches the Kubernetes API (quarantine by NetworkPolicy, patch plans)."""

    enabled: bool = False
    # Where the API is: "in_cluster" (the pod's service account), "kubeconfig" (the file below),
    # "url" (api_url + token_file), or "auto": in-cluster when KUBERNETES_SERVICE_HOST is set,
    # else the kubeconfig when given, else api_url.
    connection: Literal["auto", "in_cluster", "kubeconfig", "url"] = "auto"
    kubeconfig: Path | None = None
    context: str = ""
    api_url: str = ""
    token_file: Path | None = None
    ca_file: Path | None = None
    verify_tls: bool = True
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    # This node's name (the DaemonSet passes spec.nodeName as NODE_NAME); "" = read $NODE_NAME.
    node_name: str = ""
    # The label put on a quarantined pod; the deny-all NetworkPolicy selects it.
    quarantine_label: str = "riskguard.io/quarantine"
    policy_name_prefix: str = "riskguard-quarantine-"
    # Patch plans: the workload patch is sent with dryRun=All unless apply_patches is true.
    apply_patches: bool = False
    # Image → fixed image. Keys: "repo" or "repo:tag"; values: a full reference ("repo:tag")
    # or a bare tag ("1.25.4") that replaces the current tag.
    fixed_images: dict[str, str] = Field(default_factory=dict)
    # A tag convention used when fixed_images has no entry, e.g. "{tag}-patched"; "" = none.
    # Placeholders: {repo}, {tag}.
    fixed_tag_template: str = ""
