# SPDX-License-Identifier: Apache-2.0
"""Where the data files the agent ships live (grok patterns, rules, SELinux templates, probes),
and giving the process's freed heap back to the kernel (``release_free_heap``).

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


# How many times release_free_heap ran, and how long the last one took (status: process).
HEAP_TRIMS: dict[str, float] = {"count": 0, "last_ms": 0.0}


def release_free_heap() -> bool:
    """glibc's ``malloc_trim(0)``: return the free pages inside every malloc arena (the threads'
    too) to the kernel. Python and the libraries it calls free memory that glibc keeps resident
    for reuse: after start-up, compiling the probes, a model fit, a scan or a burst of events.
    Takes about a millisecond; False where the C library has no ``malloc_trim`` (musl)."""
    import ctypes
    import time

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    t0 = time.monotonic()
    trim(0)
    HEAP_TRIMS["count"] += 1
    HEAP_TRIMS["last_ms"] = round((time.monotonic() - t0) * 1000, 2)
    return True
