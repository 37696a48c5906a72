# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the eBPF tests: ``agent`` (see ``harness.py``)."""

from __future__ import annotations

from tests.privileged.ebpf.harness import agent  # noqa: F401 - a fixture, found by name
