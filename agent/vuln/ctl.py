# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl scan ID [--json]``: scan a container now through the running agent.

The agent refuses when its vulnerability database is empty (exit 1 with its message); a stale
database is a warning on stderr above the report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.console import print_json, print_table
from agent.control import ControlError, call

DEFAULT_SOCKET = Path("/run/riskguard/agent.sock")


def cmd_scan(args: argparse.Namespace) -> int:
    sock = Path(getattr(args, "socket", None) or DEFAULT_SOCKET)
    try:
        result = call(sock, "scan", {"id": args.id}, timeout=args.timeout)
    except ControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    db = result.get("db") or {}
    if db.get("stale"):
        days = float(db.get("age_seconds") or 0) / 86400
        print(
            f"warning: the agent's vulnerability database was last imported {days:.1f} days ago: "
            "vulnerabilities published since are missing from this report",
            file=sys.stderr,
        )
    if args.json:
        print_json(result)
        return 0
    s = result.get("summary") or {}
    print(
        f"{s.get('container_name', args.id)} ({s.get('image', '')}): {s.get('os') or 'unknown OS'}, "
        f"{s.get('packages', 0)} packages, {s.get('vulnerabilities', 0)} vulnerabilities "
        f"{s.get('by_severity', {})}, {s.get('fixable', 0)} fixable"
    )
    rows = [{**r, "severity": r.get("severity") or "unknown"} for r in result.get("vulnerabilities") or []]
    if rows:
        print()
        print_table(rows, ["package", "version", "vulnerability", "severity", ("fixed_version", "fixed")])
    services = result.get("services") or []
    if services:
        print()
        print_table(services, ["proto", "address", "port", ("loopback_only", "loopback")])
    return 0


def register(subparsers: Any) -> None:
    """Add ``scan ID [--json]``."""
    p = subparsers.add_parser("scan", help="scan a container for vulnerable packages now")
    p.add_argument("id", help="container id, id prefix or name")
    p.add_argument("--json", action="store_true", help="print the agent's result as JSON")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the agent")
    p.set_defaults(func=cmd_scan)
