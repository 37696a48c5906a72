# SPDX-License-Identifier: Apache-2.0
"""The pyroute2 backend: the agent's bridge, a veth per managed container, addresses from a pool.

Wiring a container: the bridge (created once, with the first address of the subnet) gets the
host end of a veth pair; the peer is moved into the container's netns through its init pid,
renamed ``eth0``, given its address and a default route via the bridge address. Addresses come
from ``Ipam``, which keeps them in the state store so an agent restart hands a container the same
address, and releases them when the container stops.

pyroute2 is imported inside the functions that use it: it costs the agent ~20 MiB, and only
containers that ask for managed networking need it.
"""

from __future__ import annotations

import errno
import ipaddress
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from agent.runtime.netns import in_netns
from agent.store import Store

log = structlog.get_logger("agent.network")

MIGRATIONS: list[str] = [
    """
    CREATE TABLE netpolicy_ipam (
        pool TEXT NOT NULL,
        address TEXT NOT NULL,
        container_id TEXT NOT NULL,
        allocated_at REAL NOT NULL,
        PRIMARY KEY (pool, address)
    );
    CREATE UNIQUE INDEX netpolicy_ipam_container ON netpolicy_ipam(pool, container_id);
    CREATE TABLE netpolicy_reported (
        container_id TEXT NOT NULL,
        detector_id TEXT NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (container_id, detector_id)
    );
    CREATE TABLE netpolicy_state (
        container_id TEXT PRIMARY KEY,
        container_name TEXT NOT NULL,
        netns_inode INTEGER NOT NULL,
        managed TEXT NOT NULL,
        allowlist TEXT NOT NULL,
        proposal TEXT NOT NULL,
        learning_until REAL NOT NULL,
        updated REAL NOT NULL
    )
    """,
]


class WiringError(Exception):
    """A managed container could not be wired (or unwired)."""


class IpamExhausted(WiringError):
    pass


@dataclass(frozen=True, slots=True)
class Pool:
    """A subnet, its gateway (the bridge address) and the host addresses handed out."""

    subnet: ipaddress.IPv4Network
    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 1

    @property
    def key(self) -> str:
        return str(self.subnet)

    @classmethod
    def of(cls, subnet: str, start: str = "", end: str = "") -> Pool:
        net = ipaddress.IPv4Network(subnet, strict=False)
        first = ipaddress.IPv4Address(start) if start else net.network_address + 2
        last = ipaddress.IPv4Address(end) if end else net.broadcast_address - 1
        first = max(first, net.network_address + 2)
        last = min(last, net.broadcast_address - 1)
        if first > last:
            raise ValueError(f"empty address pool {first}..{last} in {net}")
        return cls(net, first, last)


class Ipam:
    """Addresses of managed containers, persisted in the store (table ``netpolicy_ipam``)."""

    def __init__(self, store: Store, pool: Pool) -> None:
        self.store = store
        self.pool = pool
        store.migrate("netpolicy", MIGRATIONS)

    def lookup(self, container_id: str) -> ipaddress.IPv4Address | None:
        rows = self.store.query(
            "SELECT address FROM netpolicy_ipam WHERE pool = ? AND container_id = ?", (self.pool.key, container_id)
        )
        return ipaddress.IPv4Address(rows[0][0]) if rows else None

    def allocate(self, container_id: str) -> ipaddress.IPv4Address:
        """The container's address: the one it already holds, else the lowest free one."""
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT address FROM netpolicy_ipam WHERE pool = ? AND container_id = ?", (self.pool.key, container_id)
            ).fetchone()
            if row:
                return ipaddress.IPv4Address(row[0])
            used = {
                int(ipaddress.IPv4Address(r[0]))
                for r in conn.execute("SELECT address FROM netpolicy_ipam WHERE pool = ?", (self.pool.key,))
            }
            for n in range(int(self.pool.first), int(self.pool.last) + 1):
                if n not in used:
                    addr = ipaddress.IPv4Address(n)
                    conn.execute(
                        "INSERT INTO netpolicy_ipam(pool, address, container_id, allocated_at) VALUES (?, ?, ?, ?)",
                        (self.pool.key, str(addr), container_id, time.time()),
                    )
                    return addr
        raise IpamExhausted(f"no free address in {self.pool.first}..{self.pool.last}")

    def release(self, container_id: str) -> bool:
        cur = self.store.execute(
            "DELETE FROM netpolicy_ipam WHERE pool = ? AND container_id = ?", (self.pool.key, container_id)
        )
        return cur.rowcount > 0

    def allocations(self) -> dict[str, str]:
        """container id -> address, for this pool."""
        return {
            str(r[1]): str(r[0])
            for r in self.store.query(
                "SELECT address, container_id FROM netpolicy_ipam WHERE pool = ?", (self.pool.key,)
            )
        }


