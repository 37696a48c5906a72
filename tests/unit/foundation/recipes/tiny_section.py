# SPDX-License-Identifier: Apache-2.0
"""Step 2 of the source recipe for the tiny source: its section model, and the field that
includes it in ``agent.yaml``. ``test_recipes`` adds both to a copy of
``agent/settings/sources.py`` (the model before ``SourceSections``, the field at its end), as a
developer would by hand."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from agent.settings.base import Section


class TinySettings(Section):
    """The tiny source: a file of ``<container id> <pid> <comm> <path>`` lines."""

    enabled: bool = True
    # The file it reads; a relative path is under state.dir.
    path: Path = Path("tiny.log")
    # Seconds between two reads of the file.
    poll_seconds: float = Field(default=0.05, gt=0, le=60)


FIELD = """
    # The tiny source of tests/unit/foundation/recipes.
    tiny: TinySettings = TinySettings()
"""
