# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl baseline ...``: behaviour baselines and their learned allowances.

``list`` · ``show IMAGE`` · ``freeze|unfreeze|fit|relearn IMAGE`` ·
``allow|deny IMAGE KIND PATTERN`` · ``forget IMAGE KIND PATTERN`` · ``export IMAGE > FILE`` ·
``import FILE``. KIND is exec (``PARENT>CHILD`` programs), exe, path or dest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from agent.control import call

ACTIONS = ("list", "show", "freeze", "unfreeze", "fit", "relearn", "allow", "deny", "forget", "export", "import")
_EDIT = ("allow", "deny", "forget")


def _usage(args: argparse.Namespace, what: str) -> int:
    print(f"riskguardctl baseline {args.action}: {what}", file=sys.stderr)
    return 2


def _age(now: float, ts: float) -> str:
    """``ts`` as a short age (``42s ago``, ``5m ago``, ``3h ago``, ``12d ago``); ``""`` when unset."""
    if not ts:
        return ""
    s = max(0, int(now - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def cmd_baseline(args: argparse.Namespace) -> int:
    from agent.console import print_json, print_table

    params: dict[str, Any] = {"action": args.action}
    if args.action == "import":
        if not args.image:
            return _usage(args, "name the document (riskguardctl baseline import FILE)")
        path = Path(args.image)
        if not path.is_file():
            return _usage(args, f"{path}: no such file")
        params["path"] = str(path.resolve())
    elif args.action != "list":
        if not args.image:
            return _usage(args, "name the baseline (see 'riskguardctl baseline list')")
        params["image"] = args.image
    if args.action in _EDIT:
        if not args.kind or not args.pattern:
            return _usage(args, "give KIND (exec, exe, path, dest) and PATTERN, e.g. exec 'python3>sh'")
        params["kind"], params["pattern"] = args.kind, args.pattern
    result = call(args.socket, "baseline", params)
    if args.action == "export":
        json.dump(result, sys.stdout, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    if args.json:
        print_json(result)
        return 0
    now = time.time()
    if args.action == "show":
        state = result["state"] + (" (frozen)" if result["frozen"] else "")
        learning = (
            f"allowances learning for {result['learning_seconds_left']:.0f}s more"
            if result["allowances_learning"]
            else "allowances fixed (learning period over or frozen)"
        )
        print(f"baseline {result['image']}: {state}, model v{result['version']}; {learning}")
        rows = [
            {
                "kind": e["kind"],
                "pattern": e["pattern"],
                "verdict": e["verdict"],
                "origin": e["origin"],
                "since": _age(now, e["first_seen"]),
            }
            for e in result["allowances"]
        ]
        print_table(rows, ["kind", "pattern", "verdict", "origin", "since"])
        return 0
    if args.action != "list":
        print("  ".join(f"{k}={v}" for k, v in result.items()))
        return 0
    rows = [
        {
            "baseline": b["image"],
            "state": b["state"] + (" (frozen)" if b["frozen"] else ""),
            "version": b["version"],
            "windows": b["training_windows"],
            "threshold": f"{b['threshold']:.4f}" if "threshold" in b else "",
            "modes": b.get("modes", ""),
            "allowances": sum(v for k, v in (b.get("allowances") or {}).items() if k != "denied"),
            "fitted": _age(now, b["fitted"]),
        }
        for b in result["baselines"]
    ]
    print_table(  # short headers: the baseline key (an image name) should fit 80 columns unwrapped
        rows,
        [
            "baseline",
            "state",
            ("version", "ver"),
            ("windows", "wins"),
            ("threshold", "thresh"),
            "modes",
            ("allowances", "allow"),
            "fitted",
        ],
    )
    return 0


def register(subparsers: Any) -> None:
    """Add ``baseline ACTION [IMAGE|FILE] [KIND PATTERN] [--json]``."""
    p = subparsers.add_parser(
        "baseline",
        help="behaviour baselines and learned allowances: list, show, freeze, unfreeze, fit, relearn, "
        "allow, deny, forget, export, import",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=ACTIONS, help="what to do (see the list above)")
    p.add_argument(
        "image",
        nargs="?",
        default="",
        help="the baseline key (an image, or group:<label value>); for import: the document file",
    )
    p.add_argument("kind", nargs="?", default="", help="allow/deny/forget: exec, exe, path or dest")
    p.add_argument("pattern", nargs="?", default="", help="allow/deny/forget: e.g. 'python3>sh', /usr/bin/curl")
    p.add_argument("--json", action="store_true", help="print the agent's answer as JSON")
    p.set_defaults(func=cmd_baseline)
