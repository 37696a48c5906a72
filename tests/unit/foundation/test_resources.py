# SPDX-License-Identifier: Apache-2.0
"""Shipped data is found in a checkout, and where RISKGUARD_DATA_DIR points."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.resources import data_dir
from tests.support import REPO


def test_checkout_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RISKGUARD_DATA_DIR", raising=False)
    assert data_dir("config", "grok") == REPO / "config" / "grok"
    assert (data_dir("probes") / "exec.bpf.c").is_file()


def test_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RISKGUARD_DATA_DIR", str(tmp_path))
    assert data_dir("config", "rules", "sigma") == tmp_path / "config" / "rules" / "sigma"
