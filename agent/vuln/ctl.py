# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl scan ID [--json] [--severity S,..] [--exit-code N]``: scan a container now
through the running agent.

The agent refuses when its vulnerability database is empty (exit 1 with its message); a stale
database is a warning on stderr above the report. ``--severity`` keeps those severities in the
list (as ``riskguard-agent scan``), ``--exit-code N`` exits N when one of them was found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent.console import print_json, print_table
from agent.control import ControlError, call
from agent.vuln.report import LEVELS, parse_severities

DEFAULT_SOCKET = Path("/run/riskguard/agent.sock")


def cmd_scan(args: argparse.Namespace) -> int:
    sock = Path(getattr(args, "socket", None) or DEFAULT_SOCKET)
    try:
        severities = parse_severities(args.severity)
    except ValueError as exc:
        print(f"error: --severity: {exc}", file=sys.stderr)
        return 2
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
    kept = [
        {**r, "severity": r.get("severity") or "unknown"}
        for r in result.get("vulnerabilities") or []
        if (r.get("severity") or "unknown") in severities
    ]
    rc = int(args.exit_code) if kept else 0
    if args.json:
        print_json({**result, "vulnerabilities": kept})
        return rc
    s = result.get("summary") or {}
    print(
        f"{s.get('container_name', args.id)} ({s.get('image', '')}): {s.get('os') or 'unknown OS'}, "
        f"{s.get('packages', 0)} packages, {s.get('vulnerabilities', 0)} vulnerabilities "
        f"{s.get('by_severity', {})}, {s.get('fixable', 0)} fixable"
    )
    if kept:
        print()
        print_table(kept, ["package", "version", "vulnerability", "severity", ("fixed_version", "fixed")])
    services = result.get("services") or []
    if services:
        print()
        print_table(services, ["proto", "address", "port", ("loopback_only", "loopback")])
    return rc


def register(subparsers: Any) -> None:
    """Add ``scan ID [--json]``."""
    p = subparsers.add_parser("scan", help="scan a container for vulnerable packages now")
    p.add_argument("id", help="container id, id prefix or name")
    p.add_argument("--json", action="store_true", help="print the agent's result as JSON")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the agent")
    p.add_argument(
        "--severity",
        default=",".join(s.upper() for s in LEVELS),
        help="comma-separated severities to list (default all: UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL)",
    )
    p.add_argument(
        "--exit-code", type=int, default=0, help="exit with this code when a listed vulnerability was found (default 0)"
    )
    p.set_defaults(func=cmd_scan)
