# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent detectors list``: the rule detectors this build ships (no daemon needed)."""

from __future__ import annotations

import argparse
from typing import Any

from agent.console import print_json, print_table
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
        print_json(rows)
    elif args.format == "markdown":
        print(_markdown(rows))
    else:
        print_table(
            [{**r, "events": ",".join(r["events"])} for r in rows], ["id", "name", "mitre", "severity", "events"]
        )
    return 0


def register(subparsers: Any) -> None:
    """Add ``detectors list``."""
    p = subparsers.add_parser("detectors", help="rule detectors: list")
    sub = p.add_subparsers(dest="detectors_command", metavar="COMMAND", required=True)
    q = sub.add_parser("list", help="every rule detector: id, name, MITRE technique, events")
    q.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="table (default), json, or the markdown table docs/detectors.md embeds",
    )
    q.set_defaults(func=cmd_list)
