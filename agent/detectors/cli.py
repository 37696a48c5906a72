# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent detectors list``: the rule detectors this build ships (no daemon needed)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent.detectors.registry import DETECTORS


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| id | name | MITRE ATT&CK | events | severity | what triggers it | false-positive notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        events = ", ".join(f"`{e}`" for e in r["events"])
        lines.append(
            f"| {r['id']} | `{r['name']}` | {r['mitre']} | {events} | {r['severity']} | "
            f"{r['description']} | {r['false_positives']} |"
        )
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    rows = [d.describe() for d in DETECTORS]
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.format == "markdown":
        print(_markdown(rows))
    else:
        for r in rows:
            print(f"{r['id']}  {r['name']:<30} {r['mitre']:<10} {r['severity']:<8} {','.join(r['events'])}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``detectors list``."""
    p = subparsers.add_parser("detectors", help="rule detectors: list")
    sub = p.add_subparsers(dest="detectors_command", metavar="COMMAND", required=True)
    q = sub.add_parser("list", help="every rule detector: id, name, MITRE technique, events")
    q.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    q.set_defaults(func=cmd_list)
