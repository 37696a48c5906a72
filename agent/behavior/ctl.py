# SPDX-License-Identifier: Apache-2.0
"""``riskguardctl baseline list | freeze | unfreeze | fit | relearn``: the behaviour baselines."""

from __future__ import annotations

import argparse
import time
from typing import Any

from agent.control import call


def cmd_baseline(args: argparse.Namespace) -> int:
    from agent.ctl import print_json, print_table

    params: dict[str, Any] = {"action": args.action}
    if args.action != "list":
        if not args.image:
            print(f"riskguardctl baseline {args.action}: name the baseline (see 'riskguardctl baseline list')")
            return 2
        params["image"] = args.image
    result = call(args.socket, "baseline", params)
    if args.json:
        print_json(result)
        return 0
    if args.action != "list":
        print("  ".join(f"{k}={v}" for k, v in result.items()))
        return 0
    now = time.time()
    rows = [
        {
            "baseline": b["image"],
            "state": b["state"] + (" (frozen)" if b["frozen"] else ""),
            "version": b["version"],
            "windows": b["training_windows"],
            "threshold": f"{b['threshold']:.4f}" if "threshold" in b else "",
            "modes": b.get("modes", ""),
            "fitted": f"{int(now - b['fitted'])}s ago" if b["fitted"] else "",
        }
        for b in result["baselines"]
    ]
    print_table(rows, ["baseline", "state", "version", "windows", "threshold", "modes", "fitted"])
    return 0


def register(subparsers: Any) -> None:
    """Add ``baseline ACTION [KEY] [--json]``."""
    p = subparsers.add_parser("baseline", help="behaviour baselines: list, freeze, unfreeze, fit, relearn")
    p.add_argument("action", choices=["list", "freeze", "unfreeze", "fit", "relearn"])
    p.add_argument("image", nargs="?", default="", help="the baseline key (an image, or group:<label value>)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_baseline)
