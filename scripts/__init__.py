# SPDX-License-Identifier: Apache-2.0
"""Project tooling: set-up, install, demo, benchmarks, fixture capture."""