def veth_names(container_id: str) -> tuple[str, str]:
    """Host-side and temporary peer names (IFNAMSIZ is 16 with the NUL: 15 characters)."""
    return f"rgv{container_id[:11]}", f"rgp{container_id[:11]}"


def _link_index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


_forward_allowed: set[str] = set()


def _allow_bridged_forward(bridge: str) -> None:
    """With br_netfilter loaded and bridge-nf-call-iptables=1 (Docker's set-up), frames bridged
    between ports of *our* bridge traverse iptables FORWARD, whose policy Docker sets to DROP;
    the per-bridge ``nf_call_iptables`` option cannot opt out (the kernel ORs it with the global
    sysctl, net/bridge/br_netfilter_hooks.c). So accept traffic staying on our bridge there, as
    CNI's firewall plugin does for its own."""
    iptables = shutil.which("iptables")
    if iptables is None or bridge in _forward_allowed:
        return
    rule = ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT", "-m", "comment", "--comment", "riskguard"]
    _forward_allowed.add(bridge)
    check = subprocess.run([iptables, "-w", "5", "-C", *rule], capture_output=True, timeout=20)
    if check.returncode == 0:
        return
    res = subprocess.run([iptables, "-w", "5", "-I", *rule], capture_output=True, text=True, timeout=20)
    if res.returncode != 0:
        log.warning("bridge_forward_not_allowed", bridge=bridge, error=res.stderr.strip())


def _drop_bridged_forward(bridge: str) -> None:
    _forward_allowed.discard(bridge)
    iptables = shutil.which("iptables")
    if iptables is None:
        return
    rule = ["FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT", "-m", "comment", "--comment", "riskguard"]
    subprocess.run([iptables, "-w", "5", "-D", *rule], capture_output=True, timeout=20)


def ensure_bridge(name: str, pool: Pool, mtu: int = 1500) -> int:
    """Create (or find) the bridge with the pool's gateway address; return its index."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        idx = _link_index(ipr, name)
        if idx is None:
            try:
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise WiringError(f"bridge {name}: {exc}") from exc
            idx = _link_index(ipr, name)
            if idx is None:
                raise WiringError(f"bridge {name} vanished after creation")
            log.info("bridge_created", bridge=name, address=f"{pool.gateway}/{pool.subnet.prefixlen}")
        have = {a.get("address") for a in ipr.get_addr(index=idx, family=2)}
        if str(pool.gateway) not in have:
            try:
                ipr.addr("add", index=idx, address=str(pool.gateway), prefixlen=pool.subnet.prefixlen)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise WiringError(f"bridge {name} address: {exc}") from exc
        ipr.link("set", index=idx, state="up")
    _allow_bridged_forward(name)
    return idx


def delete_bridge(name: str) -> bool:
    """Remove the bridge (tests and ``network.enabled: false`` clean-up)."""
    from pyroute2 import IPRoute

    _drop_bridged_forward(name)
    with IPRoute() as ipr:
        idx = _link_index(ipr, name)
        if idx is None:
            return False
        ipr.link("del", index=idx)
        return True


@dataclass(frozen=True, slots=True)
class Wired:
    """What wiring gave a container (kept in the store for status and unwiring)."""

    backend: str
    ifname: str
    host_ifname: str
    address: str
    prefixlen: int
    gateway: str
    bridge: str
    mac: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "ifname": self.ifname,
            "host_ifname": self.host_ifname,
            "address": self.address,
            "prefixlen": self.prefixlen,
            "gateway": self.gateway,
            "bridge": self.bridge,
            "mac": self.mac,
        }


def _configure_inside(tmp: str, ifname: str, address: str, prefixlen: int, gateway: str, mtu: int) -> str:
    """Inside the container's netns: rename, address, up, default route; return the MAC."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        lo = _link_index(ipr, "lo")
        if lo is not None:
            ipr.link("set", index=lo, state="up")
        idx = _link_index(ipr, tmp)
        if idx is None:
            raise WiringError(f"{tmp} did not arrive in the container netns")
        if _link_index(ipr, ifname) is not None:
            raise WiringError(f"the container already has an interface {ifname}")
        ipr.link("set", index=idx, ifname=ifname, mtu=mtu)
        have = {a.get("address") for a in ipr.get_addr(index=idx, family=2)}
        if address not in have:
            ipr.addr("add", index=idx, address=address, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
        try:
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=idx)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
        link = ipr.get_links(idx)[0]
        return str(link.get("address") or "")


