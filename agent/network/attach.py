# SPDX-License-Identifier: Apache-2.0
"""Attaching a managed container to the network and detaching it, with the configured backend.

``pyroute2``: a veth pair on the agent's bridge with an address from the pool (``wiring``);
``cni``: the configured CNI chain (ADD, CHECK on a restart with the cached result, DEL). What a
backend did is returned as the container's ``managed`` record, which is all ``detach`` needs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from agent.hostfs import HostPaths
from agent.network import wiring
from agent.network.cni import CniError, CniRunner, build_conflist
from agent.runtime.model import Container
from agent.settings.network import NetworkSettings

log = structlog.get_logger("agent.network")


class Attacher:
    """Wires and unwires managed containers (pyroute2 veth or a CNI chain)."""

    def __init__(self, settings: NetworkSettings, paths: HostPaths, ipam: wiring.Ipam, pool: wiring.Pool) -> None:
        self.settings = settings
        self.paths = paths
        self.ipam = ipam
        self.pool = pool

    def cni_runner(self) -> CniRunner:
        """A runner of the configured CNI chain."""
        cni = self.settings.cni
        bin_dir = Path(cni.bin_dir) if cni.bin_dir else self.paths.cni_bin
        conflist = build_conflist(cni, self.settings.subnet, self.paths.state / "cni" / "networks", self.settings.mtu)
        return CniRunner(conflist, [bin_dir], timeout=cni.timeout_seconds)

    def attach(self, c: Container, ns: Path, previous: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Wire ``c`` (netns ``ns``); returns its ``managed`` record and whether it was wired now
        (False: a CNI container whose cached result still CHECKs is kept as it was)."""
        t0 = time.perf_counter()
        if self.settings.backend == "cni":
            runner = self.cni_runner()
            cached = previous.get("result") if previous.get("backend") == "cni" else None
            if cached:
                try:
                    runner.check(c.id, str(ns), cached)
                    log.info("container_rewired", container_id=c.short_id, backend="cni", check="ok")
                    return dict(previous), False
                except CniError as exc:
                    log.warning("cni_check_failed", container_id=c.short_id, error=str(exc))
                    runner.delete(c.id, str(ns), cached)
            res = runner.add(c.id, str(ns))
            managed = {
                "backend": "cni",
                "ifname": "eth0",
                "address": res.address,
                "prefixlen": res.prefixlen,
                "gateway": res.gateway,
                "bridge": self.settings.cni.bridge,
                "host_ifname": res.host_interface(self.settings.cni.bridge),
                "mac": res.container_mac("eth0"),
                "result": dict(res.raw),
            }
        else:
            addr = self.ipam.allocate(c.id)
            try:
                w = wiring.wire(ns, c.init_pid, c.id, self.settings.bridge, self.pool, addr, self.settings.mtu)
            except Exception:
                self.ipam.release(c.id)
                raise
            managed = w.to_dict()
        managed["wired_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        log.info(
            "container_wired",
            container_id=c.short_id,
            backend=managed["backend"],
            address=managed["address"],
            host_ifname=managed.get("host_ifname", ""),
            ms=managed["wired_ms"],
        )
        return managed, True

    def detach(self, cid: str, ns: Path | None, managed: Mapping[str, Any]) -> list[str]:
        """Undo ``attach`` as ``managed`` records it (CNI DEL, or the veth removed); returns the
        CNI plugins' errors."""
        if managed.get("backend") == "cni":
            return list(self.cni_runner().delete(cid, str(ns) if ns else "", managed.get("result")))
        if managed:
            wiring.unwire(cid)
        return []
