# SPDX-License-Identifier: Apache-2.0
"""riskguard-agent: keeps containers from becoming the door through which an attack spreads."""

__version__ = "0.1.0"