def _inside_state(ifname: str, address: str) -> str | None:
    """The MAC of ``ifname`` when it already carries ``address`` (wired before), else None."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        idx = _link_index(ipr, ifname)
        if idx is None:
            return None
        have = {a.get("address") for a in ipr.get_addr(index=idx, family=2)}
        if address not in have:
            return None
        return str(ipr.get_links(idx)[0].get("address") or "")


def wire(
    netns: Path,
    init_pid: int,
    container_id: str,
    bridge: str,
    pool: Pool,
    address: ipaddress.IPv4Address,
    mtu: int = 1500,
    ifname: str = "eth0",
    enter: Callable[[Path, Callable[[], Any]], Any] = in_netns,
) -> Wired:
    """Wire one container. Idempotent: a container whose ``ifname`` already has its address and
    whose host veth exists is only re-attached to the bridge (an agent restart); a host veth
    without that peer is stale and replaced."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    host, peer = veth_names(container_id)
    bridge_idx = ensure_bridge(bridge, pool, mtu)
    with IPRoute() as ipr:
        hidx = _link_index(ipr, host)
        if hidx is not None:
            mac = enter(netns, lambda: _inside_state(ifname, str(address)))
            if mac is not None:
                ipr.link("set", index=hidx, master=bridge_idx, state="up")
                return Wired(
                    "pyroute2", ifname, host, str(address), pool.subnet.prefixlen, str(pool.gateway), bridge, mac
                )
            ipr.link("del", index=hidx)
            log.info("stale_veth_removed", host_ifname=host)
        ipr.link("add", ifname=host, kind="veth", peer={"ifname": peer, "mtu": mtu}, mtu=mtu)
        hidx = _link_index(ipr, host)
        pidx = _link_index(ipr, peer)
        if hidx is None or pidx is None:
            raise WiringError(f"veth {host}/{peer} not created")
        try:
            # IFLA_NET_NS_PID: into the netns of the container's init process.
            ipr.link("set", index=pidx, net_ns_pid=init_pid)
        except NetlinkError as exc:
            ipr.link("del", index=hidx)
            raise WiringError(f"moving {peer} into pid {init_pid}'s netns: {exc}") from exc
        ipr.link("set", index=hidx, master=bridge_idx, state="up")
    try:
        mac = enter(
            netns, lambda: _configure_inside(peer, ifname, str(address), pool.subnet.prefixlen, str(pool.gateway), mtu)
        )
    except Exception as exc:
        unwire(container_id)
        raise WiringError(f"configuring {ifname} in {netns}: {exc}") from exc
    return Wired("pyroute2", ifname, host, str(address), pool.subnet.prefixlen, str(pool.gateway), bridge, str(mac))


def unwire(container_id: str) -> bool:
    """Remove the host end of the container's veth (the peer goes with it); False if absent
    (deleting a netns already removed the pair)."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    host, _peer = veth_names(container_id)
    with IPRoute() as ipr:
        idx = _link_index(ipr, host)
        if idx is None:
            return False
        try:
            ipr.link("del", index=idx)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise
            return False
        return True
