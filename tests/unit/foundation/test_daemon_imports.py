# SPDX-License-Identifier: Apache-2.0
"""What the daemon keeps out of its memory: rich (structlog would import it for tracebacks our
log set-up never renders with it) and pySigma with pyparsing and re2 (needed only to read the
Sigma rule files, which a child process does); and the freed heap its main loop gives back.
Each case runs in a fresh interpreter: the test runner itself has imported all of them."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from tests.support import REPO

KEPT_OUT = ("rich", "pygments", "sigma", "pyparsing", "re2")

# The daemon's imports: the entry point as ``riskguard-agent run`` parses it, the app, every
# component module the wiring can build, both log renderings with an exception, and the logs
# analyzer with its Sigma rules read as the daemon reads them.
DAEMON = f"""
import io, importlib, json, sys
from agent.cli import parser_for  # first, as the riskguard-agent script does
import structlog
out = {{"run": parser_for(["run", "--config", "a.yaml"]).parse_args(["run", "--config", "a.yaml"]).func.__name__}}
import agent.app, agent.wiring
for name in ("agent.outputs.component", "agent.response.component", "agent.detectors.component",
             "agent.behavior.component", "agent.logs.component", "agent.sources.window",
             "agent.vuln.component", "agent.network.component", "agent.sources.ebpf",
             "agent.sources.auditd", "agent.sources.procfs", "agent.sources.capture"):
    importlib.import_module(name)
from agent.logsetup import configure_logging
for fmt in ("json", "console"):
    buf = io.StringIO()
    configure_logging("info", fmt, stream=buf)
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("t").exception("failed")
    out[fmt] = buf.getvalue()
from agent.config import parse_config
from agent.logs.analyzer import LogAnalyzer
analyzer = LogAnalyzer(parse_config({{}}, "t").logs)
out["rules"] = len(analyzer.sigma.rules)
out["unsupported"] = analyzer.sigma.unsupported
out["loaded"] = sorted(m for m in {KEPT_OUT!r} if m in sys.modules)
import agent.console  # riskguardctl and the offline tools still lay tables out with rich
out["console_rich"] = "rich" in sys.modules
print(json.dumps(out))
"""


def run_probe(code: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return got


def test_the_daemon_never_imports_rich_or_pysigma() -> None:
    got = run_probe(DAEMON)
    assert got["loaded"] == [], got["loaded"]
    assert got["console_rich"] is True
    assert got["run"] == "cmd_run"
    # The Sigma rules load as before (the shipped set is complete), only in a child process.
    assert isinstance(got["rules"], int) and got["rules"] >= 9
    assert got["unsupported"] == {}
    # Tracebacks are still rendered in both formats (plain text, as format_exc_info always did).
    for fmt in ("json", "console"):
        text = got[fmt]
        assert isinstance(text, str) and "ValueError: boom" in text and "Traceback" in text, (fmt, text)


def test_structlog_already_loaded_with_rich_is_left_alone() -> None:
    """A process that imported rich first (a tool, a test runner) keeps it: nothing is hidden."""
    got = run_probe(
        "import json, sys, rich, structlog.dev, agent\n"
        "print(json.dumps({'rich': sys.modules['rich'] is not None, 'dev': structlog.dev.rich is not None}))"
    )
    assert got == {"rich": True, "dev": True}


def test_the_offline_tools_keep_every_sub_command() -> None:
    from agent.cli import CLI_COMMANDS, CLI_MODULES, build_parser, parser_for

    def commands(parser: argparse.ArgumentParser) -> set[str]:
        sub = parser._subparsers
        assert sub is not None
        return set(sub._group_actions[0].choices)  # type: ignore[attr-defined]

    core = {"run", "check-config", "default-config", "pipeline"}
    full = commands(parser_for(["--help"]))
    assert full == core | set(CLI_COMMANDS), full
    assert commands(parser_for([])) == commands(parser_for(["nosuch"])) == full
    assert commands(parser_for(["run"])) == core
    # A tool's command line registers its module only, and each module registers exactly the
    # commands the table maps to it (so the table cannot send a command to the wrong module).
    assert commands(parser_for(["logs", "parse", "x"])) == core | {"logs"}
    assert commands(parser_for(["vulndb", "status"])) == core | {"scan", "vulndb"}
    for module in CLI_MODULES:
        mine = {name for name, owner in CLI_COMMANDS.items() if owner == module}
        assert commands(build_parser((module,))) == core | mine, module


def test_logs_parse_does_not_import_the_other_tools_or_numpy() -> None:
    """``logs parse`` starts without the other tools' modules and numpy (start-up time is most of
    the command's time on a small file)."""
    got = run_probe(
        "import json, sys\n"
        "from agent.cli import main\n"
        "assert main(['logs', 'parse', '/dev/null']) == 0\n"
        "mods = ('numpy', 'agent.vuln.cli', 'agent.sources.cli', 'agent.behavior.cli', 'agent.logs.cli')\n"
        "print(json.dumps({'loaded': [m for m in mods if m in sys.modules]}))"
    )
    assert got == {"loaded": ["agent.logs.cli"]}


TRIM = """
import json
def anon():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) / 1024
from agent.app import process_status
from agent.resources import release_free_heap
blocks = [bytes(64 * 1024) for _ in range(800)]  # 50 MiB of heap, under glibc's mmap threshold
del blocks[:-1]  # the last block pins the heap's top: free() alone gives nothing back
before = anon()
ok = release_free_heap()
print(json.dumps({"ok": ok, "before": before, "after": anon(), "status": process_status()}))
"""


def test_the_main_loop_gives_freed_heap_back() -> None:
    got = run_probe(TRIM)
    assert got["ok"] is True  # glibc (the agent's image and this VM)
    before, after = got["before"], got["after"]
    assert isinstance(before, float) and isinstance(after, float)
    assert before - after > 25, got  # MiB
    status = got["status"]
    assert isinstance(status, dict) and status["heap_trims"] == 1
