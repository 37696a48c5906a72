# SPDX-License-Identifier: Apache-2.0
"""A raw line's header/message split (``header.split_header``'s answer) and its header fields."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Split:
    """Where the message starts, and the header's fields as character spans of the line.

    ``joined``, when known, is ``spans`` with each run of same-named spans one space apart as
    one span (a timestamp written in three tokens), each name once: what ``add_fields`` joins,
    as plain slices of the line. None when a name repeats otherwise (then the spans are joined
    one by one)."""

    start: int
    spans: tuple[tuple[str, int, int], ...] = ()
    joined: tuple[tuple[str, int, int], ...] | None = field(default=None, compare=False, repr=False)

    def add_fields(self, line: str, out: dict[str, object], cap: int) -> None:
        """Add the header fields of ``line`` to ``out`` (as ``fields``, capped at ``cap`` chars),
        except names ``out`` already holds: a parser's fields keep priority."""
        spans = self.spans
        if not spans:
            return
        held: set[str] = set()
        if out:
            held = {name for name, _, _ in spans if name in out}
            for name, a, b in spans:
                if name not in held:
                    old = out.get(name)
                    out[name] = line[a:b] if old is None else f"{old} {line[a:b]}"
        elif self.joined is not None:
            for name, a, b in self.joined:
                out[name] = line[a:b]
        else:
            get = out.get
            for name, a, b in spans:
                old = get(name)
                out[name] = line[a:b] if old is None else f"{old} {line[a:b]}"
        if len(line) > cap:  # a joined value is never longer than the line
            for name, _, _ in spans:
                value = out[name]
                if name not in held and isinstance(value, str) and len(value) > cap:
                    out[name] = value[:cap]

    def fields(self, line: str) -> dict[str, str]:
        """The header fields of ``line`` (timestamp parts joined by a space)."""
        out: dict[str, str] = {}
        for name, a, b in self.spans:
            value = line[a:b]
            out[name] = f"{out[name]} {value}" if name in out else value
        return out


def joined_spans(zl: str, spans: tuple[tuple[str, int, int], ...]) -> tuple[tuple[str, int, int], ...] | None:
    """``Split.joined`` of ``spans`` of the (digit-zeroed) line ``zl``: a name's parts one space
    apart become one slice (equal to joining them with a space: zeroing keeps every non-digit)."""
    out: list[tuple[str, int, int]] = []
    for name, a, b in spans:
        if out and out[-1][0] == name and zl[out[-1][2] : a] == " ":
            out[-1] = (name, out[-1][1], b)
        elif any(name == held for held, _, _ in out):
            return None
        else:
            out.append((name, a, b))
    return tuple(out)
