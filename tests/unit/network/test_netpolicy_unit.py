# SPDX-License-Identifier: Apache-2.0
"""netpolicy without root: posture on recorded inspect data, CNI protocol, nft JSON, exports, CIL."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import stat
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from agent.control import ControlServer
from agent.findings import Severity, Source
from agent.network import allowlist as al
from agent.network import ctl, nft, posture, selinux
from agent.network.allowlist import Allowlist
from agent.network.cni import CniError, CniRunner, build_conflist, parse_result, plugin_config
from agent.network.wiring import Ipam, IpamExhausted, Pool, veth_names
from agent.runtime.docker import details_from_inspect
from agent.runtime.model import Container
from agent.settings.network import CniSettings, EgressRule, IngressRule, NetworkSettings
from agent.store import Store

FIX = Path(__file__).resolve().parent / "fixtures"


def record(name: str) -> Container:
    attrs = json.loads((FIX / f"inspect_{name}.json").read_text())
    return Container(
        id=attrs["Id"],
        name=attrs["Name"].lstrip("/"),
        image=attrs["Config"]["Image"],
        image_id=attrs["Image"],
        runtime="docker",
        init_pid=int(attrs["State"]["Pid"] or 0),
        netns_inode=int(attrs.get("_netns_inode", 0)),
        labels=attrs["Config"]["Labels"] or {},
        details=details_from_inspect(attrs),
    )


HOST_NETNS = json.loads((FIX / "host_netns.json").read_text())["host_netns_inode"]


def ids(name: str, others: tuple[str, ...] = ()) -> dict[str, Severity]:
    found = posture.audit(record(name), [record(o) for o in others], {HOST_NETNS})
    assert all(f.source == Source.NETPOLICY and f.container is not None for f in found)
    return {f.detector_id: f.severity for f in found}


# --- posture --------------------------------------------------------------------------------
def test_posture_of_recorded_containers() -> None:
    assert ids("default_bridge") == {"RG-0105": Severity.LOW}
    assert ids("host_network") == {"RG-0101": Severity.HIGH, "RG-0105": Severity.LOW}
    assert ids("net_admin_raw") == {"RG-0104": Severity.HIGH, "RG-0105": Severity.MEDIUM}
    assert ids("dropped_all") == {}
    assert ids("published_all") == {"RG-0106": Severity.MEDIUM}
    assert ids("published_local") == {}
    assert ids("privileged_created") == {"RG-0103": Severity.CRITICAL}
    # container: mode, and the same inode as the container it joined
    assert "RG-0102" in ids("shared_netns")
    assert "RG-0102" in ids("default_bridge", others=("shared_netns",))


def test_posture_evidence_names_the_binding_and_sharer() -> None:
    found = posture.audit(record("published_all"), [], {HOST_NETNS})
    pub = next(f for f in found if f.detector_id == "RG-0106")
    assert {"container_port": "80/tcp", "host_ip": "0.0.0.0"}.items() <= pub.evidence["published"][0].items()
    shared = posture.audit(record("default_bridge"), [record("shared_netns")], {HOST_NETNS})
    assert next(f for f in shared if f.detector_id == "RG-0102").evidence["shared_with"] == [
        record("shared_netns").name
    ]


def test_posture_tolerates_malformed_details() -> None:
    c = Container(
        id="x" * 64,
        name="odd",
        image="i",
        image_id="",
        runtime="docker",
        init_pid=1,
        details={"ports": {"80/tcp": "garbage", "81/tcp": [None, 3]}, "cap_add": None, "network_mode": None},
    )
    assert {f.detector_id for f in posture.audit(c)} == {"RG-0105"}


# --- settings and allowlists ------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        {"allowlists": [{"egress": []}]},  # no selector
        {"allowlists": [{"image": "x", "egress": [{"cidr": "10.0.0.300/8"}]}]},
        {"allowlists": [{"image": "x", "egress": [{"ports": [0]}]}]},
        {"subnet": "10.0.0.0/24", "pool_start": "10.0.1.5"},
        {"bridge": "a-very-long-bridge-name"},
        {"mode": "block"},
        {"unknown": 1},
    ],
)
def test_bad_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        NetworkSettings.model_validate(bad)


def test_allowlist_selection_by_image_and_label() -> None:
    s = NetworkSettings.model_validate(
        {
            "mode": "enforce",
            "allowlists": [
                {"label": "app=db", "ingress": [{"ports": [5432]}], "mode": "observe"},
                {"image": "registry.local/web*", "egress": [{"cidr": "10.1.0.0/16", "ports": [443]}]},
                {"image": "busybox", "label": "tier"},
            ],
        }
    )
    db = al.select(s, "postgres:16", {"app": "db"})
    assert db is not None and db.mode == "observe" and db.ingress[0].ports == (5432,)
    web = al.select(s, "registry.local/web:1.2", {})
    assert web is not None and web.mode == "enforce" and web.egress[0].cidr == "10.1.0.0/16"
    assert al.select(s, "busybox:latest", {"tier": "x"}) is not None
    assert al.select(s, "busybox:latest", {}) is None
    assert al.select(s, "postgres:16", {"app": "web"}) is None


def test_learned_allowlist_groups_flows_and_skips_loopback_and_self() -> None:
    a = al.learned(
        [
            ("10.0.0.5", "tcp", 443),
            ("10.0.0.5", "tcp", 80),
            ("127.0.0.1", "tcp", 9),
            ("10.0.0.2", "tcp", 1),
            ("10.0.0.6", "udp", 53),
            ("not-an-ip", "tcp", 1),
            ("10.0.0.7", "icmp", 0),
        ],
        [("tcp", 8080), ("tcp", 8080), ("udp", 0)],
        "enforce",
        own=["10.0.0.2"],
    )
    assert [(r.cidr, r.protocol, r.ports) for r in a.egress] == [
        ("10.0.0.5/32", "tcp", (80, 443)),
        ("10.0.0.6/32", "udp", (53,)),
    ]
    assert [(r.protocol, r.ports) for r in a.ingress] == [("tcp", (8080,))]
    assert Allowlist.from_dict(json.loads(json.dumps(a.to_dict()))) == a


# --- nftables JSON ---------------------------------------------------------------------------
def _rules(cmds: list[dict[str, Any]], chain: str) -> list[dict[str, Any]]:
    return [c["add"]["rule"] for c in cmds if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == chain]


def test_ruleset_enforce_and_observe() -> None:
    allow = Allowlist(
        egress=(
            EgressRule(cidr="10.9.0.0/16", ports=(80, 443)),
            EgressRule(cidr="fd00::1", protocol="udp", ports=(53,)),
            EgressRule(protocol="icmp"),
        ),
        ingress=(IngressRule(ports=(8080,), cidr="10.1.0.0/24"),),
    )
    cmds = nft.ruleset(allow, "enforce")
    # the table is replaced in one transaction: add, delete, add
    assert [list(c) for c in cmds[:3]] == [["add"], ["delete"], ["add"]]
    out = _rules(cmds, "output")
    assert out[-1]["expr"] == [{"counter": "denied_out"}, {"drop": None}]
    assert out[0]["expr"][0]["match"]["left"] == {"meta": {"key": "oif"}}
    allow_rules = [r["expr"] for r in out if r.get("comment") == "allow"]
    assert allow_rules[0][0]["match"]["right"] == {"prefix": {"addr": "10.9.0.0", "len": 16}}
    assert allow_rules[0][2]["match"]["right"] == {"set": [80, 443]}
    assert allow_rules[1][0]["match"]["left"] == {"payload": {"protocol": "ip6", "field": "daddr"}}
    assert allow_rules[2] == [
        {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": {"set": ["icmp", "ipv6-icmp"]}}},
        {"accept": None},
    ]
    inp = _rules(cmds, "input")
    assert inp[-1]["expr"] == [{"counter": "denied_in"}, {"drop": None}]
    assert any(r["expr"][0]["match"]["left"] == {"payload": {"protocol": "ip", "field": "saddr"}} for r in inp)
    observe = nft.ruleset(allow, "observe")
    assert _rules(observe, "output")[-1]["expr"] == [{"counter": "denied_out"}]
    assert not any("set" in c.get("add", {}) for c in observe)


def test_ruleset_learning_never_drops_and_fills_sets() -> None:
    cmds = nft.ruleset(None, "enforce", learning=True)
    sets = {c["add"]["set"]["name"]: c["add"]["set"]["type"] for c in cmds if "set" in c.get("add", {})}
    assert sets["learn_egress4"] == ["ipv4_addr", "inet_proto", "inet_service"]
    assert sets["learn_ingress"] == ["inet_proto", "inet_service"]
    assert _rules(cmds, "output")[-1]["expr"] == [{"counter": "denied_out"}]
    assert sum(1 for r in _rules(cmds, "output") if r.get("comment") == "learn") == 2


def test_ruleset_any_protocol_anywhere() -> None:
    cmds = nft.ruleset(Allowlist(egress=(EgressRule(protocol="any"),)), "enforce")
    allow_rules = [r["expr"] for r in _rules(cmds, "output") if r.get("comment") == "allow"]
    assert allow_rules == [[{"accept": None}]]


def test_parse_recorded_table_listing() -> None:
    parsed = nft.parse_table(json.loads((FIX / "nft_list_learning.json").read_text()))
    assert parsed["counters"]["denied_out"]["packets"] == 1
    assert sorted(parsed["learned_egress"]) == [("10.77.0.9", "udp", 53), ("10.77.0.9", "udp", 5353)]
    assert parsed["rules"] > 0
    assert (
        nft.parse_table({"nftables": [{"set": {"name": "learn_egress4", "elem": [{"concat": ["x"]}, 7]}}, "junk"]})[
            "learned_egress"
        ]
        == []
    )


# --- CNI -------------------------------------------------------------------------------------
def test_conflist_chain_and_plugin_config() -> None:
    s = CniSettings(
        bridge="rgcni9",
        network_name="net1",
        egress_rate=1000,
        ingress_rate=0,
        plugins=("bridge", "host-local", "firewall", "bandwidth"),
    )
    cl = build_conflist(s, "10.5.0.0/24", Path("/state/cni"), mtu=1400)
    assert cl["cniVersion"] == "1.0.0" and cl["name"] == "net1"
    assert [p["type"] for p in cl["plugins"]] == ["bridge", "firewall", "bandwidth"]
    bridge = cl["plugins"][0]
    assert bridge["ipam"] == {
        "type": "host-local",
        "ranges": [[{"subnet": "10.5.0.0/24"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "/state/cni",
    }
    assert cl["plugins"][2] == {"type": "bandwidth", "egressRate": 1000, "egressBurst": 1000}
    conf = plugin_config(cl, cl["plugins"][1], {"cniVersion": "1.0.0", "ips": []})
    assert (
        conf["name"] == "net1"
        and conf["prevResult"] == {"cniVersion": "1.0.0", "ips": []}
        and conf["type"] == "firewall"
    )
    assert "prevResult" not in plugin_config(cl, bridge, None)


def test_parse_result() -> None:
    r = parse_result(
        {
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "rgcni0", "mac": "aa"},
                {"name": "veth1", "mac": "bb"},
                {"name": "eth0", "mac": "cc", "sandbox": "/proc/1/ns/net"},
            ],
            "ips": [{"interface": 2, "address": "10.5.0.3/24", "gateway": "10.5.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
        }
    )
    assert (r.address, r.prefixlen, r.gateway) == ("10.5.0.3", 24, "10.5.0.1")
    assert r.host_interface("rgcni0") == "veth1" and r.container_mac("eth0") == "cc"
    for bad in ([], {"ips": ["x"]}):
        with pytest.raises(ValueError):
            parse_result(bad)  # type: ignore[arg-type]


PLUGIN = """#!{python}
# A test CNI plugin speaking the protocol: logs env + stdin, answers like a real plugin.
import json, os, sys
conf = json.load(sys.stdin)
log = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.jsonl")
with open(log, "a") as f:
    env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
    f.write(json.dumps({{"cmd": os.environ["CNI_COMMAND"], "type": conf["type"], "env": env, "conf": conf}}))
    f.write("\\n")
