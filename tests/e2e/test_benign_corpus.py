# SPDX-License-Identifier: Apache-2.0
"""Enforce mode on a realistic host: ordinary containers are never acted on, every
post-exploitation technique is seen, and the must-isolate class is frozen within a second.

One agent with the product's defaults (a short learning period; enforce on the corpus's
containers only) watches the corpus of tests/e2e/corpus for more than five minutes: shell-script
apps with hooks, busybox crond, nginx-style entrypoints (started after learning), a HEALTHCHECK
every 2 s, a Python app using subprocess(shell=True), an `apt-get install` of a local .deb at
start, log rotation and an operator's `docker exec` maintenance. Beside them, each technique is
written into a shell session opened early in a container of its own. On failure the message
holds the per-container and per-technique tables and every finding that caused it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.corpus import report, spec
from tests.e2e.corpus.run import Durations, agent_settings, run_corpus
from tests.e2e.daemon import Daemon
from tests.support import REPO, need, need_tool


# about six minutes of corpus, plus image builds and the agent's start (pytest's default is 300 s)
@pytest.mark.timeout(720)
def test_benign_corpus_is_left_alone_and_every_technique_is_caught(docker_client: Any, tmp_path: Path) -> None:
    for image in spec.BASE_IMAGES:
        need(bool(docker_client.images.list(name=image)), f"This test needs the local image {image} (setup-host.sh).")
    need_tool("dpkg-deb")
    need_tool("nsenter")
    durations = Durations()
    run_id = uuid.uuid4().hex[:8]
    d = Daemon(tmp_path / "agent", "")
    d.write_config(agent_settings(d.tmp / "state", run_id, durations.learn))
    d.start()
    try:
        d.wait_ready()
        result = run_corpus(docker_client, d.socket, tmp_path, run_id, durations, say=lambda s: print(f"corpus: {s}"))
    finally:
        d.stop()
    (REPO / "bench-results").mkdir(exist_ok=True)
    (REPO / "bench-results" / "benign-corpus.json").write_text(result.to_json() + "\n")
    scores = report.scores(result)
    print("\n" + report.table(result))
    print(json.dumps(scores, indent=1))

    # the corpus ran for real: at least five minutes watched, learning first
    assert result.ended - result.started >= 300
    assert result.learn_ended - result.started >= durations.learn
    failed = {k: v for k, v in result.agent_status["components"].items() if v.get("state") != "running"}

    problems = report.benign_problems(result) + report.attack_problems(result)
    assert not problems and not failed, "\n".join(
        ["", *problems, f"components not running: {failed}", "", report.table(result), report.details(result)]
    )
    assert scores["recall"] == 1.0 and scores["isolation_recall"] == 1.0
    assert scores["benign_containers_isolated"] == []
