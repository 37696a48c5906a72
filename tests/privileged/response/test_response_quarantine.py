# SPDX-License-Identifier: Apache-2.0
"""Network quarantine of real containers: a connection from inside the container to a listener
the test made, and one from that listener's container into the target, both cut while
quarantined and both back after release, for each method."""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.response import quarantine
from agent.response.engine import ResponseEngine, ResponseError
from tests.privileged.response.response_helpers import Probe, host_can_connect, read_in


def netns_tables(c: Any) -> str:
    c.reload()
    pid = c.attrs["State"]["Pid"]
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "nft", "list", "tables"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize(
    ("method", "version"),
    [("cgroup", "v2"), ("cgroup", "v1"), ("netns", "auto"), ("docker", "auto")],
)
def test_quarantine_cuts_both_directions_and_release_restores(
    method: str,
    version: str,
    bridge_probe: Callable[..., Probe],
    container_record: Any,
    response_ctx: Callable[..., AgentContext],
) -> None:
    probe = bridge_probe()
    assert probe.outbound() and probe.inbound()
    ctx = response_ctx(quarantine=method, quarantine_cgroup=version)
    record = container_record(probe.target)
    ctx.registry.upsert(record)
    networks_before = sorted(probe.target.attrs["NetworkSettings"]["Networks"])
    engine = ResponseEngine(ctx)
    rec = engine.isolate(probe.target.id, "quarantine")
    assert rec.phase == "confirmed", rec.detail
    assert rec.state["method"] == method
    engine.sweep()
    assert not probe.outbound(), "the container still reaches the listener"
    assert not probe.inbound(), "the listener still reaches the container"
    if method in ("cgroup", "netns"):
        assert rec.state["table"] in netns_tables(probe.target)
        assert quarantine.is_applied(ctx.paths, record.init_pid, rec.state) is True
    if version == "v1":
        classid = Path(rec.state["netcls_mount"], rec.state["netcls_cgroup"].lstrip("/"), "net_cls.classid")
        assert int(classid.read_text()) == rec.state["classid"]
    [released] = engine.release(probe.target.id)
    assert released.phase == "released", released.detail
    assert probe.outbound(), "the container cannot reach the listener after release"
    assert probe.inbound(), "the listener cannot reach the container after release"
    # Exactly what was there: no table of ours left, the same networks, net_cls as it was.
    assert quarantine.TABLE_PREFIX not in netns_tables(probe.target)
    probe.target.reload()
    assert sorted(probe.target.attrs["NetworkSettings"]["Networks"]) == networks_before
    if version == "v1":
        assert not classid.parent.exists()  # the cgroup we created is gone, processes moved back
        pid = probe.target.attrs["State"]["Pid"]
        assert "net_cls:/\n" in Path(f"/proc/{pid}/cgroup").read_text().replace("net_cls,", "")


def test_host_network_container_only_its_own_traffic_is_cut(
    run_container: Callable[..., Any],
    container_record: Any,
    response_ctx: Callable[..., AgentContext],
    loopback_listener: int,
) -> None:
    port = loopback_listener
    loop = (
        "i=0; while true; do i=$((i+1)); "
        f"if echo x | nc -w 1 127.0.0.1 {port} 2>/dev/null | grep -q hi; then r=ok; else r=fail; fi; "
        'echo "$i $r" > /tmp/r.new; mv /tmp/r.new /tmp/r; sleep 0.1; done'
    )
    c = run_container("sh", "-c", loop, network_mode="host")
    probe = Probe(server=None, target=c, server_ip="127.0.0.1")
    deadline = time.monotonic() + 10
    while probe.attempt()[1] != "ok":
        assert time.monotonic() < deadline, read_in(c, "/tmp/r")
        time.sleep(0.1)
    ctx = response_ctx(quarantine="netns")
    ctx.registry.upsert(container_record(c))
    engine = ResponseEngine(ctx)
    # Deny-all in the host's netns would cut the host: refused, nothing installed.
    rec = engine.isolate(c.id, "quarantine")
    assert rec.phase == "failed" and "host's network namespace" in rec.detail
    assert host_can_connect(port)
    # The cgroup match lands in the host netns and cuts only the container.
    rec = engine.isolate(c.id, "quarantine", method="cgroup")
    assert rec.phase == "confirmed" and rec.state["host_netns"] is True
    try:
        assert not probe.outbound()
        assert host_can_connect(port), "the host's own traffic was cut"
    finally:
        engine.release(c.id)
    assert probe.outbound()


def test_quarantine_refused_for_exempt_and_unknown_containers(
    bridge_probe: Callable[..., Probe], container_record: Any, response_ctx: Callable[..., AgentContext]
) -> None:
    probe = bridge_probe(labels={"riskguard.exempt": "true"})
    ctx = response_ctx()
    engine = ResponseEngine(ctx)
    with pytest.raises(ResponseError, match="no discovered container"):
        engine.isolate(probe.target.id, "quarantine")
    ctx.registry.upsert(container_record(probe.target))
    with pytest.raises(ResponseError, match="exempt"):
        engine.isolate(probe.target.id, "quarantine")
    assert engine.records.actions() == []
    assert probe.outbound() and probe.inbound()
    # Dry run names the table it would add and adds nothing.
    dry = quarantine.apply(HostPaths(), container_record(probe.target), "netns", dry_run=True)
    assert dry.ok and dry.dry_run and quarantine.TABLE_PREFIX not in netns_tables(probe.target)


@pytest.fixture
def user_network(docker_client: Any) -> Any:
    import docker

    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.213.37.0/24")])
    net = docker_client.networks.create(f"rgtest-q-{uuid.uuid4().hex[:6]}", driver="bridge", ipam=ipam)
    yield net
    net.reload()
    for c in net.containers:
        with contextlib.suppress(Exception):
            net.disconnect(c, force=True)
    net.remove()


def test_docker_disconnect_restores_static_address_and_aliases(
    run_container: Callable[..., Any],
    user_network: Any,
    container_record: Any,
    response_ctx: Callable[..., AgentContext],
) -> None:
    c = run_container("sleep", "600", network_mode="bridge")
    user_network.connect(c, ipv4_address="10.213.37.42", aliases=["payments-db"])
    c.reload()
    before = c.attrs["NetworkSettings"]["Networks"]
    ctx = response_ctx(quarantine="docker")
    ctx.registry.upsert(container_record(c))
    engine = ResponseEngine(ctx)
    rec = engine.isolate(c.id, "quarantine")
    assert rec.phase == "confirmed"
    c.reload()
    assert not c.attrs["NetworkSettings"]["Networks"]
    recorded = {n["name"]: n for n in rec.state["networks"]}
    assert recorded[user_network.name]["ipv4_address"] == "10.213.37.42"
    assert "payments-db" in recorded[user_network.name]["aliases"]
    engine.release(c.id)
    c.reload()
    after = c.attrs["NetworkSettings"]["Networks"]
    assert sorted(after) == sorted(before)
    mine = after[user_network.name]
    assert mine["IPAddress"] == "10.213.37.42"
    assert (mine.get("IPAMConfig") or {}).get("IPv4Address") == "10.213.37.42"
    assert "payments-db" in (mine.get("Aliases") or [])
