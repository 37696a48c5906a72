# SPDX-License-Identifier: Apache-2.0
"""Where the data files the agent ships live (grok patterns, rules, SELinux templates, probes).

In a checkout they sit beside the package (``config/…``, ``probes/``). ``make install`` copies
them to ``/opt/riskguard/share`` and the unit sets ``RISKGUARD_DATA_DIR`` to it.
"""

from __future__ import annotations

import os
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def data_dir(*parts: str) -> Path:
    """The shipped data folder ``parts`` (e.g. ``data_dir("config", "grok")``)."""
    base = os.environ.get("RISKGUARD_DATA_DIR")
    return (Path(base) if base else SOURCE_ROOT).joinpath(*parts)
