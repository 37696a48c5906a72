# SPDX-License-Identifier: Apache-2.0
"""The ``docker`` quarantine disconnects through the dockerd the agent watches
(``runtime.docker_url``), not a socket path of its own: a daemon on another socket (a second
dockerd, a DaemonSet's ``/host`` mount, tcp://) is the one that holds the container's networks.
The daemon here is a local one speaking the Engine API on the test's own socket; nothing listens
at the default socket path below the test's host tree."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.hostfs import HostPaths
from agent.response.handlers import HandlerDeps, Request
from agent.response.handlers.quarantine import QuarantineHandler
from agent.response.model import ActionRecord
from agent.runtime.model import Container
from tests.fakes.dockerd import fake_dockerd

CID = "c" * 64
INSPECT = {
    "Id": CID,
    "Name": "/web",
    "State": {"Running": True, "Pid": 4242},
    "HostConfig": {"NetworkMode": "shop"},
    "NetworkSettings": {
        "Networks": {"shop": {"NetworkID": "n" * 64, "Aliases": ["web", CID[:12]], "IPAddress": "10.9.0.2"}}
    },
}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a unix socket path must fit in 108 bytes."""
    d = Path(tempfile.mkdtemp(prefix="rgdock-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_docker_quarantine_asks_the_configured_dockerd(
    short_dir: Path, make_ctx: Callable[..., AgentContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{short_dir}/nothing.sock")
    with fake_dockerd(short_dir / "d.sock", containers={CID: INSPECT}) as dockerd:
        config = AgentConfig.model_validate({"runtime": {"docker_url": dockerd.url}})
        ctx = make_ctx(config=config, paths=HostPaths.under(short_dir / "host"))  # no socket at its default path
        handler = QuarantineHandler(HandlerDeps(ctx=ctx))
        web = Container(id=CID, name="web", image="shop", image_id="", runtime="docker", init_pid=4242)
        out = handler.apply(Request(container=web, method="docker", dry_run=True, reason="test"))
        assert out.ok, out.detail
        assert out.detail == "would disconnect from shop"
        assert out.state["networks"][0]["aliases"] == ["web"]  # the container's own id is not kept
        assert f"/containers/{CID}/json" in dockerd.requests
        # release asks the same daemon: the container is there, already on its network
        rec = ActionRecord(
            id="a1",
            container_id=CID,
            action="quarantine",
            phase="confirmed",
            actor="policy",
            created=0.0,
            updated=0.0,
            init_pid=4242,
            method="docker",
            state=out.state,
        )
        done = handler.release(rec)
        assert done.ok and done.detail == "already connected", done.detail
        assert dockerd.requests.count(f"/containers/{CID}/json") >= 2
