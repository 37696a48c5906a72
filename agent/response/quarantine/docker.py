# SPDX-License-Identifier: Apache-2.0
"""The ``docker`` quarantine: ``docker network disconnect`` from every network, recording aliases,
static IPs and links so that release reconnects exactly as it was."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from agent.findings import ActionResult
from agent.response.quarantine.common import MethodDeps, QuarantineError, result
from agent.runtime.docker import docker_client, docker_sdk
from agent.runtime.model import Container

log = structlog.get_logger("agent.response")


def apply_docker(docker_url: str, container: Container, dry_run: bool = False) -> ActionResult:
    """Disconnect the container from every Docker network of the dockerd at ``docker_url``
    (``runtime.docker_url``), recording how to reconnect it."""
    state: dict[str, Any] = {"method": "docker", "networks": []}
    try:
        client = docker_client(docker_url, timeout=30)
        try:
            dc = client.containers.get(container.id)
            mode = str((dc.attrs.get("HostConfig") or {}).get("NetworkMode", ""))
            if mode == "host" or mode.startswith("container:") or mode == "none":
                raise QuarantineError(f"network mode {mode!r} cannot be disconnected")
            nets: Mapping[str, Any] = (dc.attrs.get("NetworkSettings") or {}).get("Networks") or {}
            for net_name, info in nets.items():
                ipam = (info or {}).get("IPAMConfig") or {}
                aliases = [a for a in (info.get("Aliases") or []) if a not in (container.short_id, container.id)]
                state["networks"].append(
                    {
                        "name": net_name,
                        "id": info.get("NetworkID", ""),
                        "aliases": aliases,
                        "links": list(info.get("Links") or []),
                        # Only statically configured addresses are re-requested: Docker refuses
                        # user-specified IPs on its default bridge.
                        "ipv4_address": ipam.get("IPv4Address") or "",
                        "ipv6_address": ipam.get("IPv6Address") or "",
                        "ip_address": info.get("IPAddress", ""),
                        "mac_address": info.get("MacAddress", ""),
                    }
                )
            if not state["networks"]:
                raise QuarantineError("the container is on no Docker network")
            if dry_run:
                names = ", ".join(n["name"] for n in state["networks"])
                return result(container, True, f"would disconnect from {names}", state, dry_run=True)
            for net in state["networks"]:
                client.networks.get(net["id"] or net["name"]).disconnect(container.id, force=True)
            dc.reload()
            left = sorted(((dc.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())
        finally:
            client.close()
    except QuarantineError as exc:
        return result(container, False, str(exc), state)
    except Exception as exc:  # docker.errors.* and socket errors
        log.error("container_quarantine_failed", container_id=container.id, method="docker", error=repr(exc))
        return result(container, False, f"docker: {exc}", state)
    return result(container, not left, "disconnected from " + ", ".join(n["name"] for n in state["networks"]), state)


def release_docker(docker_url: str, container_id: str, state: Mapping[str, Any]) -> str:
    """Reconnect the container to every network ``apply_docker`` recorded, as it was."""
    docker = docker_sdk()
    client = docker_client(docker_url, timeout=30)
    try:
        try:
            dc = client.containers.get(container_id)
        except docker.errors.NotFound:
            return "the container is gone: nothing to reconnect"
        present = set(((dc.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())
        done = []
        for net in state.get("networks", []):
            if net["name"] in present:
                continue
            kwargs: dict[str, Any] = {}
            if net.get("aliases"):
                kwargs["aliases"] = net["aliases"]
            if net.get("links"):
                kwargs["links"] = net["links"]
            if net.get("ipv4_address"):
                kwargs["ipv4_address"] = net["ipv4_address"]
            if net.get("ipv6_address"):
                kwargs["ipv6_address"] = net["ipv6_address"]
            client.networks.get(net["id"] or net["name"]).connect(container_id, **kwargs)
            done.append(net["name"])
        dc.reload()
        now = set(((dc.attrs.get("NetworkSettings") or {}).get("Networks") or {}).keys())
        missing = [n["name"] for n in state.get("networks", []) if n["name"] not in now]
        if missing:
            raise QuarantineError(f"not reconnected to {', '.join(missing)}")
        return "reconnected to " + ", ".join(done) if done else "already connected"
    finally:
        client.close()


class DockerMethod:
    """The ``docker`` quarantine method (see the module docstring)."""

    name = "docker"

    def __init__(self, deps: MethodDeps) -> None:
        self.docker_url = deps.docker_url

    def apply(self, container: Container, dry_run: bool = False, reason: str = "") -> ActionResult:
        return apply_docker(self.docker_url, container, dry_run)

    def release(self, container_id: str, init_pid: int, state: Mapping[str, Any]) -> str:
        return release_docker(self.docker_url, container_id, state)

    def is_applied(self, init_pid: int, state: Mapping[str, Any]) -> bool | None:
        return None  # not checked: reading it back costs a Docker API call per sweep

    def reconcile(self, container: Container, state: Mapping[str, Any]) -> int:
        return 0
