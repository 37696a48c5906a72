# SPDX-License-Identifier: Apache-2.0
"""The ``netns`` quarantine: a deny-all table in the container's netns, loopback kept; works with
any runtime. Refused when the container shares the host's network namespace (or when the host's
cannot be told), since a deny-all there would cut the host."""

from __future__ import annotations

from typing import Any

from agent.findings import ActionResult
from agent.hostfs import HostPaths
from agent.response.quarantine.common import (
    QuarantineError,
    TableMethod,
    failed,
    install_table,
    result,
    table_name,
)
from agent.runtime.model import Container
from agent.runtime.netns import NetnsError, container_netns, host_netns_inodes


def _iface(key: str, value: str) -> dict[str, Any]:
    return {"match": {"op": "==", "left": {"meta": {"key": key}}, "right": value}}


def apply_netns(paths: HostPaths, container: Container, dry_run: bool = False) -> ActionResult:
    """A deny-all ruleset (loopback kept) in the container's netns; refused on the host netns."""
    name = table_name(container, "ns")
    state: dict[str, Any] = {"method": "netns", "table": name}
    try:
        ns = container_netns(paths, container)
        inode = ns.stat().st_ino
        state["netns_inode"] = inode
        hosts = host_netns_inodes(paths)
        if not hosts:
            raise QuarantineError("cannot tell the host's network namespace: deny-all refused")
        if inode in hosts:
            raise QuarantineError(
                f"container {container.short_id} shares the host's network namespace: deny-all would cut the host"
            )
        if dry_run:
            return result(container, True, f"would add deny-all table inet {name} in netns {inode}", state, True)

        lo = [
            ("input", [_iface("iifname", "lo"), {"accept": None}]),
            ("output", [_iface("oifname", "lo"), {"accept": None}]),
        ]
        state["table_existed"], confirmed = install_table(ns, name, "drop", lo)
    except (OSError, QuarantineError, NetnsError) as exc:
        return failed(container, "netns", exc, state)
    return result(container, confirmed, f"deny-all table inet {name} in the container's netns (loopback kept)", state)


class NetnsMethod(TableMethod):
    """The ``netns`` quarantine method (see the module docstring)."""

    name = "netns"

    def apply(self, container: Container, dry_run: bool = False, reason: str = "") -> ActionResult:
        return apply_netns(self.paths, container, dry_run)
