# SPDX-License-Identifier: Apache-2.0
"""The base of every config section: frozen, unknown keys rejected."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A frozen config model whose unknown keys are errors (``extra="forbid"``) and whose numbers
    are finite (``1e400000`` or ``.inf`` is an error, not an interval that never ends)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)
