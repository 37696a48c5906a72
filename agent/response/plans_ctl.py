# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl plans``: the stored patch plans (newest first), as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from agent.control import call

DEFAULT_SOCKET = Path("/run/riskguard/agent.sock")


def cmd_plans(args: argparse.Namespace) -> int:
    """Print the plans the agent stored; exit 0."""
    params: dict[str, Any] = {"limit": args.limit}
    if args.container:
        params["container"] = args.container
    if args.id:
        params["id"] = args.id
    plans = call(getattr(args, "socket", None) or DEFAULT_SOCKET, "plans", params)
    if args.json:
        json.dump(plans, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
        return 0
    if not plans:
        print("no patch plans")
        return 0
    for p in plans:
        k = p.get("kubernetes") or {}
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(p.get("ts", 0))))
        print(f"{p['id'][:12]}  {when}  {p['container_name'] or p['container_id'][:12]}  {p['status']}")
        print(f"  image: {p['image']}")
        if k:
            chain = " → ".join(f"{c['kind']}/{c['name']}" for c in k.get("owner_chain") or [])
            print(f"  owners: {chain}")
            if k.get("new_image"):
                mode = "dry run" if k.get("dry_run") else "applied"
                target = f"{k['target']['kind']}/{k['target']['name']}"
                print(f"  {target}: {k['current_image']} → {k['new_image']} ({mode})")
        for pkg in p.get("packages") or []:
            vulns = ", ".join(pkg.get("vulns") or [])
            print(f"  {pkg['name']} {pkg['installed'] or '?'} → {pkg['fixed']}  {vulns}")
        for cmd in p.get("commands") or []:
            print(f"    $ {cmd}")
        if p.get("detail"):
            print(f"  {p['detail']}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``plans [--container ID|NAME] [--id PLAN] [--limit N] [--json]``."""
    p = subparsers.add_parser("plans", help="patch plans for vulnerable containers")
    p.add_argument("--container", default="", help="only plans of this container (id prefix or name)")
    p.add_argument("--id", default="", help="only the plan with this id (prefix)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plans)
