# SPDX-License-Identifier: Apache-2.0
"""Optional subsystem modules: their components (``agent.wiring``) and sub-commands
(riskguard-agent, riskguardctl)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any


def import_optional(name: str) -> ModuleType | None:
    """Import a subsystem's module; ``None`` when this build leaves it out (the module itself is
    absent), while a broken import of one that is present still fails loudly."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def register_modules(subparsers: argparse._SubParsersAction[Any], modules: Iterable[str]) -> None:
    """Call ``register(subparsers)`` of each module present in this build."""
    for name in modules:
        module = import_optional(name)
        if module is not None:
            module.register(subparsers)
