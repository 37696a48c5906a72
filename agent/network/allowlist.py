# SPDX-License-Identifier: Apache-2.0
"""Per-container allowlists: chosen from config by image or label, learned from flows, exported.

An ``Allowlist`` is plain data (egress and ingress rules plus the mode it is enforced in); the
same value drives the nftables rules (``agent.network.nft``), the SELinux ``name_connect``
rules and the Kubernetes NetworkPolicy export.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.settings.network import AllowlistSettings, EgressRule, IngressRule, NetworkSettings


@dataclass(frozen=True, slots=True)
class Allowlist:
    """What one container may send and accept; ``source`` says where it came from."""

    egress: tuple[EgressRule, ...] = ()
    ingress: tuple[IngressRule, ...] = ()
    mode: str = "observe"  # observe | enforce
    source: str = "declared"  # declared | learned | learning
    selector: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "mode": self.mode,
            "selector": self.selector,
            "egress": [r.model_dump() for r in self.egress],
            "ingress": [r.model_dump() for r in self.ingress],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Allowlist:
        return cls(
            egress=tuple(EgressRule.model_validate(r) for r in d.get("egress") or ()),
            ingress=tuple(IngressRule.model_validate(r) for r in d.get("ingress") or ()),
            mode=str(d.get("mode") or "observe"),
            source=str(d.get("source") or "declared"),
            selector=str(d.get("selector") or ""),
        )


def _label_matches(selector: str, labels: Mapping[str, str]) -> bool:
    key, eq, value = selector.partition("=")
    if key not in labels:
        return False
    return not eq or labels[key] == value


def _image_matches(pattern: str, image: str) -> bool:
    if fnmatch.fnmatchcase(image, pattern):
        return True
    # "busybox" also matches "busybox:latest" and "library/busybox".
    return ":" not in pattern and fnmatch.fnmatchcase(image.split("@")[0].rsplit(":", 1)[0], pattern)


def select(settings: NetworkSettings, image: str, labels: Mapping[str, str]) -> Allowlist | None:
    """The first declared allowlist whose selectors (image glob, label) all match, or None."""
    for entry in settings.allowlists:
        if entry.image and not _image_matches(entry.image, image):
            continue
        if entry.label and not _label_matches(entry.label, labels):
            continue
        return from_settings(entry, settings.mode)
    return None


def from_settings(entry: AllowlistSettings, default_mode: str) -> Allowlist:
    sel = " ".join(
        x for x in (f"image={entry.image}" if entry.image else "", entry.label and f"label={entry.label}") if x
    )
    return Allowlist(
        egress=entry.egress, ingress=entry.ingress, mode=entry.mode or default_mode, source="declared", selector=sel
    )


def learned(
    egress: Iterable[tuple[str, str, int]], ingress: Iterable[tuple[str, int]], mode: str, own: Iterable[str] = ()
) -> Allowlist:
    """An allowlist from observed flows: egress (daddr, proto, dport) as /32 (/128) rules grouped
    by destination and protocol, ingress (proto, port). Flows to the container's own addresses
    (``own``) and loopback are left out: the rules always allow loopback."""
    skip = set(own)
    by_dst: dict[tuple[str, str], set[int]] = {}
    for daddr, proto, port in egress:
        try:
            ip = ipaddress.ip_address(daddr)
        except ValueError:
            continue
        if ip.is_loopback or daddr in skip or ip.is_unspecified or proto not in ("tcp", "udp") or not 0 < port < 65536:
            continue
        by_dst.setdefault((str(ipaddress.ip_network(ip)), proto), set()).add(port)
    by_proto: dict[str, set[int]] = {}
    for proto, port in ingress:
        if proto in ("tcp", "udp") and 0 < port < 65536:
            by_proto.setdefault(proto, set()).add(port)
    return Allowlist(
        egress=tuple(
            EgressRule(cidr=cidr, protocol=proto, ports=tuple(sorted(ports)))  # type: ignore[arg-type]
            for (cidr, proto), ports in sorted(by_dst.items())
        ),
        ingress=tuple(
            IngressRule(protocol=proto, ports=tuple(sorted(ports)))  # type: ignore[arg-type]
            for proto, ports in sorted(by_proto.items())
        ),
        mode=mode,
        source="learned",
    )


# --- Kubernetes NetworkPolicy ---------------------------------------------------------------
K8S_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
K8S_POD_LABEL = "io.kubernetes.pod.name"


@dataclass(frozen=True, slots=True)
class PolicyTarget:
    """The workload a NetworkPolicy selects: its name, namespace and pod labels."""

    name: str
    namespace: str = "default"
    match_labels: Mapping[str, str] = field(default_factory=dict)


def target_for(name: str, labels: Mapping[str, str]) -> PolicyTarget:
    """A pod selector for a container: Kubernetes labels when it runs in a pod, else a
    ``riskguard.io/container`` label the operator puts on the pod template."""
    ns = labels.get(K8S_NAMESPACE_LABEL, "default")
    pod_labels = {
        k: v
        for k, v in labels.items()
        if not k.startswith(("io.kubernetes.", "annotation.", "riskguard.", "org.opencontainers.")) and "/" not in v
    }
    if labels.get(K8S_POD_LABEL) and pod_labels:
        return PolicyTarget(name=name, namespace=ns, match_labels=pod_labels)
    return PolicyTarget(name=name, namespace=ns, match_labels={"riskguard.io/container": _dns_label(name)})


def _dns_label(s: str) -> str:
    out = "".join(c if c.isalnum() or c in "-." else "-" for c in s.lower()).strip("-.")
    return out[:63] or "container"


def _k8s_ports(ports: tuple[int, ...], protocol: str) -> list[dict[str, Any]]:
    protos = ["TCP", "UDP"] if protocol == "any" else [protocol.upper()]
    if not ports:
        return [{"protocol": p} for p in protos]
    return [{"protocol": p, "port": port} for p in protos for port in ports]


def _peer(cidr: str) -> dict[str, Any]:
    return {"ipBlock": {"cidr": cidr}}


def network_policy(allow: Allowlist, target: PolicyTarget) -> dict[str, Any]:
    """The equivalent ``networking.k8s.io/v1`` NetworkPolicy (default deny in both directions,
    then the allowlist). ICMP has no NetworkPolicy protocol: an icmp rule becomes a peer-only rule
    (all protocols to that network), the closest superset."""
    egress: list[dict[str, Any]] = []
    for r in allow.egress:
        rule: dict[str, Any] = {"to": [_peer(r.cidr)]}
        if r.protocol != "icmp":
            rule["ports"] = _k8s_ports(r.ports, r.protocol)
        egress.append(rule)
    ingress: list[dict[str, Any]] = []
    for i in allow.ingress:
        irule: dict[str, Any] = {"from": [_peer(i.cidr)]}
        if i.protocol != "icmp":
            irule["ports"] = _k8s_ports(i.ports, i.protocol)
        ingress.append(irule)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"riskguard-{_dns_label(target.name)}"[:253],
            "namespace": target.namespace,
            "labels": {"app.kubernetes.io/managed-by": "riskguard"},
            "annotations": {"riskguard.io/allowlist-source": allow.source},
        },
        "spec": {
            "podSelector": {"matchLabels": dict(target.match_labels)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
