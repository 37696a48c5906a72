# SPDX-License-Identifier: Apache-2.0
"""Config section ``logs``: tailing, structuring, sequence models."""

from __future__ import annotations

from pydantic import Field

from agent.settings_base import Section


class LogsSettings(Section):
    enabled: bool = True
    poll_seconds: float = Field(default=1.0, gt=0)
