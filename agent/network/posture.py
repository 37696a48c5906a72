# SPDX-License-Identifier: Apache-2.0
"""Network posture audit: least-privilege violations read from a container's inspect data.

Pure: ``audit(container, others, host_netns)`` returns findings (source ``netpolicy``); the
component reports each (container, detector) once.

| id | what | severity |
| --- | --- | --- |
| RG-0101 | host network namespace (``--network host`` or the host's netns inode) | high |
| RG-0102 | netns shared with another container (``container:`` mode or same inode) | medium |
| RG-0103 | privileged | critical |
| RG-0104 | NET_ADMIN (or ALL) added | high |
| RG-0105 | NET_RAW not dropped: medium when added explicitly, low as Docker's default | low/medium |
| RG-0106 | a published port bound on every interface (0.0.0.0 / ::) | medium |
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.findings import Finding, Severity, Source
from agent.runtime.model import Container


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    severity: Severity
    mitre: str
    title: str


CHECKS: dict[str, Check] = {
    c.id: c
    for c in (
        Check("RG-0101", Severity.HIGH, "T1611", "container shares the host network namespace"),
        Check("RG-0102", Severity.MEDIUM, "T1611", "container shares a network namespace with another container"),
        Check("RG-0103", Severity.CRITICAL, "T1611", "container is privileged"),
        Check("RG-0104", Severity.HIGH, "T1611", "container has CAP_NET_ADMIN"),
        Check("RG-0105", Severity.LOW, "T1040", "container keeps CAP_NET_RAW"),
        Check("RG-0106", Severity.MEDIUM, "T1133", "published port bound on every host interface"),
    )
}


def _caps(values: Iterable[Any]) -> set[str]:
    out = set()
    for v in values or ():
        s = str(v).upper()
        out.add(s[4:] if s.startswith("CAP_") else s)
    return out


def _finding(
    c: Container, check_id: str, evidence: Mapping[str, Any], severity: Severity | None = None, extra: str = ""
) -> Finding:
    check = CHECKS[check_id]
    return Finding(
        container=c.ref(),
        source=Source.NETPOLICY,
        detector_id=check.id,
        severity=severity if severity is not None else check.severity,
        summary=f"{check.title}{extra}: {c.name}",
        evidence=dict(evidence),
        mitre=check.mitre,
    )


def _published_on_all(ports: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Docker ``NetworkSettings.Ports``: {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}] | null}."""
    out = []
    if not isinstance(ports, Mapping):
        return out
    for spec, bindings in ports.items():
        if not isinstance(bindings, list):
            continue
        for b in bindings:
            if not isinstance(b, Mapping):
                continue
            host_ip = str(b.get("HostIp", ""))
            if host_ip in ("", "0.0.0.0", "::"):
                out.append(
                    {
                        "container_port": str(spec),
                        "host_ip": host_ip or "0.0.0.0",
                        "host_port": str(b.get("HostPort", "")),
                    }
                )
    return out


def audit(c: Container, others: Iterable[Container] = (), host_netns: Iterable[int] = ()) -> list[Finding]:
    """Posture findings for ``c``; ``others`` are the other discovered containers and
    ``host_netns`` the inodes of the host's network namespace (pid 1's, the agent's)."""
    d = c.details or {}
    mode = str(d.get("network_mode") or "")
    findings: list[Finding] = []
    host_inodes = set(host_netns)
    if mode == "host" or (c.netns_inode and c.netns_inode in host_inodes):
        findings.append(_finding(c, "RG-0101", {"network_mode": mode, "netns_inode": c.netns_inode}))
    else:
        sharing = sorted(o.name for o in others if o.id != c.id and c.netns_inode and o.netns_inode == c.netns_inode)
        if mode.startswith("container:") or sharing:
            findings.append(
                _finding(c, "RG-0102", {"network_mode": mode, "netns_inode": c.netns_inode, "shared_with": sharing})
            )
    if d.get("privileged"):
        findings.append(_finding(c, "RG-0103", {"privileged": True}))
    added = _caps(d.get("cap_add") or ())
    dropped = _caps(d.get("cap_drop") or ())
    if not d.get("privileged"):
        if "NET_ADMIN" in added or "ALL" in added:
            findings.append(_finding(c, "RG-0104", {"cap_add": sorted(added)}))
        if "NET_RAW" not in dropped and "ALL" not in dropped:
            explicit = "NET_RAW" in added or "ALL" in added
            findings.append(
                _finding(
                    c,
                    "RG-0105",
                    {"cap_add": sorted(added), "cap_drop": sorted(dropped), "explicit": explicit},
                    severity=Severity.MEDIUM if explicit else Severity.LOW,
                    extra=" (added explicitly)" if explicit else " (Docker default, not dropped)",
                )
            )
    published = _published_on_all(d.get("ports") or {})
    if published:
        findings.append(_finding(c, "RG-0106", {"published": published}))
    return findings
