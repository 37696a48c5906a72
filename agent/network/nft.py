# SPDX-License-Identifier: Apache-2.0
"""Least-privilege nftables rules inside a container's network namespace (table ``inet
riskguard_lp``), as libnftables JSON.

The table has an input and an output chain (filter, priority 0, policy accept): loopback and
established/related traffic pass, IPv6 neighbour discovery passes, each allowlist rule accepts,
and the last rule counts what is left in a named counter (``denied_in`` / ``denied_out``) and
drops it in enforce mode (observe mode only counts). While a container is learning, new flows
are also added to dynamic sets (``learn_egress4``/``learn_egress6``/``learn_ingress``), so every
flow the kernel sees is learned, however short.

Applying replaces the whole table in one transaction (add, delete, add …), so reapplying after
an agent restart is idempotent. Entering the netns and the libnftables basics live in
``agent.runtime.netns``, shared with network quarantine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.network.allowlist import Allowlist
from agent.runtime.netns import in_netns, nft_context, nft_json
from agent.runtime.netns import table_exists as _table_exists
from agent.settings.network import EgressRule, IngressRule

TABLE = "riskguard_lp"
FAMILY = "inet"
ND_TYPES = ["nd-neighbor-solicit", "nd-neighbor-advert", "nd-router-solicit", "nd-router-advert"]


# --- generation (pure) ----------------------------------------------------------------------
def _match(left: Any, right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def _payload(protocol: str, fld: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": fld}}


def _addr_match(cidr: str, direction: str) -> list[dict[str, Any]]:
    net = ipaddress.ip_network(cidr, strict=False)
    if net.prefixlen == 0:
        # 0.0.0.0/0 (or ::/0) means "anywhere": no address match, both families.
        return []
    proto = "ip" if net.version == 4 else "ip6"
    right: Any = str(net.network_address)
    if net.prefixlen != net.max_prefixlen:
        right = {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
    return [_match(_payload(proto, direction), right)]


def _proto_match(protocol: str, ports: tuple[int, ...]) -> list[list[dict[str, Any]]]:
    """Expression lists (one rule each) for a protocol + ports; icmp covers icmp and icmpv6."""
    if protocol == "any":
        if not ports:
            return [[]]
        return [e for p in ("tcp", "udp") for e in _proto_match(p, ports)]
    if protocol == "icmp":
        return [[_match(_meta("l4proto"), {"set": ["icmp", "ipv6-icmp"]})]]
    expr = [_match(_meta("l4proto"), protocol)]
    if ports:
        right: Any = ports[0] if len(ports) == 1 else {"set": list(ports)}
        expr.append(_match(_payload("th", "dport"), right))
    return [expr]


def _rule(chain: str, expr: list[dict[str, Any]], comment: str = "") -> dict[str, Any]:
    rule: dict[str, Any] = {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr}
    if comment:
        rule["comment"] = comment
    return {"add": {"rule": rule}}


def _allow_rules(chain: str, rules: tuple[EgressRule, ...] | tuple[IngressRule, ...]) -> list[dict[str, Any]]:
    direction = "daddr" if chain == "output" else "saddr"
    return [
        _rule(chain, [*_addr_match(r.cidr, direction), *proto_expr, {"accept": None}], "allow")
        for r in rules
        for proto_expr in _proto_match(r.protocol, r.ports)
    ]


def ruleset(allow: Allowlist | None, mode: str, learning: bool = False) -> list[dict[str, Any]]:
    """The libnftables JSON commands that (re)create the table for ``allow`` in ``mode``.

    ``allow`` None with ``learning`` gives a table that only learns and counts (nothing allowed
    yet, nothing dropped: learning always observes).
    """
    allow = allow or Allowlist()
    enforce = mode == "enforce" and not learning
    t = {"family": FAMILY, "name": TABLE}
    cmds: list[dict[str, Any]] = [
        {"add": {"table": t}},
        {"delete": {"table": t}},
        {"add": {"table": t}},
    ]
    cmds += [{"add": {"counter": {"family": FAMILY, "table": TABLE, "name": n}}} for n in ("denied_in", "denied_out")]
    if learning:
        for name, typ in (
            ("learn_egress4", ["ipv4_addr", "inet_proto", "inet_service"]),
            ("learn_egress6", ["ipv6_addr", "inet_proto", "inet_service"]),
            ("learn_ingress", ["inet_proto", "inet_service"]),
        ):
            cmds.append(
                {
                    "add": {
                        "set": {
                            "family": FAMILY,
                            "table": TABLE,
                            "name": name,
                            "type": typ,
                            "size": 4096,
                        }
                    }
                }
            )
    for chain, hook in (("input", "input"), ("output", "output")):
        cmds.append(
            {
                "add": {
                    "chain": {
                        "family": FAMILY,
                        "table": TABLE,
                        "name": chain,
                        "type": "filter",
                        "hook": hook,
                        "prio": 0,
                        "policy": "accept",
                    }
                }
            }
        )
        lo = "iif" if chain == "input" else "oif"
        cmds.append(_rule(chain, [_match(_meta(lo), "lo"), {"accept": None}], "loopback"))
        cmds.append(
            _rule(
                chain,
                [_match({"ct": {"key": "state"}}, ["established", "related"], "in"), {"accept": None}],
                "established",
            )
        )
        cmds.append(
            _rule(
                chain,
                [
                    _match(_meta("l4proto"), "ipv6-icmp"),
                    _match(_payload("icmpv6", "type"), {"set": ND_TYPES}),
                    {"accept": None},
                ],
                "neighbour discovery",
            )
        )
        if learning:
            new = _match({"ct": {"key": "state"}}, "new", "in")
            l4 = _match(_meta("l4proto"), {"set": ["tcp", "udp"]})
            key = [_meta("l4proto"), _payload("th", "dport")]
            if chain == "output":
                for fam, setname, proto in (("ipv4", "learn_egress4", "ip"), ("ipv6", "learn_egress6", "ip6")):
                    cmds.append(
                        _rule(
                            chain,
                            [
                                new,
                                _match(_meta("nfproto"), fam),
                                l4,
                                {
                                    "set": {
                                        "op": "add",
                                        "elem": {"concat": [_payload(proto, "daddr"), *key]},
                                        "set": f"@{setname}",
                                    }
                                },
                            ],
                            "learn",
                        )
                    )
            else:
                cmds.append(
                    _rule(
                        chain,
                        [new, l4, {"set": {"op": "add", "elem": {"concat": key}, "set": "@learn_ingress"}}],
                        "learn",
                    )
                )
        cmds.extend(_allow_rules(chain, allow.egress if chain == "output" else allow.ingress))
        counter = "denied_out" if chain == "output" else "denied_in"
        final: list[dict[str, Any]] = [{"counter": counter}]
        if enforce:
            final.append({"drop": None})
        cmds.append(_rule(chain, final, "deny" if enforce else "would deny"))
    return cmds


def delete_commands() -> list[dict[str, Any]]:
    """Commands that remove the table whether or not it exists (add-then-delete)."""
    t = {"family": FAMILY, "name": TABLE}
    return [{"add": {"table": t}}, {"delete": {"table": t}}]


# --- reading (pure) -------------------------------------------------------------------------
def parse_table(listing: Mapping[str, Any]) -> dict[str, Any]:
    """Counters, learned flows and rule count from a ``list table`` JSON answer."""
    counters: dict[str, dict[str, int]] = {}
    egress: list[tuple[str, str, int]] = []
    ingress: list[tuple[str, int]] = []
    rules = 0
    for obj in listing.get("nftables") or ():
        if not isinstance(obj, Mapping):
            continue
        if "counter" in obj:
            c = obj["counter"]
            counters[str(c.get("name"))] = {"packets": int(c.get("packets", 0)), "bytes": int(c.get("bytes", 0))}
        elif "rule" in obj:
            rules += 1
        elif "set" in obj:
            s = obj["set"]
            for elem in s.get("elem") or ():
                # Elements of a dynamic set come wrapped as {"elem": {"val": …}} (with expiry
                # or counters) or bare; the value of a concatenated key is {"concat": [...]}.
                val = elem
                if isinstance(val, Mapping) and "elem" in val:
                    val = val["elem"].get("val", val["elem"])
                parts = val.get("concat") if isinstance(val, Mapping) else None
                if not isinstance(parts, list):
                    continue
                try:
                    if s.get("name", "").startswith("learn_egress") and len(parts) == 3:
                        egress.append((str(parts[0]), str(parts[1]), int(parts[2])))
                    elif s.get("name") == "learn_ingress" and len(parts) == 2:
                        ingress.append((str(parts[0]), int(parts[1])))
                except (TypeError, ValueError):
                    continue
    return {"counters": counters, "learned_egress": egress, "learned_ingress": ingress, "rules": rules}


# --- applying (in a netns) ------------------------------------------------------------------
def table_exists() -> bool:
    return _table_exists(TABLE, FAMILY)


def _read() -> dict[str, Any] | None:
    import json

    n = nft_context()
    rc, out, _err = n.cmd(f"list table {FAMILY} {TABLE}")
    if rc != 0:
        return None
    parsed = parse_table(json.loads(out))
    n.set_json_output(False)
    rc, text, _err = n.cmd(f"list table {FAMILY} {TABLE}")
    parsed["text"] = str(text) if rc == 0 else ""
    return parsed


def apply(netns: Path, commands: list[dict[str, Any]]) -> None:
    """Apply ``commands`` (from ``ruleset``) in the netns at ``netns``."""
    in_netns(netns, lambda: nft_json(commands))


def remove(netns: Path) -> bool:
    """Remove the table from the netns; False when it was not there."""

    def run() -> bool:
        if not table_exists():
            return False
        nft_json(delete_commands())
        return True

    return in_netns(netns, run)


def read(netns: Path) -> dict[str, Any] | None:
    """The table as applied (counters, learned flows, text listing), or None when absent."""
    return in_netns(netns, _read)
