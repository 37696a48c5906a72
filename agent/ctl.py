# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl``: the operator's command line, over the agent's root-only control socket."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.commands import register_modules
from agent.control import ControlError, call
from agent.textsafe import escape_terminal, guard_terminal

DEFAULT_SOCKET = Path("/run/riskguard/agent.sock")

# Command groups contributed by subsystems: each module has register(subparsers).
CTL_MODULES: tuple[str, ...] = (
    "agent.response.ctl",  # findings, isolate, release
    "agent.response.plans_ctl",  # plans
    "agent.vuln.ctl",  # scan
    "agent.network.ctl",  # netpolicy
    "agent.detectors.ctl",  # detectors
    "agent.logs.ctl",  # logs status|rules
    "agent.behavior.ctl",  # baseline list|freeze|unfreeze|fit|relearn
)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned table (no colours: output is often piped); every cell on one line, its
    control characters escaped (values come from containers)."""
    cells = [[escape_terminal(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def cmd_status(args: argparse.Namespace) -> int:
    s = call(args.socket, "status")
    if args.json:
        print_json(s)
        return 0
    print(f"riskguard-agent {s['version']}  pid {s['pid']}  up {s['uptime_seconds']}s  config {s['config']}")
    print(f"response mode: {s['response_mode']}   containers: {s['containers']}")
    rt = s.get("runtime") or {}
    if rt.get("docker") is not None:
        d = rt["docker"]
        print(f"docker: {'connected' if d['connected'] else 'DISCONNECTED ' + d.get('last_error', '')}")
    ev, fi = s.get("events") or {}, s.get("findings") or {}
    print(
        f"events: {ev.get('processed', 0)} processed, {sum((ev.get('dropped') or {}).values())} dropped; "
        f"findings: {fi.get('processed', 0)}"
    )
    rows = []
    for name, c in sorted((s.get("components") or {}).items()):
        detail = c.get("error") or ", ".join(
            f"{k}={v}" for k, v in c.items() if k != "state" and isinstance(v, (int, float, str, bool))
        )
        rows.append({"component": name, "state": c.get("state", ""), "detail": detail[:100]})
    if rows:
        print()
        print_table(rows, ["component", "state", "detail"])
    return 0


def cmd_containers(args: argparse.Namespace) -> int:
    cs = call(args.socket, "containers")
    if args.json:
        print_json(cs)
        return 0
    now = time.time()
    rows = [
        {
            "id": c["id"][:12],
            "name": c["name"],
            "image": c["image"],
            "runtime": c["runtime"],
            "pid": c["init_pid"],
            "cgroup_id": c["cgroup_id"],
            "up": f"{int(now - c['started_at'])}s" if c.get("started_at") else "",
        }
        for c in cs
    ]
    print_table(rows, ["id", "name", "image", "runtime", "pid", "cgroup_id", "up"])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskguardctl", description="Operate a running riskguard-agent.")
    parser.add_argument(
        "--socket",
        type=Path,
        default=Path(os.environ.get("RISKGUARD_SOCKET", DEFAULT_SOCKET)),
        help="the agent's control socket (default /run/riskguard/agent.sock)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("status", help="the agent's state: components, counters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("containers", help="the containers the agent watches")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_containers)
    register_modules(sub, CTL_MODULES)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with guard_terminal(args):
            rc: int = args.func(args)
        return rc
    except ControlError as exc:
        print(f"riskguardctl: {escape_terminal(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
