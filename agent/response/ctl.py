# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl findings | isolate ID | release ID | actions``: the response's operator commands."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from agent.console import note_cut, note_limit, print_json, print_table, severity_name
from agent.control import call
from agent.textsafe import escape_terminal as esc

DEFAULT_SOCKET = Path("/run/riskguard/agent.sock")


def _socket(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "socket", None) or os.environ.get("RISKGUARD_SOCKET") or DEFAULT_SOCKET)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))


SEVERITIES = ("info", "low", "medium", "high", "critical")


def _verdict(r: dict[str, Any]) -> str:
    v = r.get("verdict") or {}
    verdict = str(v.get("action", ""))
    if v.get("action_id"):
        verdict += f" ({v.get('result', '')})"
    elif verdict not in ("", "none", "alert") and not v.get("enforce"):
        verdict += " (observed)"
    return verdict


def cmd_findings(args: argparse.Namespace) -> int:
    """List stored findings (newest first) with their verdicts; say "N of M" when cut."""
    params: dict[str, Any] = {"limit": args.limit, "with_total": True}
    for key in ("container", "source", "severity"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    answer = call(_socket(args), "findings", params)
    rows, total = (answer["findings"], answer["total"]) if isinstance(answer, dict) else (answer, None)
    for r in rows:
        r["severity"] = severity_name(r.get("severity"))
    if args.json:
        print_json(rows)
        note_cut(len(rows), total, "findings")
        return 0
    table = [
        {
            "time": _when(r["ts"]),
            "severity": r["severity"],
            "source": r["source"],
            "detector": r["detector_id"],
            "container": r["container_name"] or r["container_id"][:12] or "host",
            "verdict": _verdict(r),
            "summary": r["summary"],
        }
        for r in rows
    ]
    print_table(
        table,
        ["time", ("severity", "sev"), "source", "detector", "container", "verdict", "summary"],
        total=total,
        what="findings",
        empty="no findings",
    )
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
        print_json(rec)
    else:
        _print_action(rec)
    return 0 if rec.get("phase") == "confirmed" else 1


def cmd_release(args: argparse.Namespace) -> int:
    """Undo every isolation in effect on a container."""
    recs = call(_socket(args), "release", {"id": args.id})
    if args.json:
        print_json(recs)
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
    note_limit(len(recs), args.limit, "actions")
    if args.json:
        print_json(recs)
        return 0
    table = [
        {
            "time": _when(rec["created"]),
            "action": rec["action"] + (" (dry run)" if rec.get("dry_run") else ""),
            "container": rec.get("container_name") or rec["container_id"][:12],
            "active": "yes" if rec.get("active") else "",
            "actor": rec["actor"],
            "phases": " → ".join(h["phase"] for h in rec.get("history") or []) or rec.get("phase", ""),
            "detail": f"[{rec.get('method', '')}] {rec.get('detail', '')}",
        }
        for rec in recs
    ]
    print_table(table, ["time", "action", "container", "active", "actor", "phases", "detail"], empty="no actions")
    return 0


def register(subparsers: Any) -> None:
    """Add ``findings``, ``isolate``, ``release`` and ``actions`` to riskguardctl."""
    p = subparsers.add_parser("findings", help="stored findings and their verdicts")
    p.add_argument("--container", help="container id (prefix) or name")
    p.add_argument("--source", help="behavior, syscall_chain, logs, audit, network, vuln, rule …")
    p.add_argument("--severity", choices=SEVERITIES, help="minimum severity")
    p.add_argument("--limit", type=int, default=100, help="newest findings shown (default 100; a cut list says N of M)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON (severity by name)")
    p.set_defaults(func=cmd_findings)

    p = subparsers.add_parser("isolate", help="freeze or quarantine a container now")
    p.add_argument("id", help="container id (prefix) or name")
    # Any isolation action the agent has (freeze, quarantine): the agent checks the name.
    p.add_argument("--action", default="freeze", help="freeze | quarantine")
    p.add_argument("--method", help="freeze: auto|v1|v2; quarantine: auto|cgroup|netns|docker|kubernetes")
    p.add_argument("--dry-run", action="store_true", help="record what would be done, change nothing")
    p.add_argument("--json", action="store_true", help="print the action record as JSON")
    p.set_defaults(func=cmd_isolate)

    p = subparsers.add_parser("release", help="undo every isolation in effect on a container")
    p.add_argument("id", help="container id (prefix) or name")
    p.add_argument("--json", action="store_true", help="print the action records as JSON")
    p.set_defaults(func=cmd_release)

    p = subparsers.add_parser("actions", help="recorded response actions and their phases")
    p.add_argument("--container", help="container id (prefix) or name")
    p.add_argument("--limit", type=int, default=50, help="newest actions shown (default 50)")
    p.add_argument("--json", action="store_true", help="print the action records as JSON")
    p.set_defaults(func=cmd_actions)
