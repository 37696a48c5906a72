# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.daemon import Daemon
from tests.support import need_root


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
