# SPDX-License-Identifier: Apache-2.0
"""Every config section model, one module per section owner: the lowest layer of the agent.

These modules import pydantic and ``agent.settings.base`` only, never another part of the agent,
so ``agent.config``, ``agent.context`` and every subsystem can import them without climbing a layer.
"""
