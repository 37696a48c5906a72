# SPDX-License-Identifier: Apache-2.0
"""The one console layer of ``riskguardctl`` and ``riskguard-agent``: tables, JSON, cut lists.

Tables are laid out by rich without colour or markup (output is often piped, and every cell may
come from a container): a header row on every table, each cell escaped with
``escape_terminal`` so it stays on its line, and the table fitted to the terminal width (80
columns when stdout is not a terminal, or ``COLUMNS``): long cells wrap inside their column
instead of wrapping the whole row. JSON output is ``indent=2, sort_keys`` on stdout, always.
A list the agent cut says so: ``N of M`` on stderr, never silently.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent.textsafe import escape_terminal

MIN_WIDTH = 60  # below this a table is laid out for 60 columns and the terminal wraps it
KEEP_WIDTH = 8  # a column no wider than this keeps its width (counts, states, severities)
FLOOR_WIDTH = 10  # a wider column may be narrowed to this and then wraps
MIN_FLOOR = 4  # on a very narrow terminal, down to this; below it the terminal wraps the line
DEFAULT_WIDTH = 80  # stdout that is not a terminal (a pipe, a file) and no COLUMNS

# A column: its key in the row, or (key, header) when the header differs from the key.
Column = str | tuple[str, str]


def terminal_width() -> int:
    """Columns available for a table: ``COLUMNS``, else the terminal's width when stdout is one,
    else 80; never below ``MIN_WIDTH``."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return max(MIN_WIDTH, int(env))
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns if tty else DEFAULT_WIDTH
    return max(MIN_WIDTH, width)


def cell(value: Any) -> str:
    """A value as table text: ``""`` for None, yes/no for booleans, escaped on one line."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return escape_terminal(value)


def column_widths(natural: Sequence[int], total: int, gap: int = 2) -> list[int]:
    """Widths for columns whose content is ``natural`` wide, fitted into ``total`` columns: all
    natural when they fit; else narrow columns keep theirs, the wider ones start at
    ``FLOOR_WIDTH`` (less on a narrow terminal, never below ``MIN_FLOOR``) and share what is left
    equally (water-filling, so a column that needs little gets all it needs and the longest,
    usually free text, gets the rest). When even that does not fit, the line is longer than the
    terminal and wraps there: no column is ever dropped."""
    room = total - gap * (len(natural) - 1)
    if sum(natural) <= room:
        return list(natural)
    flex = [i for i, w in enumerate(natural) if w > KEEP_WIDTH]
    kept = sum(w for w in natural if w <= KEEP_WIDTH)
    floor = max(MIN_FLOOR, min(FLOOR_WIDTH, (room - kept) // max(1, len(flex))))
    widths = [w if w <= KEEP_WIDTH else min(w, floor) for w in natural]
    spare = room - sum(widths)
    while spare > 0:
        lacking = [i for i in flex if widths[i] < natural[i]]
        if not lacking:
            break
        share = max(1, spare // len(lacking))
        for i in lacking:
            add = min(share, natural[i] - widths[i], spare)
            widths[i] += add
            spare -= add
            if spare == 0:
                break
    return widths


def render_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], width: int | None = None) -> str:
    """The table as text: an upper-case header row, then one row per item, fitted to ``width``
    (default ``terminal_width()``); lines carry no trailing blanks."""
    table = Table(
        box=None,
        show_header=True,
        show_edge=False,
        pad_edge=False,
        padding=(0, 2, 0, 0),
        expand=False,
    )
    keys = [col if isinstance(col, str) else col[0] for col in columns]
    headers = [(col if isinstance(col, str) else col[1]).upper() for col in columns]
    cells = [[cell(row.get(k)) for k in keys] for row in rows]
    natural = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    widths = column_widths(natural, width or terminal_width())
    for header, w in zip(headers, widths, strict=True):
        table.add_column(Text(header), width=w, overflow="fold", no_wrap=False)
    for r in cells:
        table.add_row(*(Text(v) for v in r))
    buf = io.StringIO()
    console = Console(
        file=buf,
        width=max(width or terminal_width(), sum(widths) + 2 * (len(widths) - 1)),
        color_system=None,
        force_terminal=False,
        force_jupyter=False,
        highlight=False,
        markup=False,
        emoji=False,
        legacy_windows=False,
        soft_wrap=False,
    )
    console.print(table)
    return "".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines())


def print_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    total: int | None = None,
    what: str = "rows",
    empty: str | None = None,
) -> None:
    """Print ``rows`` as a table on stdout; ``empty`` instead when there are none (if given);
    with ``total`` larger than the rows shown, ``N of M <what> shown`` on stderr."""
    if not rows and empty is not None:
        print(empty)
    else:
        sys.stdout.write(render_table(rows, columns))
    note_cut(len(rows), total, what)


def note_cut(shown: int, total: int | None, what: str = "rows", hint: str = "raise --limit") -> None:
    """Say ``N of M <what> shown (<hint>)`` on stderr when a list was cut."""
    if total is not None and total > shown:
        print(f"{shown} of {total} {what} shown ({hint})", file=sys.stderr)


def note_limit(shown: int, limit: int, what: str = "rows") -> None:
    """Say on stderr that a list may be cut when it is exactly ``limit`` long (the agent did not
    count the rest): ``the newest N <what> shown; there may be more (raise --limit)``."""
    if limit > 0 and shown >= limit:
        print(f"the newest {shown} {what} shown; there may be more (raise --limit)", file=sys.stderr)


def print_json(obj: Any) -> None:
    """``obj`` as indented, key-sorted JSON on stdout (the same convention for every command)."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


SEVERITY_NAMES = ("info", "low", "medium", "high", "critical")


def severity_name(value: Any) -> str:
    """A severity as its lower-case name: integers 0 to 4 (the store's encoding) and names alike;
    anything else as given, in lower case."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(SEVERITY_NAMES):
        return SEVERITY_NAMES[value]
    text = str(value).strip()
    if text.isdigit() and 0 <= int(text) < len(SEVERITY_NAMES):
        return SEVERITY_NAMES[int(text)]
    return text.lower()
