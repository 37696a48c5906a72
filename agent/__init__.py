# SPDX-License-Identifier: Apache-2.0
"""riskguard-agent: keeps containers from becoming the door through which an attack spreads."""

import sys

__version__ = "0.1.0"


def _import_structlog_without_rich() -> None:
    """Import structlog while ``rich`` is hidden, before any other module of ours can.

    structlog imports rich (and through it pygments, attrs, decimal …: about 5 MiB resident) as
    soon as it is installed, only to offer rich tracebacks in its console renderer. Our log
    set-up (``agent.logsetup``) renders tracebacks with ``format_exc_info`` in every mode, so the
    daemon never needs rich. ``sys.modules[name] = None`` makes ``import rich`` fail for the
    length of structlog's import (structlog then falls back to plain tracebacks); rich is
    importable again right after, for the tables of riskguardctl and the offline tools
    (``agent.console``). Nothing to do when structlog or rich is already loaded (a test runner,
    a tool that imported rich first).
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog  # noqa: F401
    finally:
        if "rich" in sys.modules and sys.modules["rich"] is None:
            del sys.modules["rich"]


_import_structlog_without_rich()
