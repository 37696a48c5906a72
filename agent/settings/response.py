# SPDX-License-Identifier: Apache-2.0
"""Config sections ``response`` and ``kubernetes``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import Field, field_validator, model_validator

from agent.settings.base import Section

Rung = Literal["none", "alert", "freeze", "quarantine", "patch"]

# Finding source → rung of the graded ladder (``response.ladder``'s default).
DEFAULT_LADDER: dict[str, Rung] = {
    "behavior": "freeze",
    "rule": "freeze",
    "audit": "freeze",
    "logs": "quarantine",
    "network": "quarantine",
    "syscall_chain": "quarantine",
    "vuln": "patch",
    "netpolicy": "alert",
    "operator": "freeze",
}


class ResponseOverride(Section):
    """A per-image or per-label adjustment of the response (first matching override wins)."""

    # fnmatch pattern on the image reference ("nginx:*", "registry.local/app/*"); "" = any.
    image: str = ""
    # Labels that must all be present with these values; {} = any.
    labels: dict[str, str] = Field(default_factory=dict)
    # Mode for matching containers; None = the global mode.
    mode: Literal["observe", "enforce"] | None = None
    # The highest rung of the ladder allowed for matching containers; None = no cap.
    max_action: Rung | None = None
    # True: matching containers are never acted on (alerts only), like the exempt label.
    exempt: bool = False


class KernelStopSettings(Section):
    """The in-kernel first response (probes/act.h): for the rules the kernel can decide alone the
    probe stops the offending task at the syscall (SIGSTOP, before its next user instruction);
    the agent then freezes the container and continues the task inside the frozen cgroup. Only
    containers in enforce mode (after overrides, exemptions and allow-lists) are ever stopped."""

    enabled: bool = True
    # Which rules the kernel enforces: open (an open of open_paths), namespace (unshare with
    # namespace flags, setns, mount), runtime_socket (an AF_UNIX connect to connect_paths),
    # exec (an exec below exec_prefixes, unless the image did so while its baseline learned).
    rules: tuple[Literal["open", "namespace", "runtime_socket", "exec"], ...] = (
        "open",
        "namespace",
        "runtime_socket",
        "exec",
    )
    # Paths whose open stops the task (the secrets RG-0002 never lowers); exact, or a directory
    # when the path ends in "/".
    open_paths: tuple[str, ...] = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-")
    # Unix socket paths whose connect stops the task (container runtime APIs); exact.
    connect_paths: tuple[str, ...] = (
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/var/run/containerd/containerd.sock",
        "/run/crio/crio.sock",
        "/var/run/crio/crio.sock",
        "/run/podman/podman.sock",
    )
    # Exec path prefixes that stop the new program before its first instruction: writable
    # directories and memory (an fexecve of a memfd execs /dev/fd/N).
    exec_prefixes: tuple[str, ...] = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/shm/", "/dev/fd/", "/proc/self/fd/")
    # Run the must-act reader thread under SCHED_FIFO (priority 1; it sleeps until a record
    # comes), handle a record at nice -20, and hand the GIL over every 50 us instead of 5 ms
    # while it is handled: keeps syscall -> frozen short on a busy host. false: none of that.
    realtime: bool = True


class BudgetSettings(Section):
    """How many actions the response may apply, per workload and severity, so that decoys in a
    few containers cannot spend what an attack elsewhere needs (``agent.response.budget``)."""

    # Applied actions per minute per workload and finding severity; beyond, the action is
    # downgraded to an alert, queued, and applied when the workload's budget frees (critical
    # findings, and every must-act record of the kernel, are never downgraded).
    # The default (10 each) is the old host-wide limit, now for every workload and severity.
    per_workload_per_minute: dict[str, int] = Field(default_factory=lambda: {"low": 10, "medium": 10, "high": 10})
    # What a workload is: the value of this container label when set (e.g.
    # app.kubernetes.io/name, io.kubernetes.pod.namespace), else the container's image.
    workload_label: str = ""
    # A queued action still without budget after this many seconds is escalated (a finding says
    # the operator must decide) and dropped from the queue.
    retry_seconds: float = Field(default=300.0, gt=0)
    # At most this many queued actions in all (the oldest beyond are escalated).
    max_queued: int = Field(default=256, ge=1)
    # The host-wide circuit breaker trips when this many distinct workloads spent their budget
    # within a minute (a storm across many images): until breaker_seconds after the last such
    # spend, every non-critical action is queued. It says so in status, metrics and the journal.
    breaker_workloads: int = Field(default=5, ge=2)
    # How long the breaker stays open after the storm's last overspend.
    breaker_seconds: float = Field(default=60.0, gt=0)

    @field_validator("per_workload_per_minute")
    @classmethod
    def _severities(cls, v: dict[str, int]) -> dict[str, int]:
        bad = sorted(set(v) - {"low", "medium", "high"})
        if bad:
            raise ValueError(f"unknown severities {bad}: low, medium, high (critical is never limited)")
        if any(n < 0 for n in v.values()):
            raise ValueError("budgets must be >= 0")
        return v


class ResponseSettings(Section):
    """Findings → verdicts → actions: mode, thresholds, allowlists, ladder and limits."""

    enabled: bool = True
    # observe: verdicts are recorded and alerted, never applied; enforce: actions are applied.
    mode: Literal["observe", "enforce"] = "observe"
    # Findings below this severity are stored without a verdict (action "none").
    alert_severity: Literal["info", "low", "medium", "high", "critical"] = "low"
    # Findings at or above this severity climb the ladder past "alert".
    action_severity: Literal["info", "low", "medium", "high", "critical"] = "high"
    # Source → rung of the graded ladder (alert → freeze → quarantine → patch).
    ladder: dict[str, Rung] = Field(default_factory=lambda: dict(DEFAULT_LADDER))
    # A container carrying this label with value "true" is never acted on.
    exempt_label: str = "riskguard.exempt"
    # Never acted on: container ids (or unique prefixes ≥ 12 chars), names, and image patterns.
    allow_containers: list[str] = Field(default_factory=list)
    # Image patterns (fnmatch) whose containers are never acted on.
    allow_images: list[str] = Field(default_factory=list)
    # Per image or label adjustments, first match wins: {image, labels, mode, max_action, exempt}.
    overrides: list[ResponseOverride] = Field(default_factory=list)
    # One verdict per container per incident: later findings within this many seconds of the
    # incident's last finding join it (no new verdict unless they call for a higher rung).
    incident_seconds: float = Field(default=600.0, gt=0)
    # Action budgets per workload and severity, and the host-wide circuit breaker (replaces the
    # host-wide max_actions_per_minute, which decoys could spend).
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    # Dry run: actions are recorded with what they would do, nothing is written to the host.
    dry_run: bool = False
    # Freeze through the v1 freezer, the v2 cgroup.freeze, or auto (v1 when the container has
    # a freezer cgroup, like Docker on a hybrid host, else v2).
    freezer: Literal["auto", "v1", "v2"] = "auto"
    # Seconds to wait for the kernel to report a cgroup frozen.
    freeze_timeout_seconds: float = Field(default=5.0, gt=0)
    # Network quarantine method: auto (kubernetes for pods when enabled, else cgroup, falling
    # back to netns), cgroup (nft match on the container's cgroup inside its netns), netns
    # (deny-all ruleset in the container's netns, loopback kept), docker (network disconnect).
    quarantine: Literal["auto", "cgroup", "netns", "docker", "kubernetes"] = "auto"
    # Which cgroup the "cgroup" method matches: v2 (socket cgroupv2), v1 (net_cls classid +
    # meta cgroup), or auto (v2 when the container has a v2 cgroup).
    quarantine_cgroup: Literal["auto", "v1", "v2"] = "auto"
    # Events kept per container for the evidence snapshot taken before an action.
    evidence_events: int = Field(default=50, ge=0)
    # When a freeze reads the container's socket table: "before" the freeze with the rest of the
    # snapshot, or "after_freeze" (the processes are stopped then, so their sockets are the ones
    # they held; saves ~2 ms of kernel hash walks on the exec-to-frozen path). Quarantine always
    # reads it before.
    evidence_connections: Literal["before", "after_freeze"] = "before"
    # The in-kernel first response: the task is stopped at the syscall, the container frozen
    # from the must-act record on the reader thread (docs/response.md, "Kernel stop").
    kernel_stop: KernelStopSettings = Field(default_factory=KernelStopSettings)

    @model_validator(mode="before")
    @classmethod
    def _retired_max_actions(cls, data: Any) -> Any:
        """``max_actions_per_minute`` (host-wide, attacker-exhaustible) is accepted for one release
        with a warning and becomes the per-workload budget of every severity not set there."""
        if isinstance(data, dict) and "max_actions_per_minute" in data:
            data = dict(data)
            old = data.pop("max_actions_per_minute")
            budget = dict(data.get("budget") or {})
            per = dict(budget.get("per_workload_per_minute") or {})
            if isinstance(old, int) and not isinstance(old, bool):
                per = {"low": old, "medium": old, "high": old, **per}
            budget["per_workload_per_minute"] = per
            data["budget"] = budget
            structlog.get_logger("agent.config").warning(
                "config_key_deprecated",
                key="response.max_actions_per_minute",
                use="response.budget.per_workload_per_minute",
                until="the next release",
            )
        return data


class KubernetesSettings(Section):
    """How the agent reaches the Kubernetes API (quarantine by NetworkPolicy, patch plans)."""

    enabled: bool = False
    # Where the API is: "in_cluster" (the pod's service account), "kubeconfig" (the file below),
    # "url" (api_url + token_file), or "auto": in-cluster when KUBERNETES_SERVICE_HOST is set,
    # else the kubeconfig when given, else api_url.
    connection: Literal["auto", "in_cluster", "kubeconfig", "url"] = "auto"
    # A kubeconfig file (connection: kubeconfig); null = the client's default lookup.
    kubeconfig: Path | None = None
    # The kubeconfig context to use; '' = the current one.
    context: str = ""
    # The API server URL (connection: url).
    api_url: str = ""
    # A bearer token file for api_url (e.g. a projected service-account token).
    token_file: Path | None = None
    # The CA bundle that signs the API server's certificate.
    ca_file: Path | None = None
    # Verify the API server's TLS certificate.
    verify_tls: bool = True
    # Timeout of one API request.
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    # This node's name (the DaemonSet passes spec.nodeName as NODE_NAME); "" = read $NODE_NAME.
    node_name: str = ""
    # The label put on a quarantined pod; the deny-all NetworkPolicy selects it.
    quarantine_label: str = "riskguard.io/quarantine"
    # Name prefix of the deny-all NetworkPolicies the agent creates.
    policy_name_prefix: str = "riskguard-quarantine-"
    # Patch plans: the workload patch is sent with dryRun=All unless apply_patches is true.
    apply_patches: bool = False
    # Image → fixed image. Keys: "repo" or "repo:tag"; values: a full reference ("repo:tag")
    # or a bare tag ("1.25.4") that replaces the current tag.
    fixed_images: dict[str, str] = Field(default_factory=dict)
    # A tag convention used when fixed_images has no entry, e.g. "{tag}-patched"; "" = none.
    # Placeholders: {repo}, {tag}.
    fixed_tag_template: str = ""
