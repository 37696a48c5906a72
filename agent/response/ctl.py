# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl findings | isolate ID | release ID | actions``: the response's operator commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from agent.control import call
from agent.textsafe import escape_terminal as esc

DEFAULT_SOCKET = Path("/run/riskguard/agent.sock")


def _socket(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "socket", None) or os.environ.get("RISKGUARD_SOCKET") or DEFAULT_SOCKET)


def _json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))


SEVERITIES = ("info", "low", "medium", "high", "critical")


def cmd_findings(args: argparse.Namespace) -> int:
    """List stored findings (newest first) with their verdicts."""
    params: dict[str, Any] = {"limit": args.limit}
    for key in ("container", "source", "severity"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    rows = call(_socket(args), "findings", params)
    if args.json:
        _json(rows)
        return 0
    if not rows:
        print("no findings")
        return 0
    for r in rows:
        v = r.get("verdict") or {}
        verdict = v.get("action", "")
        if v.get("action_id"):
            verdict += f" ({v.get('result', '')})"
        elif verdict not in ("", "none", "alert") and not v.get("enforce"):
            verdict += " (observed)"
        sev = SEVERITIES[r["severity"]] if 0 <= int(r["severity"]) < len(SEVERITIES) else r["severity"]
        who = esc(r["container_name"] or r["container_id"][:12] or "host")
        line = f"{_when(r['ts'])}  {sev:<8}  {r['source']:<13}  {r['detector_id']:<10}  {who:<20}  {verdict}"
        print(esc(line))  # every stored value may come from a container: one line each
        print(f"    {esc(r['summary'])}")
    return 0


def _print_action(rec: dict[str, Any]) -> None:
    dry = " (dry run)" if rec.get("dry_run") else ""
    name = rec.get("container_name") or rec["container_id"][:12]
    print(esc(f"{rec['action']} {name}: {rec['phase']}{dry}  [{rec.get('method', '')}] {rec.get('detail', '')}"))


def cmd_isolate(args: argparse.Namespace) -> int:
    """Freeze or quarantine a container now."""
    params: dict[str, Any] = {"id": args.id, "action": args.action}
    if args.method:
        params["method"] = args.method
    if args.dry_run:
        params["dry_run"] = True
    rec = call(_socket(args), "isolate", params)
    if args.json:
        _json(rec)
    else:
        _print_action(rec)
    return 0 if rec.get("phase") == "confirmed" else 1


def cmd_release(args: argparse.Namespace) -> int:
    """Undo every isolation in effect on a container."""
    recs = call(_socket(args), "release", {"id": args.id})
    if args.json:
        _json(recs)
    else:
        for rec in recs:
            _print_action(rec)
    return 0 if all(r.get("phase") == "released" for r in recs) else 1


def cmd_actions(args: argparse.Namespace) -> int:
    """List recorded response actions (newest first) with their phase history."""
    params: dict[str, Any] = {"limit": args.limit}
    if args.container:
        params["container"] = args.container
    recs = call(_socket(args), "actions", params)
    if args.json:
        _json(recs)
        return 0
    if not recs:
        print("no actions")
    for rec in recs:
        active = "ACTIVE " if rec.get("active") else ""
        print(f"{_when(rec['created'])}  {active}", end="")
        _print_action(rec)
        print(f"    by {rec['actor']}: " + " → ".join(h["phase"] for h in rec.get("history") or []))
    return 0


def register(subparsers: Any) -> None:
    """Add ``findings``, ``isolate``, ``release`` and ``actions`` to riskguardctl."""
    p = subparsers.add_parser("findings", help="stored findings and their verdicts")
    p.add_argument("--container", help="container id (prefix) or name")
    p.add_argument("--source", help="behavior, syscall_chain, logs, audit, network, vuln, rule …")
    p.add_argument("--severity", choices=SEVERITIES, help="minimum severity")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_findings)

    p = subparsers.add_parser("isolate", help="freeze or quarantine a container now")
    p.add_argument("id", help="container id (prefix) or name")
    # Any isolation action the agent has (freeze, quarantine): the agent checks the name.
    p.add_argument("--action", default="freeze", help="freeze | quarantine")
    p.add_argument("--method", help="freeze: auto|v1|v2; quarantine: auto|cgroup|netns|docker|kubernetes")
    p.add_argument("--dry-run", action="store_true", help="record what would be done, change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_isolate)

    p = subparsers.add_parser("release", help="undo every isolation in effect on a container")
    p.add_argument("id", help="container id (prefix) or name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_release)

    p = subparsers.add_parser("actions", help="recorded response actions and their phases")
    p.add_argument("--container", help="container id (prefix) or name")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_actions)
