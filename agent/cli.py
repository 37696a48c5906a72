# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent``: the daemon and its offline tools.

Machine-readable output (``--format json|jsonl``) goes to stdout and is never mixed with log
lines: the offline tools log to stderr; only ``run`` logs to stdout (journald keeps it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.commands import register_modules
from agent.logsetup import configure_logging
from agent.textsafe import guard_terminal

if TYPE_CHECKING:  # the config models load with the commands that read a config (the tools start faster)
    from agent.config import AgentConfig

# Sub-command groups contributed by subsystems: each module has register(subparsers).
# Each offline sub-command and the module that registers it (its ``register(subparsers)`` adds
# exactly the names mapped to it here: a test checks). A command line names one, so only that
# module is imported: ``logs parse`` does not load the scanners, the eBPF tools or numpy.
CLI_COMMANDS: dict[str, str] = {
    "probes": "agent.sources.cli",
    "audit": "agent.sources.audit_cli",
    "syscalls": "agent.behavior.cli",
    "logs": "agent.logs.cli",
    "scan": "agent.vuln.cli",
    "vulndb": "agent.vuln.cli",
    "detectors": "agent.detectors.cli",
}
CLI_MODULES: tuple[str, ...] = tuple(dict.fromkeys(CLI_COMMANDS.values()))


def cmd_run(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, config_path_from_env

    path = config_path_from_env(args.config)
    try:
        config, source = _load(path)
    except ConfigError as exc:
        configure_logging("info", "auto")
        import structlog

        structlog.get_logger("agent.app").error("config_rejected", config=exc.source, problems=exc.problems)
        for p in exc.problems:
            print(f"{exc.source}: {p}", file=sys.stderr)
        return 2
    configure_logging(config.log.level, config.log.format)
    from agent.app import run

    return run(config, source, path)


def _load(path: Path | None) -> tuple[AgentConfig, str]:
    """``load_config``, with anything it did not foresee also reported as a ``ConfigError``."""
    from agent.config import DEFAULT_CONFIG_PATH, ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError:
        raise
    except Exception as exc:  # never a traceback for a config file
        raise ConfigError(
            str(path or DEFAULT_CONFIG_PATH), [f"(file): cannot load: {type(exc).__name__}: {exc}"[:500]]
        ) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, config_path_from_env

    path = config_path_from_env(args.config)
    try:
        _config, source = _load(path)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 2
    print(f"ok: {source}")
    return 0


def cmd_default_config(_args: argparse.Namespace) -> int:
    from agent.configdoc import render_default_config

    sys.stdout.write(render_default_config())
    return 0


def cmd_pipeline(args: argparse.Namespace) -> int:
    from agent.console import print_json
    from agent.wiringdoc import STAGES_HEADER, SUBSCRIPTIONS_HEADER, blocks, markdown, splice, tables

    if args.update:
        doc = Path(args.update)
        text = doc.read_text(encoding="utf-8")
        try:
            new = splice(text, blocks())
        except ValueError as exc:
            print(f"{doc}: {exc}", file=sys.stderr)
            return 2
        if new != text:
            doc.write_text(new, encoding="utf-8")
        return 0
    stages, subscriptions = tables()
    if args.format == "json":
        keys = ("order", "stage", "module", "given", "produces"), ("stage", "topic", "subscriber", "kinds", "when")
        print_json(
            {
                "stages": [dict(zip(keys[0], r, strict=True)) for r in stages],
                "subscriptions": [dict(zip(keys[1], r, strict=True)) for r in subscriptions],
            }
        )
    else:
        print(markdown(STAGES_HEADER, stages) + "\n\n" + markdown(SUBSCRIPTIONS_HEADER, subscriptions))
    return 0


def build_parser(modules: Sequence[str] = CLI_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskguard-agent", description="riskguard-agent: the container security daemon and its offline tools."
    )
    parser.add_argument("--version", action="version", version=f"riskguard-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon in the foreground (systemd notify)")
    p.add_argument("--config", help="agent.yaml (default /etc/riskguard/agent.yaml, else the embedded default)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate agent.yaml: exit 0, or 2 with dotted path: reason")
    p.add_argument("--config", help="agent.yaml (default /etc/riskguard/agent.yaml)")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("default-config", help="print the documented default agent.yaml (every key, its default)")
    p.set_defaults(func=cmd_default_config)

    p = sub.add_parser("pipeline", help="the wiring's stages and subscriptions (the tables of docs/architecture.md)")
    p.add_argument("--format", choices=("markdown", "json"), default="markdown", help="markdown (default) or json")
    p.add_argument("--update", metavar="DOC", help="rewrite the generated tables between DOC's markers instead")
    p.set_defaults(func=cmd_pipeline)

    register_modules(sub, modules)
    return parser


def parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for ``argv``: the core commands, plus the offline tool ``argv`` names (every
    tool for ``--help``, no command or an unknown one).

    Registering a tool imports its module (the vulnerability database and scanners, model
    fitting, the console tables with rich …): for ``run`` that would stay in the daemon's memory
    for nothing, and for one tool it is start-up time spent on the others. The command is always
    the first argument (the only top-level options are ``--help`` and ``--version``)."""
    first = argv[0] if argv else ""
    if first == "run":
        return build_parser(())
    module = CLI_COMMANDS.get(first)
    return build_parser((module,) if module is not None else CLI_MODULES)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = parser_for(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command == "run":
        return _call(args)
    configure_logging("warning", "json", stream=sys.stderr)
    with guard_terminal(args):  # tables escape what a container wrote; JSON output stays exact
        return _call(args)


def _call(args: argparse.Namespace) -> int:
    try:
        rc: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
