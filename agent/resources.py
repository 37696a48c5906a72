# SPDX-License-Identifier: Apache-2.0
"""Where the data files the agent ships live (grok patterns, rules, SELinux templates, probes).

In a checkout they sit beside the package (``config/…``, ``probes/``). ``make install`` copies
them to ``/opt/riskguard/share``, beside the venv (``/opt/riskguard/venv``); the unit also sets
``RISKGUARD_DATA_DIR`` to it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def data_dir(*parts: str) -> Path:
    """The shipped data folder ``parts`` (e.g. ``data_dir("config", "grok")``).

    ``$RISKGUARD_DATA_DIR`` when set; else the checkout, else ``share/`` beside the venv.
    """
    base = os.environ.get("RISKGUARD_DATA_DIR")
    if base:
        return Path(base).joinpath(*parts)
    for root in (SOURCE_ROOT, Path(sys.prefix).parent / "share"):
        if root.joinpath(*parts).exists():
            return root.joinpath(*parts)
    return SOURCE_ROOT.joinpath(*parts)
