# SPDX-License-Identifier: Apache-2.0
"""A container's first window is partial (it, or the agent, started within it): while its image
learns the window is learned (a start-up that listens belongs to the baseline); once the image is
scored, a new container's first window is not judged, and every later window is."""

from __future__ import annotations

import random
from collections.abc import Callable

from behavior_synth import container, normal_window

from agent.behavior.component import BehaviorComponent
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.settings.behavior import BehaviorSettings

SETTINGS = BehaviorSettings(
    window_seconds=2.0, learning_seconds=60.0, min_windows=30, refit_seconds=0, fit_in_subprocess=False
)


def test_first_windows_are_learned_while_learning_and_not_judged_once_scored(
    make_ctx: Callable[..., AgentContext],
) -> None:
    comp = BehaviorComponent(make_ctx(AgentConfig(behavior=SETTINGS)))
    rng = random.Random(1)
    first, fresh = container(1), container(2)
    comp.on_window(normal_window(rng, 1000.0, first))
    assert comp.queue.qsize() == 1  # learning: the first window is kept
    for i in range(1, 60):
        w = normal_window(rng, 1000 + 2 * i, first)
        comp.engine.process([w], now=w.end)
    key = comp.engine.baseline_key(first)
    comp.engine.fit(key, now=1200.0)
    assert comp.engine.baselines[key].model is not None
    comp.on_window(normal_window(rng, 1200.0, fresh))  # scored image: the partial first window
    assert comp.engine.counters["first_window_not_scored"] == 1
    assert comp.queue.qsize() == 1
    comp.on_window(normal_window(rng, 1202.0, fresh))
    assert comp.queue.qsize() == 2
    comp.on_container("removed", fresh)  # a container id seen again later starts over
    comp.on_window(normal_window(rng, 1300.0, fresh))
    assert comp.engine.counters["first_window_not_scored"] == 2
