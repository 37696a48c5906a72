# SPDX-License-Identifier: Apache-2.0
"""A container's first window is partial (it, or the agent, started within it): the behaviour
component neither learns from it nor scores it; every later window is queued."""

from __future__ import annotations

import random
from collections.abc import Callable

from behavior_synth import container, normal_window

from agent.behavior.component import BehaviorComponent
from agent.config import AgentConfig
from agent.context import AgentContext


def test_the_first_window_of_each_container_is_skipped_once(make_ctx: Callable[..., AgentContext]) -> None:
    comp = BehaviorComponent(make_ctx(AgentConfig()))
    rng = random.Random(1)
    a, b = container(1), container(2)
    for t in range(3):
        comp.on_window(normal_window(rng, float(t), a))
    comp.on_window(normal_window(rng, 0.0, b))
    assert comp.engine.counters["first_window_skipped"] == 2
    assert comp.queue.qsize() == 2  # a's second and third windows
    comp.on_container("removed", a)  # a container id seen again later starts over
    comp.on_window(normal_window(rng, 9.0, a))
    assert comp.engine.counters["first_window_skipped"] == 3
