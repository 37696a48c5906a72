# SPDX-License-Identifier: Apache-2.0
"""One object per distinct string or string tuple kept in the detectors' tables.

Every exec event is decoded into fresh strings and tuples (argv, stdio, executable, parent comm),
though a container's loop runs the same few commands thousands of times. The lineage entries and
recent-exec records keep them for minutes (``activity.HORIZON``, up to ``MAX_EXECS`` records),
so each record would hold its own copy of ``("wget", "-q", "-O", "/dev/null", "http://…")``.
``Dedup`` hands back the copy it already holds of an equal value instead. Values are immutable
and equal, so nothing that reads a record can tell. Bounded: a table that fills (values seen
once, such as ``pipe:[<inode>]``) is emptied and starts again, so the cost is a dict of at most
``max_entries`` references per kind.
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

MAX_STRINGS = 8192
MAX_TUPLES = 4096


class Dedup:
    """Bounded tables of the strings and string tuples seen, each value kept once."""

    __slots__ = ("_strs", "_tuples", "max_strings", "max_tuples", "resets")

    def __init__(self, max_strings: int = MAX_STRINGS, max_tuples: int = MAX_TUPLES) -> None:
        self.max_strings = max_strings
        self.max_tuples = max_tuples
        self._strs: dict[str, str] = {}
        self._tuples: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.resets = 0  # times a full table was emptied

    def __len__(self) -> int:
        return len(self._strs) + len(self._tuples)

    def string(self, value: str) -> str:
        """The held string equal to ``value`` (``value`` itself, held from now, if none)."""
        if not value:
            return value
        held = self._strs.get(value)
        return held if held is not None else self._hold(self._strs, self.max_strings, value)

    def strings(self, value: tuple[str, ...]) -> tuple[str, ...]:
        """The held tuple equal to ``value``, its strings held too (a new tuple of held strings,
        held from now, if none)."""
        if not value or type(value) is not tuple:
            return value  # () is one object already; a list is left as it is
        held = self._tuples.get(value)
        if held is not None:
            return held
        one = self.string
        return self._hold(self._tuples, self.max_tuples, tuple(one(v) for v in value))

    def _hold(self, table: dict[T, T], cap: int, value: T) -> T:
        """Hold ``value`` in ``table`` (emptied first when it has ``cap`` entries)."""
        if len(table) >= cap:
            table.clear()
            self.resets += 1
        table[value] = value
        return value
