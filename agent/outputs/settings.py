# SPDX-License-Identifier: Apache-2.0
"""Config section ``outputs``."""

from __future__ import annotations

from pathlib import Path

from agent.settings_base import Section


class OutputsSettings(Section):
    alerts_file: Path | None = Path("/var/lib/riskguard/alerts.jsonl")
