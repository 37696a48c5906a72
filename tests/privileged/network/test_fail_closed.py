# SPDX-License-Identifier: Apache-2.0
"""Fail-closed wiring: a managed container's allowlist is in its netns before its eth0 comes up,
so a client that hammers a forbidden port from its very first instant never gets through, while
the allowed port works once the container is wired."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.network import nft
from tests.privileged.network.test_netpolicy_live import MANAGED, Lab, _start, _wired, lab  # noqa: F401
from tests.support import need, wait_for

# From the first instant: six loops on the forbidden 9090 and one on the allowed 8080, without
# pause (before eth0 exists each attempt fails at once with "network unreachable").
HAMMER = (
    "hammer() {{ i=0; while [ $i -lt 3000 ]; do "
    "echo forbidden-$1-$i | nc -w 1 {peer} 9090 && echo through >> /tmp/through; i=$((i+1)); done; }}; "
    "for k in 1 2 3 4 5 6; do hammer $k & done; "
    "i=0; while [ $i -lt 3000 ]; do echo allowed-$i | nc -w 1 {peer} 8080; i=$((i+1)); done; sleep 600"
)


@pytest.mark.parametrize("backend", ["pyroute2", "cni"])
def test_forbidden_port_hammered_from_the_first_instant_never_gets_through(
    backend: str,
    lab: Lab,  # noqa: F811
    make_ctx: Any,
    run_container: Any,
    container_record: Any,
) -> None:
    extra: dict[str, Any] = {}
    if backend == "cni":
        for plugin in ("bridge", "host-local"):
            need(Path("/usr/lib/cni", plugin).exists(), f"This test needs the CNI plugin {plugin}.")
        # The bridge plugin attaches to the lab's bridge, where the peer netns and its listeners are.
        extra = {
            "backend": "cni",
            "cni": {"bridge": lab.bridge, "network_name": f"rg{lab.bridge}", "plugins": ["bridge"]},
        }
    settings = lab.settings(
        mode="enforce",
        allowlists=[{"label": "rgtest.app=hammer", "egress": [{"cidr": lab.peer_addr, "ports": [8080]}]}],
        **extra,
    )
    ctx = make_ctx(AgentConfig(network=settings))
    comp = _start(ctx)
    try:
        for _ in range(3):  # three containers: the race had a 6-12 ms window per start
            seen = len(lab.listeners[8080].received)
            c = run_container("sh", "-c", HAMMER.format(peer=lab.peer_addr), labels={**MANAGED, "rgtest.app": "hammer"})
            rec = _wired(ctx, comp, container_record(c))
            t = comp.tracked[rec.id]
            assert t.managed.get("address") and t.managed["backend"] == backend and t.rules == "enforce", t.rules
            netns = Path(f"/proc/{rec.init_pid}/ns/net")
            table = nft.read(netns)
            assert table is not None and table["rules"] > 0
            # The allowed port gets through as soon as the container is wired: the network works.
            wait_for(
                lambda n=seen: any(d.startswith(b"allowed-") for d in lab.listeners[8080].received[n:]) or None,
                15,
                0.1,
                "a connection on the allowed port",
            )
            time.sleep(1.0)  # keep hammering a while after wiring
            assert lab.listeners[9090].accepted == 0, lab.listeners[9090].received[:3]
            assert c.exec_run(["sh", "-c", "test ! -e /tmp/through"]).exit_code == 0
            counters = (nft.read(netns) or {}).get("counters", {})
            assert counters["denied_out"]["packets"] >= 1  # the forbidden SYNs met the rules
            ctx.registry.remove(rec.id)
            assert comp.drain(30)
            c.remove(force=True)
    finally:
        comp.stop()
