# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent probes``: list the eBPF probes, or print the final program of one.

``probes --list`` prints one line per probe (name and its hooks); ``probes --print NAME`` prints
the exact text bcc compiles for that probe on this host: the ``-D`` constants from the config
(ring buffer or perf buffer as probed on this kernel) followed by the probe with its headers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from agent.config import ConfigError, config_path_from_env, load_config
from agent.hostfs import HostPaths
from agent.sources.ebpf import available_probes, cflags, detect_support, probe_hooks, program_text


def _hooks_line(name: str) -> str:
    doc = probe_hooks(name)
    m = re.search(r"Hooks?:(.*?)(?:\n\s*\*?\s*Maps:|$)", doc, re.S)
    text = m.group(1) if m else ""
    return " ".join(re.sub(r"\n\s*\*", " ", text).split())


def cmd_probes(args: argparse.Namespace) -> int:
    names = available_probes()
    if args.print_name:
        if args.print_name not in names:
            print(f"unknown probe {args.print_name!r}; known: {', '.join(names)}", file=sys.stderr)
            return 2
        try:
            config, _source = load_config(config_path_from_env(args.config))
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        support = detect_support(HostPaths())
        ringbuf = {"auto": support.ringbuf, "ringbuf": True, "perfbuf": False}[args.output]
        flags = cflags(config.ebpf, ringbuf, support.task_storage)
        sys.stdout.write(program_text([args.print_name], flags))
        return 0
    if args.json or args.format == "jsonl":
        for n in names:
            print(json.dumps({"probe": n, "hooks": _hooks_line(n)}))
    else:
        from agent.console import print_table

        print_table([{"probe": n, "hooks": _hooks_line(n)} for n in names], ["probe", "hooks"])
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("probes", help="list the eBPF probes or print one's final program")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true", help="one line per probe: name and hooks (default)")
    g.add_argument("--print", dest="print_name", metavar="NAME", help="print the program text bcc compiles")
    p.add_argument("--config", help="agent.yaml whose ebpf section sets the -D constants")
    p.add_argument(
        "--output",
        choices=("auto", "ringbuf", "perfbuf"),
        default="auto",
        help="event channel to print for (auto: what this kernel supports)",
    )
    p.add_argument(
        "--format", choices=("table", "jsonl"), default="table", help="--list as a table (default) or JSON lines"
    )
    p.add_argument("--json", action="store_true", help="the same as --format jsonl")
    p.set_defaults(func=cmd_probes)
