# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl plans``: the stored patch plans (newest first), as a table or JSON.

A plan made in observe mode is marked "not applied (observe mode)"; in enforce mode a plan says
whether the Kubernetes patch was applied or only dry-run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from agent.console import note_cut, print_json, print_table
from agent.control import call

DEFAULT_SOCKET = Path("/run/riskguard/agent.sock")


def applied(plan: dict[str, Any]) -> str:
    """How far the plan went: ``not applied (observe mode)``, ``dry run`` or ``applied``."""
    if plan.get("observed"):
        return "not applied (observe mode)"
    k = plan.get("kubernetes") or {}
    if plan.get("applied") or plan.get("status") == "applied":
        return "applied"
    if k.get("new_image"):
        return "dry run" if k.get("dry_run") else "not applied"
    return "not applied (no workload to patch)"


def cmd_plans(args: argparse.Namespace) -> int:
    """Print the plans the agent stored; exit 0."""
    params: dict[str, Any] = {"limit": args.limit, "with_total": True}
    if args.container:
        params["container"] = args.container
    if args.id:
        params["id"] = args.id
    answer = call(getattr(args, "socket", None) or DEFAULT_SOCKET, "plans", params)
    plans, total = (answer["plans"], answer["total"]) if isinstance(answer, dict) else (answer, None)
    note_cut(len(plans), total, "patch plans")
    if args.json:
        print_json(plans)
        return 0
    if not plans:
        print("no patch plans")
        return 0
    for p in plans:
        k = p.get("kubernetes") or {}
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(p.get("ts", 0))))
        print(f"plan {p['id'][:12]}  {when}  {p['container_name'] or p['container_id'][:12]}  {p['status']}")
        print(f"  {applied(p)}; image: {p['image']}")
        if k:
            chain = " → ".join(f"{c['kind']}/{c['name']}" for c in k.get("owner_chain") or [])
            print(f"  owners: {chain}")
            if k.get("new_image"):
                mode = "dry run" if k.get("dry_run") else "applied"
                target = f"{k['target']['kind']}/{k['target']['name']}"
                print(f"  {target}: {k['current_image']} → {k['new_image']} ({mode})")
        rows = [
            {
                "package": pkg["name"],
                "installed": pkg["installed"] or "?",
                "fixed": pkg["fixed"],
                "vulnerabilities": ", ".join(pkg.get("vulns") or []),
            }
            for pkg in p.get("packages") or []
        ]
        if rows:
            print_table(rows, ["package", "installed", "fixed", "vulnerabilities"])
        for cmd in p.get("commands") or []:
            print(f"    $ {cmd}")
        if p.get("detail"):
            print(f"  {p['detail']}")
        print()
    return 0


def register(subparsers: Any) -> None:
    """Add ``plans [--container ID|NAME] [--id PLAN] [--limit N] [--json]``."""
    p = subparsers.add_parser("plans", help="patch plans for vulnerable containers (observe mode: not applied)")
    p.add_argument("--container", default="", help="only plans of this container (id prefix or name)")
    p.add_argument("--id", default="", help="only the plan with this id (prefix)")
    p.add_argument("--limit", type=int, default=50, help="newest plans shown (default 50)")
    p.add_argument("--json", action="store_true", help="print the plans as JSON")
    p.set_defaults(func=cmd_plans)
