# SPDX-License-Identifier: Apache-2.0
"""A response engine in its own process, for the crash tests: it isolates one container and,
with ``--hang-after-intent``, stops right after the intent is recorded (the test SIGKILLs it).

Usage: engine_child.py STATE_DB CONTAINER_ID ACTION [--hang-after-intent]
Prints ``INTENT <action id>`` and ``DONE <phase>`` lines on stdout.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import docker

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import Event
from agent.findings import Finding
from agent.hostfs import HostPaths
from agent.pipeline import Bus
from agent.response.engine import ResponseEngine
from agent.runtime.docker import container_from_inspect
from agent.runtime.model import ContainerRegistry
from agent.store import Store


def main() -> int:
    db, cid, action = sys.argv[1], sys.argv[2], sys.argv[3]
    hang = "--hang-after-intent" in sys.argv
    paths = HostPaths()
    registry = ContainerRegistry()
    rec = container_from_inspect(paths, docker.from_env().containers.get(cid).attrs)
    assert rec is not None
    registry.upsert(rec)
    ctx = AgentContext(
        config=AgentConfig.model_validate({"response": {"mode": "enforce", "quarantine": "netns"}}),
        paths=paths,
        store=Store(Path(db)),
        registry=registry,
        events=Bus[Event]("events"),
        findings=Bus[Finding]("findings"),
    )
    engine = ResponseEngine(ctx)

    def on_intent(action_id: str, _c: object, _a: object) -> None:
        print(f"INTENT {action_id}", flush=True)
        if hang:
            time.sleep(600)

    engine.intent_observers.append(on_intent)
    out = engine.isolate(cid, action)
    print(f"DONE {out.phase}", flush=True)
    time.sleep(600)  # stay alive until killed: the test decides when the "crash" happens
    return 0


if __name__ == "__main__":
    sys.exit(main())
