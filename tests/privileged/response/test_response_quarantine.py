# SPDX-License-Identifier: Apache-2.0
"""Network quarantine of real containers: a connection from inside the container to a listener
the test made, and one from that listener's container into the target, both cut while
quarantined and both back after release, for each method."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
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


POD_CHILD = Path(__file__).with_name("pod_quarantine_child.py")
REPO = Path(__file__).resolve().parents[3]


def child_result(child: subprocess.Popen[str], stderr: Path) -> Any:
    """The next ``RESULT <json>`` line of the pod child (its log lines are skipped)."""
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    raise AssertionError(f"the pod child ended: {stderr.read_text()[-3000:]}")


@pytest.fixture
def pod_cgroup() -> Iterator[str]:
    """A v2 cgroup name for the pod child's own cgroup namespace; removed after the child exits."""
    name = f"rgtest-pod-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(FileNotFoundError):
        Path("/sys/fs/cgroup/unified", name).rmdir()


def test_cgroup_v2_quarantine_from_a_pods_mount_namespace(
    user_network: Any, bridge_probe: Callable[..., Probe], tmp_path: Path, pod_cgroup: str
) -> None:
    """The DaemonSet's view: the host's /proc and /sys under /host, the agent's own
    /sys/fs/cgroup not the host's, and its own cgroup namespace (where /proc/<pid>/cgroup reads
    ``/../docker/<id>``). nft looks ``socket cgroupv2`` paths up below its own /sys/fs/cgroup and
    the kernel reads the level from the adder's namespace; the quarantine still cuts the
    container, and only it, and release restores it."""
    probe = bridge_probe(network=user_network.name)
    twin = bridge_probe(network=user_network.name)  # a second container the quarantine must leave alone
    assert probe.outbound() and probe.inbound() and twin.outbound() and twin.inbound()
    probe.target.reload()
    inspect = tmp_path / "inspect.json"
    inspect.write_text(json.dumps(probe.target.attrs))
    host, stderr = tmp_path / "host", (tmp_path / "child.err").open("w")
    args = [str(POD_CHILD), str(host), str(inspect), str(tmp_path / "state"), pod_cgroup]
    child = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        applied = child_result(child, tmp_path / "child.err")
        assert applied["own_view"] == [], "the child's /sys/fs/cgroup should be an empty tmpfs"
        assert applied["own_cgroup"] == ["0::/"], "the child should be at the root of its own cgroup namespace"
        # Discovery from the child's cgroup namespace still gives the host's cgroup and its id.
        cg = f"/docker/{probe.target.id}"
        assert applied["record"] == [cg, Path("/sys/fs/cgroup/unified" + cg).stat().st_ino]
        assert applied["phase"] == "confirmed", applied["detail"]
        assert applied["state"]["nft_cgroup2"] == str(host / "sys/fs/cgroup/unified")
        assert applied["state"]["table"] in netns_tables(probe.target)
        assert not probe.outbound(), "the container still reaches the listener"
        assert not probe.inbound(), "the listener still reaches the container"
        assert twin.outbound() and twin.inbound(), "the other container was cut too"
        child.stdin.write("release\n")
        child.stdin.flush()
        released = child_result(child, tmp_path / "child.err")
        assert released["phase"] == "released", released["detail"]
    finally:
        child.stdin.close()
        child.wait(20)
        stderr.close()
    assert probe.outbound() and probe.inbound(), "release did not restore the container's network"
    assert quarantine.TABLE_PREFIX not in netns_tables(probe.target)
    # The child's mounts (and the per-thread one nft ran with) stayed in its namespace.
    assert str(host) not in Path("/proc/self/mountinfo").read_text()
    assert Path("/sys/fs/cgroup/unified/cgroup.procs").exists()
