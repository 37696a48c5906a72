# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl logs status | rules``: the running agent's log tailers and analysis rules."""

from __future__ import annotations

import argparse
from typing import Any

from agent.control import call


def cmd_status(args: argparse.Namespace) -> int:
    from agent.console import print_json, print_table

    st = call(args.socket, "logs.status")
    if args.json:
        print_json(st)
        return 0
    tail = st["tail"]
    totals = tail.get("totals", {})
    a = st["analysis"]
    print(
        f"tailers {tail['tailers']}  lines {totals.get('lines', 0)}  published {st['published']}  "
        f"findings {st['findings']}  templates {a['templates']}  open sessions {a['open_sessions']}"
    )
    print(
        "dropped: "
        + "  ".join(f"{k} {totals.get(k, 0)}" for k in ("rate_dropped", "truncated", "malformed", "oversized_records"))
        + f"  publish {st['publish_dropped']}"
    )
    if tail.get("unsupported_drivers"):
        print("unsupported log drivers: " + ", ".join(f"{d} x{n}" for d, n in tail["unsupported_drivers"].items()))
    rows = [{"log": k[:40], **v} for k, v in tail.get("per_log", {}).items()]
    if rows:
        print_table(rows, ["log", "lines", "truncated", "rate_dropped", "malformed", "rotations", "truncations"])
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from agent.console import print_json, print_table

    r = call(args.socket, "logs.rules")
    if args.json:
        print_json(r)
        return 0
    print_table(
        [{"id": x["id"], "title": x["title"], "mitre": x["mitre"]} for x in r["sequences"]["loaded"]],
        ["id", "title", "mitre"],
    )
    print()
    print_table(  # a Sigma id is a UUID: its first 8 characters here (the JSON has it whole)
        [{"id": x["id"][:8], "logsource": x["logsource"], "title": x["title"]} for x in r["sigma"]["loaded"]],
        [("id", "sigma id"), "logsource", "title"],
    )
    for where, why in {**r["sequences"]["errors"], **r["sigma"]["unsupported"]}.items():
        print(f"NOT LOADED {where}: {why}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``logs status|rules [--json]``."""
    p = subparsers.add_parser("logs", help="container log tailing and log/Sigma rules of the running agent")
    sub = p.add_subparsers(dest="logs_command", required=True)
    s = sub.add_parser("status", help="tailers, counters, drops, templates, sessions")
    s.add_argument("--json", action="store_true", help="print the status as JSON")
    s.set_defaults(func=cmd_status)
    r = sub.add_parser("rules", help="sequence and Sigma rules loaded, and every rule not loaded with why")
    r.add_argument("--json", action="store_true", help="print the rules as JSON")
    r.set_defaults(func=cmd_rules)
