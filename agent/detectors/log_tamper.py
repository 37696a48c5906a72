# SPDX-License-Identifier: Apache-2.0
"""RG-0016: logs or shell history deleted, moved away or truncated from an interactive shell.

``rm /var/log/*``, ``mv /var/log/auth.log /tmp``, ``: > /var/log/messages`` (T1070.002) and
``rm ~/.ash_history``, ``ln -sf /dev/null ~/.bash_history`` (T1070.003; ``unset HISTFILE`` leaves
no trace, the deletion does). Sources: ``FileChange`` (unlink, rename) and ``FileOpen`` for
writing with ``O_TRUNC``. Not reported: rotation (a log renamed to a rotated name such as
``app.log.1`` / ``app.log-20260101``, rotated files deleted), anything with a scheduler, a
package manager or a log rotator in its lineage, changes from processes with no interactive
shell among their ancestors (an application managing its own logs, a script), a shell
truncating a history file (that is how bash saves it), and a rename *onto* a history file
(how busybox ash saves it).
"""

from __future__ import annotations

import os
import posixpath
import re

from agent.detectors.anti_forensics import Lineage, evaluate_with_lineage
from agent.detectors.spec import Detector, DetectorState, basename, path_matcher
from agent.events import Event, FileChange, FileOpen, ProcessExec
from agent.findings import Finding, Severity


def kind_of(path: str, state: DetectorState) -> str:
    """``"history"``, ``"log"`` or "" for a path."""
    s = state.settings
    if path_matcher(s.history_files)(basename(path)):
        return "history"
    if path.startswith(s.log_dirs) and not path.endswith("/"):
        return "log"
    return ""


def _rotated(path: str, state: DetectorState) -> bool:
    return path_matcher(state.settings.rotated_log_names)(basename(path))


def tampering(ev: FileChange | FileOpen, state: DetectorState) -> tuple[str, str, str] | None:
    """(kind, action, path) when the change destroys or hides a log or history file."""
    if isinstance(ev, FileOpen):
        if not ev.write or not ev.flags & os.O_TRUNC or ev.ret < 0:
            return None
        kind = kind_of(ev.path, state)
        if kind == "log" and not _rotated(ev.path, state):
            return kind, "truncated", ev.path
        if kind == "history":
            return kind, "truncated", ev.path
        return None
    if ev.ret < 0 or ev.op not in ("unlink", "rename"):
        return None
    kind = kind_of(ev.path, state)
    if ev.op == "unlink":
        if kind == "history" or (kind == "log" and not _rotated(ev.path, state)):
            return kind, "deleted", ev.path
        return None
    new_kind = kind_of(ev.new_path, state) if ev.new_path else ""
    if kind == "history" and new_kind != "history":
        return kind, f"moved to {ev.new_path}", ev.path
    if kind == "log" and not _rotated(ev.path, state):
        same_dir = posixpath.dirname(ev.new_path) == posixpath.dirname(ev.path)
        if ev.new_path and _rotated(ev.new_path, state) and (same_dir or new_kind == "log"):
            return None  # rotation: app.log -> app.log.1, or into an archive directory
        return kind, f"moved to {ev.new_path}", ev.path
    if new_kind == "log" and kind != "log" and not _rotated(ev.new_path, state):
        return "log", f"replaced by {ev.path}", ev.new_path
    return None


def _own_history(program: str, role: str, path: str) -> bool:
    """A program rewriting its own history file: bash truncates ~/.bash_history when it exits,
    python ~/.python_history, psql ~/.psql_history, mysql ~/.mysql_history."""
    stem = re.sub(r"[\d.]+$", "", program)
    return role in ("shell", "interpreter") or bool(stem and stem in basename(path))


def _judge(ev: Event, lin: Lineage, state: DetectorState) -> Finding | None:
    assert isinstance(ev, (FileChange, FileOpen))
    hit = tampering(ev, state)
    if hit is None or lin.interactive is None or lin.housekeeping is not None:
        return None
    kind, action, path = hit
    me = lin.chain[0]
    if isinstance(ev, FileOpen) and kind == "history" and _own_history(me.program, me.role, path):
        return None
    history = kind == "history"
    return SPEC.finding(
        ev,
        f"{'shell history' if history else 'log'} {path} {action} by {lin.program or ev.comm} "
        f"from an interactive shell (pid {lin.interactive.pid})",
        {
            "kind": kind,
            "action": action,
            "path": path,
            "op": ev.op if isinstance(ev, FileChange) else "open_truncate",
            "comm": ev.comm,
            "lineage": lin.evidence(),
            "source": ev.source,
        },
        subject=f"{kind}:{path}",
        mitre="T1070.003" if history else "T1070.002",
    )


def evaluate(ev: FileChange | FileOpen | ProcessExec, state: DetectorState) -> Finding | None:
    if not isinstance(ev, ProcessExec) and tampering(ev, state) is None:
        return None  # cheap test first: most file events are not about logs
    return evaluate_with_lineage(SPEC.id, ev, state, _judge)


SPEC = Detector(
    id="RG-0016",
    name="log_history_tampering",
    events=(FileChange, FileOpen, ProcessExec),
    severity=Severity.HIGH,
    mitre="T1070.002",
    description="From an interactive shell (a docker exec session, a reverse shell), a file "
    "under /var/log is deleted, moved away, replaced or truncated, or a shell history file is "
    "deleted, moved away or truncated (log clearing T1070.002, history clearing T1070.003).",
    false_positives="Allowed by default: rotation (renames to app.log.1 / app.log-DATE / *.gz and "
    "deleting rotated files), anything below a scheduler (crond → logrotate/savelog), a package "
    "manager or a log rotator, applications and scripts managing their own logs (no interactive "
    "shell above them), shells saving their own history. Learned: nothing (an `always` rule). "
    "Tuned: detectors.log_dirs, history_files, rotated_log_names, log_rotators. An operator "
    "deleting logs by hand in a `docker exec` shell is reported: use a rotator, or exempt the "
    "container.",
    evaluate=evaluate,
    # Learned exec pairs (sh>nc, sh>rm) say nothing about this shape: never lowered by them.
    always=True,
)
