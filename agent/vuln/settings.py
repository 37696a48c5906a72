# SPDX-License-Identifier: Apache-2.0
"""Config sections ``scan`` and ``vulndb``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from agent.settings_base import Section


class ScanSettings(Section):
    enabled: bool = True
    interval_seconds: float = Field(default=21600.0, gt=0)


class VulnDbSettings(Section):
    path: Path = Path("/var/lib/riskguard/vulndb.sqlite")
