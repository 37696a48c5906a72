# SPDX-License-Identifier: Apache-2.0
"""What a process is, from names: its role from the program it runs (and the script it runs),
the interpreter a ``#!`` line names, busybox applets, the script argument of a shell."""

from __future__ import annotations

import fnmatch
import re

from agent.detectors.spec import basename, derived, name_set
from agent.settings.detectors import DetectorsSettings

ROLES = (
    "shell",
    "interpreter",
    "scheduler",
    "init",
    "supervisor",
    "runtime",
    "package_manager",
    "wrapper",
    "other",
)
_VERSION = re.compile(r"[\d.]+$")


def unversioned(program: str) -> str:
    """``program`` without a trailing version (``python3.11``, ``python3`` → ``python``)."""
    return _VERSION.sub("", program) or program


def _globs(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in names if "*" in n or "?" in n)


def _matches(name: str, names: tuple[str, ...]) -> bool:
    """``name`` is one of ``names`` (or their 15-character comm form) or fits one of its globs."""
    if not name:
        return False
    if name in name_set(names):
        return True
    globs = derived(names, "globs", _globs)
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


# role_of's answers per settings object: a host runs few distinct programs, and every exec asks.
_ROLES: dict[tuple[str, str, bool], str] = {}
_ROLES_FOR: list[object] = [None]


def role_of(program: str, settings: DetectorsSettings, script: str = "", exe: str = "") -> str:
    """The role of a process running ``program`` (and ``script``, when it is one)."""
    if _ROLES_FOR[0] is not settings or len(_ROLES) > 8192:
        _ROLES.clear()
        _ROLES_FOR[0] = settings
    key = (program, basename(script), exe.startswith("/memfd:runc"))
    role = _ROLES.get(key)
    if role is None:
        role = _ROLES[key] = _role_of(program, settings, key[1], key[2])
    return role


def _role_of(program: str, s: DetectorsSettings, script_name: str, runc: bool) -> str:
    # A script can itself be a scheduler or supervisor (supervisord is a Python script).
    for name in (script_name, program):
        if not name:
            continue
        if _matches(name, s.init_systems):
            return "init"
        if _matches(name, s.schedulers):
            return "scheduler"
        if _matches(name, s.supervisors):
            return "supervisor"
    if runc or _matches(program, s.runtime_comms) or program.startswith("containerd-shim"):
        return "runtime"
    if _matches(program, s.shells):
        return "shell"
    if _matches(program, s.interpreters) or _matches(unversioned(program), s.interpreters):
        return "interpreter"
    if _matches(program, s.package_managers) or _matches(program, s.language_package_managers):
        return "package_manager"
    if _matches(program, s.wrappers):
        return "wrapper"
    return "other"


def parse_shebang(head: bytes) -> tuple[str, str]:
    """``(interpreter path, program)`` named on a ``#!`` line, ("", "") when ``head`` has none.

    ``#!/usr/bin/env python3`` names ``python3`` (``env -S`` and env's options are skipped),
    ``#!/bin/busybox sh`` names ``sh``.
    """
    if not head.startswith(b"#!"):
        return "", ""
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    parts = line.split()
    if not parts:
        return "", ""
    interp = parts[0]
    program = basename(interp)
    rest = parts[1:]
    if program == "env":
        words = [w for w in rest if not w.startswith("-") and "=" not in w]
        if words:
            return words[0], basename(words[0])
    if program == "busybox" and rest:
        return interp, basename(rest[0])
    return interp, program


def busybox_program(exe: str, argv: tuple[str, ...]) -> str:
    """The program of a process from its executable and argv (busybox applets by argv)."""
    name = basename(exe.removesuffix(" (deleted)"))
    if name == "busybox" or name == "exe":
        if argv and basename(argv[0]) != "busybox":
            return basename(argv[0])
        if len(argv) > 1:
            return basename(argv[1])
    return name


def script_arg(argv: tuple[str, ...], start: int = 1) -> str:
    """The script a shell or interpreter runs: its first argument that is not an option."""
    for a in argv[start:]:
        if a in ("-c", "-e", "-m", "-E"):
            return ""  # inline code / module, not a file
        if not a.startswith("-"):
            return a
    return ""
