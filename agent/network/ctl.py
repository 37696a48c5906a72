# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl netpolicy ID [--json] [--export networkpolicy [--format yaml|json]]``.

Shows a container's allowlist (declared or learned), the proposal learned for it, the rules as
read back from its network namespace and the deny counters; ``--export networkpolicy`` prints the
equivalent Kubernetes NetworkPolicy instead. A container without an allowlist (or with an empty
one) would export as a deny-all policy: that is refused (exit 2) unless ``--deny-all`` says it
is meant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.console import print_json
from agent.control import ControlError, call
from agent.network.allowlist import Allowlist, network_policy, target_for

DEFAULT_SOCKET = Path("/run/riskguard/agent.sock")


def export(result: dict[str, Any], use_proposal: bool = False) -> dict[str, Any]:
    """The NetworkPolicy for a ``netpolicy`` control result (its allowlist, else its proposal)."""
    raw = result.get("allowlist")
    if raw is None or use_proposal:
        raw = result.get("proposal") or raw
    allow = Allowlist.from_dict(raw or {"source": "none"})
    c = result.get("container") or {}
    return network_policy(allow, target_for(str(c.get("name", "")), c.get("labels") or {}))


def allows_nothing(result: dict[str, Any], use_proposal: bool = False) -> bool:
    """True when the exported policy would allow no traffic at all (no allowlist, or one with no
    egress and no ingress rule)."""
    raw = result.get("allowlist")
    if raw is None or use_proposal:
        raw = result.get("proposal") or raw
    return not raw or not (raw.get("egress") or raw.get("ingress"))


def _rules(rows: list[dict[str, Any]], kind: str) -> list[str]:
    out = []
    for r in rows:
        ports = ",".join(str(p) for p in r.get("ports") or []) or "any"
        out.append(f"  {kind:7} {r.get('protocol', 'tcp'):4} {r.get('cidr', '')} ports {ports}")
    return out


def cmd_netpolicy(args: argparse.Namespace) -> int:
    sock = Path(getattr(args, "socket", None) or DEFAULT_SOCKET)
    try:
        result = call(sock, "netpolicy", {"id": args.id}, timeout=args.timeout)
    except ControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.export == "networkpolicy":
        if allows_nothing(result, args.proposal) and not args.deny_all:
            what = "learned proposal" if args.proposal else "allowlist"
            print(
                f"error: {args.id} has no {what} (or an empty one): the NetworkPolicy would deny all its "
                "traffic; give --deny-all if that is what you want, or declare/learn an allowlist first",
                file=sys.stderr,
            )
            return 2
        policy = export(result, use_proposal=args.proposal)
        if args.json or args.format == "json":
            json.dump(policy, sys.stdout, indent=2)  # manifest order kept (apiVersion, kind, ...)
            sys.stdout.write("\n")
        else:
            import yaml

            sys.stdout.write(yaml.safe_dump(policy, sort_keys=False))
        return 0
    if args.json:
        print_json(result)
        return 0
    c = result.get("container") or {}
    print(f"{c.get('name', args.id)} ({str(c.get('id', ''))[:12]}, {c.get('image', '')}): rules {result.get('mode')}")
    m = result.get("managed") or {}
    if m:
        print(
            f"managed: {m.get('backend')} {m.get('address')}/{m.get('prefixlen')} via {m.get('gateway')} "
            f"on {m.get('bridge')} ({m.get('host_ifname')})"
        )
    if result.get("refused"):
        print(f"rules refused: {result['refused']}")
    for title, key in (("allowlist", "allowlist"), ("proposal (learned, not applied)", "proposal")):
        a = result.get(key)
        if not a or (key == "proposal" and result.get("allowlist") == a):
            continue
        print(f"{title}: source {a.get('source')} mode {a.get('mode')} {a.get('selector', '')}".rstrip())
        lines = _rules(a.get("egress") or [], "egress") + _rules(a.get("ingress") or [], "ingress")
        print("\n".join(lines) if lines else "  (nothing allowed)")
    counters = result.get("counters") or {}
    if counters:
        parts = [f"{k} {v.get('packets', 0)} packets / {v.get('bytes', 0)} bytes" for k, v in sorted(counters.items())]
        print("denied counters: " + ", ".join(parts))
    if result.get("rules"):
        print("rules as applied:")
        print(result["rules"].rstrip())
    sel = result.get("selinux") or {}
    if sel:
        print(f"selinux policy: {sel.get('file')} compiled={sel.get('compiled')} loaded={sel.get('loaded')}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``netpolicy ID [--json] [--export networkpolicy] [--format yaml|json] [--proposal]``."""
    p = subparsers.add_parser("netpolicy", help="a container's allowlist, applied rules and deny counters")
    p.add_argument("id", help="container id, id prefix or name")
    p.add_argument("--json", action="store_true", help="print the agent's answer (or the export) as JSON")
    p.add_argument("--export", choices=["networkpolicy"], help="print the equivalent Kubernetes NetworkPolicy")
    p.add_argument(
        "--deny-all",
        action="store_true",
        help="with --export: allow exporting a policy that denies all traffic (no or an empty allowlist)",
    )
    p.add_argument("--format", choices=["yaml", "json"], default="yaml", help="format of --export (default yaml)")
    p.add_argument(
        "--proposal", action="store_true", help="export the learned proposal instead of the applied allowlist"
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the agent")
    p.set_defaults(func=cmd_netpolicy)
