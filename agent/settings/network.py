# SPDX-License-Identifier: Apache-2.0
"""Config section ``network``: posture audit, managed networking and least-privilege rules."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from agent.settings.base import Section


def _norm_cidr(v: str) -> str:
    return str(ipaddress.ip_network(v, strict=False))


def _norm_ports(v: tuple[int, ...]) -> tuple[int, ...]:
    if any(not 0 < p < 65536 for p in v):
        raise ValueError("ports are 1..65535")
    return tuple(sorted(set(v)))


class EgressRule(Section):
    """Traffic a container may send: a destination network, ports (empty: any) and a protocol."""

    # Destination network (an address alone means /32 or /128; 0.0.0.0/0 means anywhere).
    cidr: str = "0.0.0.0/0"
    # Destination ports; empty: any port.
    ports: tuple[int, ...] = ()
    # tcp | udp | icmp (icmp and icmpv6) | any.
    protocol: Literal["tcp", "udp", "icmp", "any"] = "tcp"

    _cidr = field_validator("cidr")(_norm_cidr)
    _ports = field_validator("ports")(_norm_ports)


class IngressRule(Section):
    """Traffic a container may accept: ports (empty: any), protocol, and the sources allowed."""

    # Local ports the container may accept connections on; empty: any port.
    ports: tuple[int, ...] = ()
    # tcp | udp | icmp (icmp and icmpv6) | any.
    protocol: Literal["tcp", "udp", "icmp", "any"] = "tcp"
    # Source network allowed (0.0.0.0/0: anywhere).
    cidr: str = "0.0.0.0/0"

    _cidr = field_validator("cidr")(_norm_cidr)
    _ports = field_validator("ports")(_norm_ports)


class AllowlistSettings(Section):
    """One declared allowlist, selected by image (glob) and/or a label (``key=value`` or ``key``).

    The first entry whose selectors all match a container is its allowlist.
    """

    # Image reference glob ("busybox" also matches "busybox:latest"); "" matches any image.
    image: str = ""
    # Label selector "key=value" or "key"; "" matches any labels.
    label: str = ""
    # Traffic the container may send (everything else is denied).
    egress: tuple[EgressRule, ...] = ()
    # Traffic the container may accept (everything else is denied).
    ingress: tuple[IngressRule, ...] = ()
    # Overrides ``network.mode`` for the containers this entry selects.
    mode: Literal["observe", "enforce", ""] = ""

    @model_validator(mode="after")
    def _selector(self) -> AllowlistSettings:
        if not self.image and not self.label:
            raise ValueError("an allowlist needs an image or a label selector")
        return self


class CniSettings(Section):
    """The CNI backend: a conflist chain of plugins from containernetworking-plugins."""

    # Directory of the plugin binaries ("": the host's ``cni_bin`` path, /usr/lib/cni).
    bin_dir: str = ""
    # The CNI network name (host-local keeps its leases under <state>/cni/networks/<name>).
    network_name: str = "riskguard"
    # The bridge the bridge plugin creates and attaches containers to.
    bridge: str = "rgcni0"
    # Chain, in order; DEL runs it in reverse. Known: bridge, host-local (as bridge's IPAM),
    # firewall, bandwidth, tuning, portmap.
    plugins: tuple[str, ...] = ("bridge", "firewall", "bandwidth")
    # IPAM plugin of the bridge plugin, allocating from network.subnet.
    ipam: Literal["host-local"] = "host-local"
    # Ingress rate limit of the bandwidth plugin in bits/s (0: none, the plugin passes through).
    ingress_rate: int = Field(default=0, ge=0)
    # Burst of ingress_rate in bits (0: equal to the rate).
    ingress_burst: int = Field(default=0, ge=0)
    # Egress rate limit of the bandwidth plugin in bits/s (0: none).
    egress_rate: int = Field(default=0, ge=0)
    # Burst of egress_rate in bits (0: equal to the rate).
    egress_burst: int = Field(default=0, ge=0)
    # Seconds one plugin call may take.
    timeout_seconds: float = Field(default=20.0, gt=0)


class LearningSettings(Section):
    """Allowlists learned from observed flows (nft dynamic sets in the netns + NetConnect events)."""

    # Learn an allowlist for containers that have no declared one.
    enabled: bool = True
    # Learning period after a container starts; null: ``behavior.learning_seconds``.
    seconds: float | None = Field(default=None, ge=0)
    # True: the learned allowlist is applied when learning ends; false: stored as a proposal.
    apply: bool = False
    # Learn (and later apply) for managed containers only, or for every container with its own
    # network namespace.
    managed_only: bool = True


class SelinuxSettings(Section):
    """udica-style CIL policies per container."""

    # Write a CIL policy per container.
    enabled: bool = True
    # Where policies are written ("": ``<state dir>/selinux``).
    directory: str = ""
    # Directory of the shipped templates ("": the package's config/selinux).
    templates: str = ""
    # Compile-check every generated policy with secilc against the templates.
    compile_check: bool = True
    # Load with ``semodule -i`` when SELinux is enabled on the host.
    load: bool = True


class NetworkSettings(Section):
    """Least-privilege networking: posture audit, managed wiring, nftables allowlists, SELinux."""

    enabled: bool = True
    # Posture audit of every discovered container (findings RG-0101…RG-0106).
    audit: bool = True
    # observe: rules count what they would deny; enforce: they drop it.
    mode: Literal["observe", "enforce"] = "observe"
    # Containers started with ``--network none --label <managed_label>=<managed_value>`` are
    # wired by the agent.
    managed_label: str = "riskguard.network"
    # The value of managed_label that asks for managed networking.
    managed_value: str = "managed"
    # pyroute2 (veth on the agent's bridge) or cni (the plugin chain in network.cni).
    backend: Literal["pyroute2", "cni"] = "pyroute2"
    # pyroute2 backend: the agent's bridge (created when the first managed container starts).
    bridge: str = "rg0"
    # Subnet of managed containers (both backends); the bridge takes the first address.
    subnet: str = "10.213.0.0/24"
    # First address handed to containers ("": the second address of the subnet).
    pool_start: str = ""
    # Last address handed to containers ("": the last before broadcast).
    pool_end: str = ""
    # MTU of the bridge and veths.
    mtu: int = Field(default=1500, ge=576, le=65535)
    cni: CniSettings = CniSettings()
    # Declared allowlists; the first entry whose selectors all match a container applies, e.g.
    # {label: app=web, egress: [{cidr: 10.213.0.0/24, ports: [5432]}], ingress: [{ports: [8080]}]}.
    allowlists: tuple[AllowlistSettings, ...] = ()
    learning: LearningSettings = LearningSettings()
    selinux: SelinuxSettings = SelinuxSettings()
    # How often denied-packet counters are read from the netns and published.
    counters_interval_seconds: float = Field(default=10.0, gt=0)

    @field_validator("bridge")
    @classmethod
    def _ifname(cls, v: str) -> str:
        if not v or len(v) > 15 or "/" in v or " " in v:
            raise ValueError("an interface name of 1..15 characters without '/' or spaces")
        return v

    @model_validator(mode="after")
    def _pool(self) -> NetworkSettings:
        net = ipaddress.ip_network(self.subnet, strict=False)
        if net.version != 4 or net.prefixlen > 29:
            raise ValueError("subnet must be IPv4 with a prefix of /29 or shorter")
        for bound in (self.pool_start, self.pool_end):
            if bound and ipaddress.ip_address(bound) not in net:
                raise ValueError(f"pool bound {bound} is outside {net}")
        return self
