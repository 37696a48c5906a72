# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl``: the operator's command line, over the agent's root-only control socket.

Global options (``--socket``, ``--json``) are accepted before or after the sub-command; every
table goes through ``agent.console`` (a header row, fitted to the terminal); ``--json`` prints
the agent's answer as indented, key-sorted JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent import __version__
from agent.commands import register_modules
from agent.console import print_json, print_table
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


__all__ = ["build_parser", "container_states", "main", "print_json", "print_table"]


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


_ISOLATED = {"freeze": "frozen", "quarantine": "quarantined"}


def container_states(status: dict[str, Any]) -> dict[str, list[str]]:
    """Container id -> its states from the agent's status: ``frozen``/``quarantined`` (an
    isolation in effect; ``(pending)`` until confirmed) and ``managed`` (networking wired by the
    agent)."""
    states: dict[str, list[str]] = {}
    for comp in (status.get("components") or {}).values():
        for iso in comp.get("isolations") or []:
            state = _ISOLATED.get(str(iso.get("action")), str(iso.get("action")))
            if iso.get("phase") not in ("confirmed", None):
                state += f" ({iso.get('phase')})"
            states.setdefault(str(iso.get("container_id", "")), []).append(state)
        tracked = comp.get("containers")
        if isinstance(tracked, dict):
            for short, t in tracked.items():
                if isinstance(t, dict) and t.get("managed"):
                    states.setdefault(str(short), []).append("managed")
    return states


def _state_of(cid: str, states: dict[str, list[str]]) -> list[str]:
    return sorted({s for key, found in states.items() if key and cid.startswith(key) for s in found})


def cmd_containers(args: argparse.Namespace) -> int:
    cs = call(args.socket, "containers")
    states = container_states(call(args.socket, "status"))
    for c in cs:
        c["state"] = _state_of(str(c["id"]), states)
    if args.json:
        print_json(cs)
        return 0
    now = time.time()
    rows = [
        {
            "id": c["id"][:12],
            "name": c["name"],
            "image": c["image"],
            "state": ",".join(c["state"]) or "running",
            "pid": c["init_pid"],
            "up": _age(now - c["started_at"]) if c.get("started_at") else "",
        }
        for c in cs
    ]
    print_table(rows, ["id", "name", "image", "state", "pid", "up"], empty="no containers")
    return 0


def _age(seconds: float) -> str:
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def globalize(parser: argparse.ArgumentParser, options: dict[str, argparse.Action]) -> None:
    """Accept the top-level ``options`` on every sub-command too: each sub-parser gets the same
    option with a suppressed default, so a value given before the sub-command is not reset and
    one given after it wins."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for dest, top in options.items():
                    mine = next((a for a in sub._actions if a.dest == dest), None)
                    if mine is None:
                        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": top.help}
                        if top.nargs == 0:
                            kwargs["action"] = "store_true"
                        else:
                            kwargs["type"] = top.type
                            kwargs["metavar"] = top.metavar
                        sub.add_argument(*top.option_strings, **kwargs)
                    else:
                        mine.default = argparse.SUPPRESS
                        mine.help = mine.help or top.help
                globalize(sub, options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskguardctl", description="Operate a running riskguard-agent.")
    parser.add_argument("--version", action="version", version=f"riskguardctl {__version__}")
    socket = parser.add_argument(
        "--socket",
        type=Path,
        default=Path(os.environ.get("RISKGUARD_SOCKET", DEFAULT_SOCKET)),
        metavar="PATH",
        help="the agent's control socket (default $RISKGUARD_SOCKET, else /run/riskguard/agent.sock)",
    )
    as_json = parser.add_argument(
        "--json", action="store_true", help="print the agent's answer as JSON (indented, keys sorted)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("status", help="the agent's state: components, counters")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("containers", help="the containers the agent watches, with their state")
    p.set_defaults(func=cmd_containers)
    register_modules(sub, CTL_MODULES)
    globalize(parser, {"socket": socket, "json": as_json})
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
