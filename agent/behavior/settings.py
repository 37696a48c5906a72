# SPDX-License-Identifier: Apache-2.0
"""Config section ``behavior``: windows, baselines, deviation scoring."""

from __future__ import annotations

from pydantic import Field

from agent.settings_base import Section


class BehaviorSettings(Section):
    enabled: bool = True
    window_seconds: float = Field(default=10.0, gt=0)
    learning_seconds: float = Field(default=600.0, ge=0)
