# SPDX-License-Identifier: Apache-2.0
"""The CNI backend: run a plugin chain from containernetworking-plugins by the CNI protocol.

Each plugin is executed with ``CNI_COMMAND`` (ADD, CHECK, DEL), ``CNI_CONTAINERID``,
``CNI_NETNS``, ``CNI_IFNAME`` and ``CNI_PATH`` in its environment and its network configuration
as JSON on stdin (``cniVersion``, ``name``, the plugin's own keys and, after the first plugin,
``prevResult``). ADD chains each plugin's result into the next one's ``prevResult``; CHECK and
DEL pass the cached final result; DEL runs the chain in reverse. A plugin error (exit status
≠ 0 with ``{"code", "msg", "details"}`` on stdout) becomes a ``CniError`` carrying them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.settings.network import CniSettings

CNI_VERSION = "1.0.0"


class CniError(Exception):
    """A plugin failed: its name, the CNI error code and message (spec "Error" result)."""

    def __init__(self, plugin: str, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"CNI plugin {plugin}: code {code}: {msg}" + (f" ({details})" if details else ""))
        self.plugin = plugin
        self.code = code
        self.msg = msg
        self.details = details


@dataclass(frozen=True, slots=True)
class CniResult:
    """The parts of a CNI result the agent uses (the raw result is kept for CHECK/DEL)."""

    raw: Mapping[str, Any]
    interfaces: tuple[Mapping[str, Any], ...] = ()
    ips: tuple[Mapping[str, Any], ...] = ()
    routes: tuple[Mapping[str, Any], ...] = ()

    @property
    def address(self) -> str:
        """The first container-side IP (without prefix length)."""
        for ip in self.ips:
            addr = str(ip.get("address", ""))
            if addr:
                return addr.split("/")[0]
        return ""

    @property
    def prefixlen(self) -> int:
        for ip in self.ips:
            addr = str(ip.get("address", ""))
            if "/" in addr:
                return int(addr.split("/")[1])
        return 0

    @property
    def gateway(self) -> str:
        for ip in self.ips:
            if ip.get("gateway"):
                return str(ip["gateway"])
        return ""

    def host_interface(self, bridge: str) -> str:
        """The host-side veth: an interface without ``sandbox`` that is not the bridge."""
        for i in self.interfaces:
            if not i.get("sandbox") and i.get("name") != bridge:
                return str(i.get("name", ""))
        return ""

    def container_mac(self, ifname: str) -> str:
        for i in self.interfaces:
            if i.get("sandbox") and i.get("name") == ifname:
                return str(i.get("mac", ""))
        return ""


def parse_result(data: Mapping[str, Any]) -> CniResult:
    """Parse a CNI 1.0 (or 0.4) result; raises ValueError on a shape that is not a result."""
    if not isinstance(data, Mapping):
        raise ValueError("CNI result is not an object")
    interfaces = data.get("interfaces") or []
    ips = data.get("ips") or []
    routes = data.get("routes") or []
    if not all(isinstance(x, Mapping) for x in (*interfaces, *ips, *routes)):
        raise ValueError("CNI result has malformed interfaces/ips/routes")
    return CniResult(raw=dict(data), interfaces=tuple(interfaces), ips=tuple(ips), routes=tuple(routes))


def build_conflist(settings: CniSettings, subnet: str, data_dir: Path, mtu: int = 1500) -> dict[str, Any]:
    """The network configuration list for the configured chain (``cniVersion``, ``name``,
    ``plugins``). host-local is bridge's IPAM, with its state under ``data_dir``."""
    plugins: list[dict[str, Any]] = []
    for name in settings.plugins:
        if name == "bridge":
            plugins.append(
                {
                    "type": "bridge",
                    "bridge": settings.bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": False,
                    "mtu": mtu,
                    "ipam": {
                        "type": settings.ipam,
                        "ranges": [[{"subnet": subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(data_dir),
                    },
                }
            )
        elif name == "firewall":
            plugins.append({"type": "firewall", "backend": "iptables"})
        elif name == "bandwidth":
            rates = (
                ("ingressRate", settings.ingress_rate),
                ("ingressBurst", settings.ingress_burst or settings.ingress_rate),
                ("egressRate", settings.egress_rate),
                ("egressBurst", settings.egress_burst or settings.egress_rate),
            )
            bw: dict[str, Any] = {"type": "bandwidth", **{key: value for key, value in rates if value}}
            plugins.append(bw)
        elif name == "host-local":
            continue  # IPAM of the bridge plugin, not a chained plugin
        else:
            plugins.append({"type": name})
    return {"cniVersion": CNI_VERSION, "name": settings.network_name, "plugins": plugins}


def plugin_config(
    conflist: Mapping[str, Any], plugin: Mapping[str, Any], prev: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One plugin's stdin: the list's ``cniVersion`` and ``name`` + the plugin's keys
    (+ ``prevResult``)."""
    conf = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **plugin}
    if prev is not None:
        conf["prevResult"] = dict(prev)
    return conf


@dataclass
class CniRunner:
    """Runs a conflist's plugins from ``bin_dirs`` for one container."""

    conflist: Mapping[str, Any]
    bin_dirs: Sequence[Path]
    timeout: float = 20.0
    env: Mapping[str, str] = field(default_factory=dict)

    def _find(self, plugin_type: str) -> Path:
        if "/" in plugin_type or plugin_type.startswith("."):
            raise CniError(plugin_type, 3, "invalid plugin name")
        for d in self.bin_dirs:
            p = d / plugin_type
            if p.is_file() and os.access(p, os.X_OK):
                return p
        raise CniError(plugin_type, 3, f"plugin not found in {':'.join(map(str, self.bin_dirs))}")

    def _exec(
        self,
        command: str,
        plugin: Mapping[str, Any],
        container_id: str,
        netns: str,
        ifname: str,
        prev: Mapping[str, Any] | None,
    ) -> dict[str, Any] | None:
        ptype = str(plugin.get("type", ""))
        binary = self._find(ptype)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            **self.env,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": ":".join(map(str, self.bin_dirs)),
        }
        stdin = json.dumps(plugin_config(self.conflist, plugin, prev))
        try:
            proc = subprocess.run(
                [str(binary)], input=stdin, env=env, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise CniError(ptype, 999, f"{command} timed out after {self.timeout}s") from None
        out = proc.stdout.strip()
        if proc.returncode != 0:
            try:
                err = json.loads(out)
                raise CniError(
                    ptype, int(err.get("code", proc.returncode)), str(err.get("msg", "")), str(err.get("details", ""))
                )
            except (ValueError, AttributeError):
                raise CniError(ptype, proc.returncode, (out or proc.stderr.strip())[:500]) from None
        if command != "ADD":
            return None
        try:
            result = json.loads(out)
        except ValueError:
            raise CniError(ptype, 999, f"ADD printed no JSON result: {out[:200]!r}") from None
        if not isinstance(result, dict):
            raise CniError(ptype, 999, "ADD result is not an object")
        return result

    def add(self, container_id: str, netns: str, ifname: str = "eth0") -> CniResult:
        """ADD through the chain; on a failure the plugins already run are DELeted again."""
        prev: dict[str, Any] | None = None
        done: list[Mapping[str, Any]] = []
        try:
            for plugin in self.conflist["plugins"]:
                res = self._exec("ADD", plugin, container_id, netns, ifname, prev)
                done.append(plugin)
                prev = res
        except CniError:
            for plugin in reversed(done):
                try:
                    self._exec("DEL", plugin, container_id, netns, ifname, prev)
                except CniError:
                    pass
            raise
        if prev is None:
            raise CniError("chain", 999, "empty plugin chain")
        try:
            return parse_result(prev)
        except ValueError as exc:
            raise CniError(str(self.conflist["plugins"][-1].get("type")), 999, str(exc)) from None

    def check(self, container_id: str, netns: str, cached: Mapping[str, Any], ifname: str = "eth0") -> None:
        """CHECK every plugin against the cached result (raises CniError on a mismatch)."""
        for plugin in self.conflist["plugins"]:
            self._exec("CHECK", plugin, container_id, netns, ifname, cached)

    def delete(
        self, container_id: str, netns: str, cached: Mapping[str, Any] | None, ifname: str = "eth0"
    ) -> list[str]:
        """DEL in reverse order; every plugin runs even if one fails. Returns the error messages.

        ``netns`` may be "" when the namespace is gone: plugins then release only host state.
        """
        errors = []
        for plugin in reversed(list(self.conflist["plugins"])):
            try:
                self._exec("DEL", plugin, container_id, netns, ifname, cached)
            except CniError as exc:
                errors.append(str(exc))
        return errors
