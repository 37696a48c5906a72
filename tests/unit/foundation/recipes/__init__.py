# SPDX-License-Identifier: Apache-2.0
"""Tiny examples of the "how to add …" recipes in docs/architecture.md (used by test_recipes)."""
