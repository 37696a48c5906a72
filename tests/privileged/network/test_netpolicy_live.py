# SPDX-License-Identifier: Apache-2.0
"""netpolicy against real containers, netns, veth, nftables, CNI plugins and secilc."""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import Event, NetConnect, PacketsDenied
from agent.findings import Finding
from agent.network import nft, wiring
from agent.network.cni import CniError, CniRunner, build_conflist
from agent.network.component import NetpolicyComponent, build
from agent.pipeline import Bus
from agent.runtime.model import Container, ContainerRegistry
from agent.runtime.netns import in_netns
from agent.settings.network import NetworkSettings
from agent.store import Store
from agent.wiring import attach
from tests.support import need, need_root, need_tool, wait_for

# This run's own managed label (``network.managed_label``): any other agent on the host (an e2e
# or CI run's, default label ``riskguard.network``) would also wire these containers, on its own
# bridge and with its own (observe, learning) rules replacing the test's table.
MANAGED_LABEL = f"rgtest.network.{uuid.uuid4().hex[:8]}"
MANAGED = {MANAGED_LABEL: "managed"}


class Listener:
    """A TCP listener in a netns the test made; records what each connection sent."""

    def __init__(self, netns: Path, address: str, port: int) -> None:
        self.sock: socket.socket = in_netns(netns, lambda: socket.create_server((address, port)))
        self.sock.settimeout(0.2)
        self.received: list[bytes] = []
        self.accepted = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.settimeout(2)
            data = b""
            try:
                while chunk := conn.recv(4096):
                    data += chunk
            except OSError:
                pass
            conn.close()
            self.received.append(data)

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