if conf.get("fail") and os.environ["CNI_COMMAND"] == conf["fail"]:
    err = {{"cniVersion": "1.0.0", "code": 11, "msg": "boom from " + conf["type"], "details": "d"}}
    print(json.dumps(err))
    sys.exit(1)
if os.environ["CNI_COMMAND"] == "ADD":
    prev = conf.get("prevResult") or {{"cniVersion": "1.0.0", "interfaces": [], "ips": []}}
    prev["interfaces"] = prev["interfaces"] + [{{"name": conf["type"] + "0"}}]
    if not prev["ips"]:
        prev["ips"] = [{{"address": "10.6.0.2/24", "gateway": "10.6.0.1"}}]
    print(json.dumps(prev))
"""


def _plugins(tmp: Path, names: list[str]) -> Path:
    d = tmp / "cni-bin"
    d.mkdir()
    for n in names:
        p = d / n
        p.write_text(PLUGIN.format(python=sys.executable))
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return d


def _calls(d: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (d / "calls.jsonl").read_text().splitlines()]


def test_cni_runner_protocol(tmp_path: Path) -> None:
    d = _plugins(tmp_path, ["one", "two"])
    cl = {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "one"}, {"type": "two"}]}
    r = CniRunner(cl, [d])
    res = r.add("cid1", "/proc/123/ns/net", "eth0")
    assert [i["name"] for i in res.interfaces] == ["one0", "two0"] and res.address == "10.6.0.2"
    calls = _calls(d)
    assert calls[0]["env"] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "cid1",
        "CNI_NETNS": "/proc/123/ns/net",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(d),
    }
    assert "prevResult" not in calls[0]["conf"] and calls[1]["conf"]["prevResult"]["interfaces"] == [{"name": "one0"}]
    r.check("cid1", "/proc/123/ns/net", res.raw)
    assert r.delete("cid1", "", res.raw) == []
    calls = _calls(d)
    assert [(c["cmd"], c["type"]) for c in calls[2:]] == [
        ("CHECK", "one"),
        ("CHECK", "two"),
        ("DEL", "two"),
        ("DEL", "one"),
    ]
    assert calls[-1]["conf"]["prevResult"] == dict(res.raw) and calls[-1]["env"]["CNI_NETNS"] == ""


def test_cni_error_surfaces_and_add_rolls_back(tmp_path: Path) -> None:
    d = _plugins(tmp_path, ["one", "two"])
    cl = {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "one"}, {"type": "two", "fail": "ADD"}]}
    with pytest.raises(CniError) as err:
        CniRunner(cl, [d]).add("cid2", "/x")
    assert (err.value.plugin, err.value.code, err.value.msg, err.value.details) == ("two", 11, "boom from two", "d")
    assert [(c["cmd"], c["type"]) for c in _calls(d)] == [("ADD", "one"), ("ADD", "two"), ("DEL", "one")]
    with pytest.raises(CniError, match="not found"):
        CniRunner({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "missing"}]}, [d]).add("c", "/x")
    with pytest.raises(CniError, match="invalid plugin name"):
        CniRunner({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "../one"}]}, [d]).add("c", "/x")


# --- IPAM ------------------------------------------------------------------------------------
def test_ipam_persists_and_releases(tmp_path: Path) -> None:
    pool = Pool.of("10.213.0.0/24", "10.213.0.10", "10.213.0.11")
    store = Store(tmp_path / "a.db")
    ipam = Ipam(store, pool)
    a = ipam.allocate("c1")
    assert str(a) == "10.213.0.10" and ipam.allocate("c1") == a
    assert str(ipam.allocate("c2")) == "10.213.0.11"
    with pytest.raises(IpamExhausted):
        ipam.allocate("c3")
    store.close()
    again = Ipam(Store(tmp_path / "a.db"), pool)  # an agent restart
    assert again.lookup("c1") == a
    assert again.release("c1") and not again.release("c1")
    assert str(again.allocate("c3")) == "10.213.0.10"
    assert str(pool.gateway) == "10.213.0.1"
    assert all(len(n) <= 15 for n in veth_names("f" * 64))


# --- Kubernetes NetworkPolicy ------------------------------------------------------------------
def test_network_policy_export() -> None:
    allow = Allowlist(
        egress=(
            EgressRule(cidr="10.0.0.0/8", ports=(443,)),
            EgressRule(cidr="10.1.1.1", protocol="any", ports=(53,)),
            EgressRule(protocol="icmp"),
        ),
        ingress=(IngressRule(ports=(8080,)),),
        source="learned",
    )
    pol = al.network_policy(allow, al.target_for("web_1", {"com.docker.compose.service": "web"}))
    assert pol["kind"] == "NetworkPolicy" and pol["apiVersion"] == "networking.k8s.io/v1"
    assert pol["metadata"]["name"] == "riskguard-web-1"
    assert pol["spec"]["podSelector"] == {"matchLabels": {"riskguard.io/container": "web-1"}}
    assert pol["spec"]["policyTypes"] == ["Ingress", "Egress"]
    e = pol["spec"]["egress"]
    assert e[0] == {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    assert e[1]["ports"] == [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]
    assert e[2] == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
    assert pol["spec"]["ingress"] == [
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 8080}]}
    ]
    k8s = al.target_for(
        "k8s_web", {"io.kubernetes.pod.name": "web-abc", "io.kubernetes.pod.namespace": "shop", "app": "web"}
    )
    assert (k8s.namespace, dict(k8s.match_labels)) == ("shop", {"app": "web"})
    deny_all = al.network_policy(Allowlist(), k8s)
    assert deny_all["spec"]["egress"] == [] and deny_all["spec"]["ingress"] == []


def test_ctl_over_a_real_control_socket(tmp_path: Path) -> None:
    answer = {
        "container": {"id": "ab" * 32, "name": "web", "image": "busybox", "labels": {}},
        "managed": {
            "backend": "pyroute2",
            "address": "10.213.0.2",
            "prefixlen": 24,
            "gateway": "10.213.0.1",
            "bridge": "rg0",
            "host_ifname": "rgvabab",
        },
        "mode": "enforce",
        "refused": "",
        "allowlist": Allowlist(egress=(EgressRule(cidr="10.0.0.1", ports=(80,)),), mode="enforce").to_dict(),
        "proposal": None,
        "rules": "table inet riskguard_lp {\n}\n",
        "counters": {"denied_out": {"packets": 3, "bytes": 180}},
        "denied_packets": 3,
        "selinux": {"file": "/x.cil", "compiled": True, "loaded": False},
    }
    seen: list[Any] = []
    sock = tmp_path / "ctl.sock"
    server = ControlServer(sock, {"netpolicy": lambda p: seen.append(dict(p)) or answer})
    server.start()
    try:
        parser = argparse.ArgumentParser()
        parser.add_argument("--socket", type=Path)
        ctl.register(parser.add_subparsers())
        outs = []
        for argv in (
            ["web"],
            ["web", "--json"],
            ["web", "--export", "networkpolicy"],
            ["web", "--export", "networkpolicy", "--format", "json"],
        ):
            args = parser.parse_args(["--socket", str(sock), "netpolicy", *argv])
            buf = io.StringIO()
            with redirect_stdout(buf):
                assert args.func(args) == 0
            outs.append(buf.getvalue())
    finally:
        server.stop()
    assert seen[0] == {"id": "web"}
    assert (
        "denied counters: denied_out 3 packets / 180 bytes" in outs[0]
        and "egress  tcp  10.0.0.1/32 ports 80" in outs[0]
    )
    assert json.loads(outs[1])["denied_packets"] == 3
    pol = yaml.safe_load(outs[2])
    assert pol["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    assert json.loads(outs[3]) == pol


def test_ctl_reports_an_unreachable_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", type=Path)
    ctl.register(parser.add_subparsers())
    args = parser.parse_args(["--socket", str(tmp_path / "none.sock"), "netpolicy", "x", "--timeout", "1"])
    assert args.func(args) == 1
    assert capsys.readouterr().err.startswith("error:")


# --- SELinux CIL -----------------------------------------------------------------------------
DETAILS = {
    "mounts": [
        {"source": "/srv/www", "destination": "/var/www", "rw": False, "mode": "ro", "type": "bind"},
        {"source": "/var/log/app", "destination": "/logs", "rw": True, "mode": "", "type": "bind"},
        {"source": "", "destination": "/anon", "rw": True, "type": "volume"},
    ],
    "ports": {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
        "9999/udp": [{"HostIp": "", "HostPort": "9999"}],
        "53/tcp": None,
    },
    "cap_add": ["NET_ADMIN", "CAP_BPF"],
    "cap_drop": ["NET_RAW", "MKNOD"],
    "devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"}],
}


def test_cil_generation() -> None:
    allow = Allowlist(egress=(EgressRule(cidr="10.0.0.1", ports=(5432, 443)),))
    text = selinux.generate("rg_web_0123456789ab", DETAILS, allow).text
    assert text.startswith(
        "(block rg_web_0123456789ab\n    (blockinherit container)\n    (blockinherit restricted_net_container)\n"
    )
    assert (
        "(allow process process (capability (chown dac_override fowner fsetid kill setgid setuid setpcap "
        "net_bind_service net_admin sys_chroot audit_write setfcap)))" in text
    )
    assert "(allow process process (capability2 (bpf)))" in text
    assert "(allow process http_port_t (tcp_socket (name_bind)))" in text
    assert "(allow process unreserved_port_t (udp_socket (name_bind)))" in text
    assert "dns_port_t" not in text  # 53/tcp exposed, not published
    assert "(allow process postgresql_port_t (tcp_socket (name_connect)))" in text
    assert "(allow process http_port_t (tcp_socket (name_connect)))" in text
    assert "(allow process default_t (dir (getattr search open read lock ioctl)))" in text  # /srv: ro
    assert "(allow process var_log_t (file (getattr read write append ioctl lock map open create)))" in text
    assert "(allow process fuse_device_t (chr_file (getattr read write open ioctl lock append)))" in text
    assert text.count("(allow process http_port_t (tcp_socket (name_bind)))") == 1
    assert "(blockinherit net_container)" in selinux.generate("x", {}, None).text
    assert "capability" not in selinux.generate("x", {"cap_drop": ["ALL"]}, None).text
    assert "(allow process process (capability2 (" in selinux.generate("x", {"privileged": True}).text
    assert selinux.block_name("my-app.1", "f" * 64) == "rg_my_app_1_ffffffffffff"
    # a hostile mount path cannot add policy lines
    evil = {"mounts": [{"source": "/srv/x", "destination": "/d\n(allow process kernel_t (file (write)))", "rw": True}]}
    out = selinux.generate("x", evil).text
    assert "\n(allow process kernel_t" not in out and out.count("\n") == len(out.splitlines())


def test_cil_compiles_with_secilc(tmp_path: Path) -> None:
    if shutil.which("secilc") is None:
        pytest.skip("secilc is not installed (apt-get install secilc)")
    p = tmp_path / "rg_web.cil"
    p.write_text(selinux.generate("rg_web", DETAILS, Allowlist(egress=(EgressRule(ports=(6379,)),))).text)
    selinux.compile_check(p)
    p.write_text("(block rg_bad (blockinherit container) (allow process no_such_t (file (read))))\n")
    with pytest.raises(selinux.SelinuxError, match=r"no_such_t|resolve"):
        selinux.compile_check(p)
    assert not selinux.selinux_enabled(tmp_path)
