# SPDX-License-Identifier: Apache-2.0
"""Config section ``network``: managed networking and least-privilege rules."""

from __future__ import annotations

from agent.settings_base import Section


class NetworkSettings(Section):
    enabled: bool = True