@dataclass
class Lab:
    bridge: str
    subnet: str
    peer_ns: str
    peer_addr: str
    listeners: dict[int, Listener] = field(default_factory=dict)

    @property
    def peer_path(self) -> Path:
        return Path("/run/netns") / self.peer_ns

    def settings(self, **kw: Any) -> NetworkSettings:
        net = ipaddress.ip_network(self.subnet)
        base: dict[str, Any] = {
            "bridge": self.bridge,
            "subnet": self.subnet,
            "pool_end": str(net.network_address + 99),
            "counters_interval_seconds": 60,
            "managed_label": MANAGED_LABEL,
        }
        base.update(kw)
        return NetworkSettings.model_validate(base)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A bridge the agent will own, and a peer netns on it with listeners on 8080 and 9090."""
    need_root()
    need_tool("ip")
    tag = uuid.uuid4().hex[:6]
    third = random.randint(100, 250)
    lab = Lab(bridge=f"rgt{tag}", subnet=f"10.213.{third}.0/24", peer_ns=f"rgtns{tag}", peer_addr=f"10.213.{third}.250")
    pool = wiring.Pool.of(lab.subnet)
    try:
        wiring.ensure_bridge(lab.bridge, pool)
        _ip("netns", "add", lab.peer_ns)
        _ip("link", "add", f"rgtp{tag}", "type", "veth", "peer", "name", f"rgtq{tag}")
        _ip("link", "set", f"rgtq{tag}", "netns", lab.peer_ns)
        _ip("link", "set", f"rgtp{tag}", "master", lab.bridge, "up")
        _ip("-n", lab.peer_ns, "link", "set", "lo", "up")
        _ip("-n", lab.peer_ns, "addr", "add", f"{lab.peer_addr}/24", "dev", f"rgtq{tag}")
        _ip("-n", lab.peer_ns, "link", "set", f"rgtq{tag}", "up")
        for port in (8080, 9090):
            lab.listeners[port] = Listener(lab.peer_path, lab.peer_addr, port)
        yield lab
    finally:
        for listener in lab.listeners.values():
            listener.close()
        subprocess.run(["ip", "netns", "del", lab.peer_ns], capture_output=True)
        subprocess.run(["ip", "link", "del", f"rgtp{tag}"], capture_output=True)
        wiring.delete_bridge(lab.bridge)


@pytest.fixture
def collect() -> Callable[[AgentContext], tuple[list[Event], list[Finding]]]:
    def _collect(ctx: AgentContext) -> tuple[list[Event], list[Finding]]:
        events: list[Event] = []
        findings: list[Finding] = []
        ctx.events.subscribe(events.append)
        ctx.findings.subscribe(findings.append)
        ctx.events.start()
        ctx.findings.start()
        return events, findings

    return _collect


def _start(ctx: AgentContext) -> NetpolicyComponent:
    comp = build(ctx)
    assert comp is not None
    attach(ctx, comp)
    return comp


def _wired(ctx: AgentContext, comp: NetpolicyComponent, rec: Container) -> Container:
    """Register a managed container with the component and wait until it is wired."""
    ctx.registry.upsert(rec)
    assert comp.drain(30)
    return rec


def _exec(container: Any, script: str) -> int:
    res = container.exec_run(["sh", "-c", script])
    return int(res.exit_code)


def _connect_from(netns: Path, address: str, port: int, timeout: float = 1.5) -> bool:
    def run() -> bool:
        try:
            with socket.create_connection((address, port), timeout=timeout) as s:
                s.sendall(b"probe")
            return True
        except OSError:
            return False

    return in_netns(netns, run, timeout=timeout + 5)


def _links_in(netns: Path) -> dict[str, list[str]]:
    def run() -> dict[str, list[str]]:
        with IPRoute() as ipr:
            out = {}
            for link in ipr.get_links():
                name = link.get("ifname")
                out[name] = [a.get("address") for a in ipr.get_addr(index=link["index"], family=2)]
            return out

    return in_netns(netns, run)


def _host_link(name: str) -> bool:
    with IPRoute() as ipr:
        return bool(ipr.link_lookup(ifname=name))


def test_managed_container_reaches_only_its_allowlist(
    lab: Lab, make_ctx: Any, run_container: Any, container_record: Any, collect: Any
) -> None:
    settings = lab.settings(
        mode="enforce",
        allowlists=[
            {
                "label": "rgtest.app=web",
                "egress": [{"cidr": lab.peer_addr, "ports": [8080]}],
                "ingress": [{"ports": [7070]}],
            }
        ],
    )
    ctx = make_ctx(AgentConfig(network=settings))
    events, _findings = collect(ctx)
    comp = _start(ctx)
    try:
        c = run_container(
            "sh",
            "-c",
            "nc -l -p 7070 >/tmp/in7070 & nc -l -p 6060 & sleep 600",
            labels={**MANAGED, "rgtest.app": "web"},
        )
        rec = _wired(ctx, comp, container_record(c))
        t = comp.tracked[rec.id]
        addr = t.managed["address"]
        assert ipaddress.ip_address(addr) in ipaddress.ip_network(lab.subnet)
        netns = Path(f"/proc/{rec.init_pid}/ns/net")
        links = _links_in(netns)
        assert links["eth0"] == [addr], links
        host_if = wiring.veth_names(rec.id)[0]
        assert _host_link(host_if)
        assert t.rules == "enforce"

        # egress: 8080 on the peer is allowed (busybox nc inside the container), 9090 is not
        assert _exec(c, f"echo hello | nc -w 3 {lab.peer_addr} 8080") == 0
        wait_for(lambda: b"hello\n" in lab.listeners[8080].received, 5, what="data on the allowed port")
        assert _exec(c, f"echo nope | nc -w 2 {lab.peer_addr} 9090") != 0
        assert lab.listeners[9090].accepted == 0
        # ingress: the peer may connect to 7070, not to 6060
        assert _connect_from(lab.peer_path, addr, 7070)
        assert not _connect_from(lab.peer_path, addr, 6060)

        desc = comp.describe({"id": rec.name})
        assert desc["counters"]["denied_out"]["packets"] >= 1
        assert desc["counters"]["denied_in"]["packets"] >= 1
        assert 'counter name "denied_out" drop' in desc["rules"]
        assert desc["allowlist"]["egress"][0]["cidr"] == f"{lab.peer_addr}/32"
        # the deltas were published for behaviour analysis
        assert ctx.events.drain(5)
        denied = [e for e in events if isinstance(e, PacketsDenied)]
        assert denied and denied[-1].container is not None and denied[-1].container.id == rec.id
        assert sum(e.packets for e in denied) == desc["denied_packets"] >= 2
        assert comp.status()["denied_packets"] >= 2

        # the container stops: rules, wiring and address go (checked while its netns still
        # exists, as when the runtime reports the stop before the last process is reaped)
        ctx.registry.remove(rec.id)
        assert comp.drain(30)
        assert nft.read(netns) is None
        assert "eth0" not in _links_in(netns)
        assert not _host_link(host_if)
        assert wiring.Ipam(ctx.store, comp.pool).lookup(rec.id) is None
    finally:
        comp.stop()


def test_rules_survive_agent_restart_and_go_with_the_container(
    lab: Lab, make_ctx: Any, run_container: Any, container_record: Any
) -> None:
    settings = lab.settings(
        mode="enforce",
        allowlists=[{"image": "riskguard-test/busybox", "egress": [{"cidr": lab.peer_addr, "ports": [9090]}]}],
    )
    ctx = make_ctx(AgentConfig(network=settings))
    comp = _start(ctx)
    c = run_container("sleep", "600", labels=MANAGED)
    rec = _wired(ctx, comp, container_record(c))
    addr = comp.tracked[rec.id].managed["address"]
    netns = Path(f"/proc/{rec.init_pid}/ns/net")
    assert _connect_from(netns, lab.peer_addr, 9090)
    assert not _connect_from(netns, lab.peer_addr, 8080)
    comp.stop()  # the agent stops: rules and wiring stay

    # an operator flushes the table while the agent is down; the new agent puts it back
    in_netns(netns, lambda: nft.nft_json(nft.delete_commands()))
    ctx2 = AgentContext(
        config=ctx.config,
        paths=ctx.paths,
        store=Store(ctx.store.path),
        registry=ContainerRegistry(),
        events=Bus[Event]("events"),
        findings=Bus[Finding]("findings"),
    )
    ctx2.registry.upsert(container_record(c))
    comp2 = _start(ctx2)
    try:
        assert comp2.drain(30)
        t = comp2.tracked[rec.id]
        assert t.managed["address"] == addr  # same address from the store
        table = nft.read(netns)
        assert table is not None and table["rules"] > 0
        assert _links_in(netns)["eth0"] == [addr]
        assert _connect_from(netns, lab.peer_addr, 9090)
        assert not _connect_from(netns, lab.peer_addr, 8080)
        # applying twice is idempotent (one table, same rule count)
        comp2.handle_added(container_record(c))
        assert nft.read(netns)["rules"] == table["rules"]  # type: ignore[index]

        c.remove(force=True)
        ctx2.registry.remove(rec.id)
        assert comp2.drain(30)
        assert not _host_link(wiring.veth_names(rec.id)[0])
        assert wiring.Ipam(ctx2.store, comp2.pool).lookup(rec.id) is None
        assert rec.id not in comp2.tracked
    finally:
        comp2.stop()
        ctx2.store.close()


def test_allowlist_learned_from_a_real_flow(lab: Lab, make_ctx: Any, run_container: Any, container_record: Any) -> None:
    settings = lab.settings(mode="enforce", learning={"seconds": 300, "apply": True})
    ctx = make_ctx(AgentConfig(network=settings))
    comp = _start(ctx)
    try:
        c = run_container("sleep", "600", labels=MANAGED)
        rec = _wired(ctx, comp, container_record(c))
        assert comp.tracked[rec.id].rules == "learning"
        # during learning nothing is dropped: the flow to 8080 happens for real
        assert _exec(c, f"echo learn | nc -w 3 {lab.peer_addr} 8080") == 0
        # a connect seen by the eBPF source (a NetConnect on the bus) is learned too
        ctx.events.process(
            NetConnect(
                ts=time.time(),
                container=rec.ref(),
                op="connect",
                comm="nc",
                family=socket.AF_INET,
                protocol="udp",
                saddr="",
                sport=0,
                daddr="10.213.0.53",
                dport=53,
            )
        )
        learned = comp.finish_learning(rec.id)
        assert learned is not None
        assert [(r.cidr, r.protocol, r.ports) for r in learned.egress] == [
            ("10.213.0.53/32", "udp", (53,)),
            (f"{lab.peer_addr}/32", "tcp", (8080,)),
        ]
        desc = comp.describe({"id": rec.id})
        assert desc["mode"] == "enforce" and desc["proposal"]["source"] == "learned"
        # applied: the learned flow still works, anything else is denied
        assert _exec(c, f"echo again | nc -w 3 {lab.peer_addr} 8080") == 0
        assert _exec(c, f"echo other | nc -w 2 {lab.peer_addr} 9090") != 0
        assert lab.listeners[9090].accepted == 0
        # the learned allowlist reaches the SELinux policy as name_connect
        assert (
            "(allow process http_cache_port_t (tcp_socket (name_connect)))" in Path(desc["selinux"]["file"]).read_text()
        )
    finally:
        comp.stop()


def test_cni_chain_add_check_del_with_the_real_plugins(
    make_ctx: Any, run_container: Any, container_record: Any, tmp_path: Path
) -> None:
    need_root()
    for plugin in ("bridge", "host-local", "firewall", "bandwidth"):
        need(
            Path("/usr/lib/cni", plugin).exists(),
            f"This test needs the CNI plugin {plugin} (containernetworking-plugins).",
        )
    tag = uuid.uuid4().hex[:6]
    subnet = f"10.214.{random.randint(100, 250)}.0/24"
    settings = NetworkSettings.model_validate(
        {
            "backend": "cni",
            "subnet": subnet,
            "counters_interval_seconds": 60,
            "managed_label": MANAGED_LABEL,
            "cni": {
                "bridge": f"rgc{tag}",
                "network_name": f"rgtest-{tag}",
                "ingress_rate": 80_000_000,
                "egress_rate": 80_000_000,
            },
        }
    )
    ctx = make_ctx(AgentConfig(network=settings))
    comp = _start(ctx)
    try:
        c = run_container("sleep", "600", labels=MANAGED)
        rec = _wired(ctx, comp, container_record(c))
        m = comp.tracked[rec.id].managed
        assert m["backend"] == "cni" and ipaddress.ip_address(m["address"]) in ipaddress.ip_network(subnet)
        netns = Path(f"/proc/{rec.init_pid}/ns/net")
        assert _links_in(netns)["eth0"] == [m["address"]]
        assert _host_link(m["host_ifname"]) and _host_link(f"rgc{tag}")
        # the bandwidth plugin shaped the host side (tbf qdisc) and made its ifb device
        ifaces = [i["name"] for i in m["result"]["interfaces"]]
        assert any(name.startswith("bwp") for name in ifaces), ifaces
        tc = subprocess.run(["tc", "qdisc", "show", "dev", m["host_ifname"]], capture_output=True, text=True)
        assert "tbf" in tc.stdout
        runner = comp._cni_runner()
        runner.check(rec.id, str(netns), m["result"])
        # a CHECK against a result the container does not have fails with the plugin's error
        bad = dict(m["result"])
        bad["ips"] = [{**bad["ips"][0], "address": str(ipaddress.ip_network(subnet).network_address + 77) + "/24"}]
        with pytest.raises(CniError) as err:
            runner.check(rec.id, str(netns), bad)
        assert err.value.plugin and err.value.msg
        # the host-local lease lives in the agent's state dir
        leases = ctx.paths.state / "cni" / "networks" / f"rgtest-{tag}"
        assert (leases / m["address"]).exists()

        ctx.registry.remove(rec.id)
        assert comp.drain(30)
        assert not _host_link(m["host_ifname"])
        assert not (leases / m["address"]).exists()
        assert "eth0" not in _links_in(netns)
    finally:
        comp.stop()
        subprocess.run(["ip", "link", "del", f"rgc{tag}"], capture_output=True)
        _drop_idle_cni_firewall_chains()


def _drop_idle_cni_firewall_chains() -> None:
    """The firewall plugin's DEL leaves its shared chains (CNI-FORWARD, CNI-ADMIN); remove them
    when nothing but their own jumps is left in them (no other CNI user on this host)."""

    def rules(chain: str) -> list[str]:
        res = subprocess.run(["iptables", "-w", "5", "-S", chain], capture_output=True, text=True)
        return [ln for ln in res.stdout.splitlines() if ln.startswith("-A ")] if res.returncode == 0 else ["?"]

    fwd, admin = rules("CNI-FORWARD"), rules("CNI-ADMIN")
    if admin or len(fwd) != 1 or "-j CNI-ADMIN" not in fwd[0]:
        return
    jump = ["FORWARD", "-m", "comment", "--comment", "CNI firewall plugin rules", "-j", "CNI-FORWARD"]
    subprocess.run(["iptables", "-w", "5", "-D", *jump], capture_output=True)
    for chain in ("CNI-FORWARD", "CNI-ADMIN"):
        subprocess.run(["iptables", "-w", "5", "-F", chain], capture_output=True)
    for chain in ("CNI-FORWARD", "CNI-ADMIN"):
        subprocess.run(["iptables", "-w", "5", "-X", chain], capture_output=True)


def test_cni_runner_surfaces_plugin_errors(tmp_path: Path) -> None:
    need_root()
    need(Path("/usr/lib/cni/bridge").exists(), "This test needs the CNI bridge plugin (containernetworking-plugins).")
    settings = NetworkSettings().cni.model_copy(update={"plugins": ("bridge",), "bridge": "rgcerr0"})
    runner = CniRunner(build_conflist(settings, "10.214.9.0/24", tmp_path), [Path("/usr/lib/cni")])
    with pytest.raises(CniError) as err:
        runner.add("c0ffee", "/nonexistent/netns")
    assert err.value.plugin == "bridge" and "netns" in err.value.msg.lower()
    subprocess.run(["ip", "link", "del", "rgcerr0"], capture_output=True)


def test_posture_and_selinux_policy_of_real_containers(
    make_ctx: Any, run_container: Any, container_record: Any, collect: Any, tmp_path: Path
) -> None:
    need_tool("secilc")
    data_rw = tmp_path / "rw"
    data_ro = tmp_path / "ro"
    data_rw.mkdir()
    data_ro.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    ctx = make_ctx(AgentConfig(network=NetworkSettings(counters_interval_seconds=60)))
    _events, findings = collect(ctx)
    comp = _start(ctx)
    try:
        web = run_container(
            "sleep",
            "600",
            network_mode="bridge",
            ports={"8080/tcp": ("127.0.0.1", free)},
            volumes={str(data_rw): {"bind": "/data", "mode": "rw"}, str(data_ro): {"bind": "/conf", "mode": "ro"}},
            cap_drop=["NET_RAW"],
        )
        side = run_container("sleep", "600", network_mode=f"container:{web.id}", cap_add=["NET_ADMIN"])
        rec_web, rec_side = container_record(web), container_record(side)
        ctx.registry.upsert(rec_web)
        ctx.registry.upsert(rec_side)
        assert comp.drain(60)
        comp.handle_added(rec_side)  # seen again: nothing reported twice
        assert ctx.findings.drain(5)
        by = {(f.container_id, f.detector_id) for f in findings}
        assert (rec_side.id, "RG-0102") in by and (rec_side.id, "RG-0104") in by and (rec_side.id, "RG-0105") in by
        assert (rec_web.id, "RG-0105") not in by  # NET_RAW dropped
        assert (rec_web.id, "RG-0106") not in by  # published on 127.0.0.1 only
        assert len(findings) == len(by)
        assert comp.tracked[rec_side.id].refused  # no rules in a shared netns

        sel = comp.tracked[rec_web.id].selinux
        text = Path(sel["file"]).read_text()
        assert Path(sel["file"]).parent == ctx.paths.state / "selinux"
        assert sel["compiled"] is True, sel["error"]
        assert "(allow process http_cache_port_t (tcp_socket (name_bind)))" in text
        assert f"; {data_rw} -> /data (rw)" in text and f"; {data_ro} -> /conf (ro)" in text
        assert "(allow process tmp_t (dir (open read getattr lock search ioctl add_name remove_name write)))" in text
        assert "net_raw" not in text and "net_admin" not in comp.tracked[rec_web.id].selinux["file"]
        assert comp.status()["selinux"]["enforced"] is Path("/sys/fs/selinux/enforce").exists()
    finally:
        comp.stop()


def test_state_of_containers_gone_while_the_agent_was_down_is_released(lab: Lab, make_ctx: Any) -> None:
    ctx = make_ctx(AgentConfig(network=lab.settings()))
    comp = _start(ctx)
    try:
        ipam = wiring.Ipam(ctx.store, comp.pool)
        dead = "d" * 64
        addr = ipam.allocate(dead)
        ctx.store.execute(
            "INSERT INTO netpolicy_state VALUES (?, 'gone', 1, ?, 'null', 'null', 0, 0)",
            (dead, json.dumps({"backend": "pyroute2", "address": str(addr)})),
        )
        assert comp.reconcile() == [dead]
        assert ipam.lookup(dead) is None
        assert not ctx.store.query("SELECT 1 FROM netpolicy_state WHERE container_id = ?", (dead,))
        assert comp.reconcile() == []
    finally:
        comp.stop()


def test_a_config_reload_restarts_on_the_same_context(lab: Lab, make_ctx: Any) -> None:
    ctx = make_ctx(AgentConfig(network=lab.settings()))
    first = _start(ctx)
    first.stop()
    del ctx.control_methods["netpolicy"]  # as agent.app.reload_config does
    second = _start(ctx)  # same metrics registry: names were freed
    try:
        assert ctx.control_methods["netpolicy"] == second.describe
        # the stopped instance ignores registry changes; only the new one takes them
        first.on_registry(
            "added", Container(id="e" * 64, name="x", image="i", image_id="", runtime="docker", init_pid=0)
        )
        assert first._changes.pending == 0
    finally:
        second.stop()
