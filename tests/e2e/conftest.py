# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.daemon import Daemon
from tests.support import need_root

# The tier runs in two lanes (`pytest -n 2 --dist loadgroup`, see the Makefile): most of its
# time is spent waiting (learning periods, a five-minute benign corpus, an image build), so the
# long corpus and the behaviour test share one lane and everything else runs in the other. Each
# test's agent enforces only on its own containers (label overrides), tags its audit rules with a
# key of its own (daemon.py), and baselines the images it asserts on apart from the other lane's
# (the corpus' own images; a baseline group label for the behaviour test).
_LANE_OF = {"test_benign_corpus.py": "corpus", "test_behaviour_live.py": "corpus"}
_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "xdist_group(name): the e2e lane a test runs in (pytest-xdist loadgroup)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent == _HERE and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(_LANE_OF.get(item.path.name, "main")))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``daemon(config_text)`` starts the agent and waits for READY=1; stopped at teardown."""
    need_root()
    started: list[Daemon] = []

    def _start(config_text: str = "", env: dict[str, str] | None = None, wait: bool = True) -> Daemon:
        d = Daemon(tmp_path / f"d{len(started)}", config_text, env)
        started.append(d)
        d.start()
        if wait:
            d.wait_ready()
        return d

    yield _start
    for d in started:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()
