# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl detectors``: the running agent's rule detectors and their finding counts."""

from __future__ import annotations

import argparse
from typing import Any

from agent.control import call


def cmd_detectors(args: argparse.Namespace) -> int:
    from agent.console import print_json, print_table

    rows = call(args.socket, "detectors.list")
    if args.json:
        print_json(rows)
        return 0
    print_table(
        [{**r, "enabled": "yes" if r["enabled"] else "no"} for r in rows],
        ["id", "name", "mitre", "severity", "enabled", "findings"],
    )
    return 0


def register(subparsers: Any) -> None:
    """Add ``detectors [--json]``."""
    p = subparsers.add_parser("detectors", help="rule detectors of the running agent: enabled, findings")
    p.add_argument("--json", action="store_true", help="print the detectors as JSON")
    p.set_defaults(func=cmd_detectors)
