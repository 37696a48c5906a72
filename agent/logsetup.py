# SPDX-License-Identifier: Apache-2.0
"""structlog set-up: one JSON object per line (journald keeps it), or a console rendering on a tty.

Values that come from containers (log lines, argv, paths) are only ever values: keys are ours.
Long strings are capped so a container cannot flood the journal through our own log lines.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from agent.textsafe import escape_terminal

MAX_VALUE_CHARS = 2048
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _cap(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + f"…[{len(value) - MAX_VALUE_CHARS} more chars]"
    if isinstance(value, (list, tuple)) and len(value) > 64:
        return [*(_cap(v) for v in value[:64]), f"…[{len(value) - 64} more items]"]
    if isinstance(value, (list, tuple)):
        return [_cap(v) for v in value]
    if isinstance(value, dict):
        return {str(k)[:128]: _cap(v) for k, v in list(value.items())[:64]}
    return value


def cap_values(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Processor: cap every value's size (container-controlled data stays bounded)."""
    for k, v in list(event_dict.items()):
        event_dict[k] = _cap(v)
    return event_dict


# sd-daemon(3) priorities: journald strips a leading "<N>" from a stdout line and stores it as
# PRIORITY= (the unit's SyslogLevelPrefix=yes, systemd's default).
SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "warn": 4, "error": 3, "exception": 3, "critical": 2}


def journal_stream(out: TextIO) -> bool:
    """True when ``out`` is the journal's stdout stream ($JOURNAL_STREAM names its device:inode)."""
    want = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(out.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return bool(want) and want == f"{st.st_dev}:{st.st_ino}"


def syslog_prefix(_logger: Any, name: str, line: Any) -> Any:
    """Processor after the renderer: prefix the line with its sd-daemon priority (``<4>{...}``)."""
    return f"<{SYSLOG_PRIORITY.get(name, 6)}>{line}" if isinstance(line, str) else line


def escape_for_console(_logger: Any, _name: str, event_dict: Any) -> Any:
    """Console rendering only: ConsoleRenderer repr()s values (which escapes them) but prints the
    event and a traceback as they are; escape those two (a traceback keeps its newlines)."""
    for key in ("event", "exception"):
        value = event_dict.get(key)
        if isinstance(value, str):
            event_dict[key] = escape_terminal(value, keep_newlines=key == "exception")
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog (and route stdlib logging of libraries through the same level)."""
    out = stream if stream is not None else sys.stdout
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False, default=str)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            cap_values,
            *([escape_for_console] if use_console else []),
            renderer,
            # Only when stdout is the journal: anywhere else (a tty, a pipe, a container log) a
            # prefix would break the JSON lines collectors parse.
            *([syslog_prefix] if journal_stream(out) else []),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries (docker, urllib3, pyroute2, scapy) log through stdlib logging: keep them quiet
    # and on stderr so machine output on stdout stays clean.
    logging.basicConfig(level=max(_LEVELS[level], logging.WARNING), stream=sys.stderr, force=True)
    for noisy in ("scapy", "urllib3", "docker", "pyroute2", "kubernetes", "drain3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
