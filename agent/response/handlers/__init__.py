# SPDX-License-Identifier: Apache-2.0
"""The table of response actions: action name → handler class (``ActionHandler`` protocol).

The engine builds one handler per entry and looks actions up here; adding an action is a module
in this package and one line in ``HANDLERS`` (see docs/response.md, "Adding an action").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agent.findings import Action
from agent.response.handlers.base import ActionHandler, BaseHandler, Done, HandlerDeps, Outcome, Request
from agent.response.handlers.freeze import FreezeHandler
from agent.response.handlers.patch import PatchHandler
from agent.response.handlers.quarantine import QuarantineHandler

__all__ = [
    "HANDLERS",
    "ActionHandler",
    "BaseHandler",
    "Done",
    "HandlerDeps",
    "HandlerFactory",
    "Outcome",
    "Request",
    "build_handlers",
    "register",
    "unregister",
]

HandlerFactory = Callable[[HandlerDeps], ActionHandler]

HANDLERS: dict[str, HandlerFactory] = {
    Action.FREEZE: FreezeHandler,
    Action.QUARANTINE: QuarantineHandler,
    Action.PATCH: PatchHandler,
}


def register(name: str, factory: HandlerFactory) -> None:
    """Add an action to the table (a name already taken is refused)."""
    if name in HANDLERS:
        raise ValueError(f"response action {name!r} is already registered")
    HANDLERS[name] = factory


def unregister(name: str) -> None:
    """Remove an action from the table (engines built before keep their handler)."""
    HANDLERS.pop(name, None)


def build_handlers(deps: HandlerDeps, table: Mapping[str, HandlerFactory] | None = None) -> dict[str, ActionHandler]:
    """One handler per entry of ``table`` (default: ``HANDLERS``), keyed by action name."""
    return {str(name): factory(deps) for name, factory in (HANDLERS if table is None else table).items()}
