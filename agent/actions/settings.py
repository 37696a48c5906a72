# SPDX-License-Identifier: Apache-2.0
"""Config sections ``response`` and ``kubernetes``."""

from __future__ import annotations

from typing import Literal

from agent.settings_base import Section


class ResponseSettings(Section):
    mode: Literal["observe", "enforce"] = "observe"


class KubernetesSettings(Section):
    enabled: bool = False
