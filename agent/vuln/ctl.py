# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl scan ID [--json]``: scan a container now through the running agent."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.control import ControlError, call

DEFAULT_SOCKET = Path("/run/riskguard/agent.sock")


def cmd_scan(args: argparse.Namespace) -> int:
    sock = Path(getattr(args, "socket", None) or DEFAULT_SOCKET)
    try:
        result = call(sock, "scan", {"id": args.id}, timeout=args.timeout)
    except ControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    from agent.vuln.cli import print_table

    s = result.get("summary") or {}
    print(
        f"{s.get('container_name', args.id)} ({s.get('image', '')}): {s.get('os') or 'unknown OS'}, "
        f"{s.get('packages', 0)} packages, {s.get('vulnerabilities', 0)} vulnerabilities "
        f"{s.get('by_severity', {})}, {s.get('fixable', 0)} fixable"
    )
    rows = result.get("vulnerabilities") or []
    if rows:
        print()
        print_table(rows, ["package", "version", "vulnerability", "severity", "fixed_version"])
    services = result.get("services") or []
    if services:
        print()
        print_table(services, ["proto", "address", "port", "loopback_only"])
    return 0


def register(subparsers: Any) -> None:
    """Add ``scan ID [--json]``."""
    p = subparsers.add_parser("scan", help="scan a container for vulnerable packages now")
    p.add_argument("id", help="container id, id prefix or name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the agent")
    p.set_defaults(func=cmd_scan)
