# SPDX-License-Identifier: Apache-2.0
"""A response engine that sees the host as the DaemonSet pod does, for the cgroup-v2 quarantine
test. Run it under ``unshare --mount --propagation private``: it mounts the host's ``/proc`` and
``/sys`` below ROOT (the pod's ``/host``, ``host.root``), then hides its own ``/sys/fs/cgroup``
under an empty tmpfs (a pod's ``/sys/fs/cgroup`` is its own cgroup namespace's view, where no other
container's cgroup is), and quarantines the container whose ``docker inspect`` data is in
INSPECT_JSON with the ``cgroup`` method (v2 match). With CGROUP (a name), it first moves into a
v2 cgroup of that name and a cgroup namespace rooted there, as a pod's agent is (the test removes
the cgroup), so the container's cgroups are read from that namespace too.

Usage: pod_quarantine_child.py ROOT INSPECT_JSON STATE_DIR [CGROUP]
Prints one ``RESULT <json>`` line (the agent logs to stdout too) after the quarantine (``phase``,
``detail``, ``state``, ``own_view``: what its own ``/sys/fs/cgroup`` holds, ``own_cgroup``: its
/proc/self/cgroup v2 line), then one after each ``release`` line read on stdin.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import Event
from agent.findings import Finding
from agent.hostfs import HostPaths
from agent.pipeline import Bus
from agent.response.engine import ResponseEngine
from agent.runtime.docker import container_from_inspect
from agent.runtime.model import ContainerRegistry
from agent.runtime.netns import NFT_CGROUP2_ROOT
from agent.store import Store

CLONE_NEWCGROUP = 0x02000000


def pod_mounts(root: Path) -> None:
    """The DaemonSet's ``host-proc`` and ``host-sys`` volumes (recursive binds), and a pod's own
    ``/sys/fs/cgroup`` that does not hold the host's hierarchy."""
    for sub in ("proc", "sys"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--rbind", f"/{sub}", str(root / sub)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "rg-pod-cgroup", str(NFT_CGROUP2_ROOT)], check=True)


def own_cgroup_namespace(paths: HostPaths, name: str) -> None:
    """Move into the v2 cgroup ``name`` and unshare a cgroup namespace rooted there (the process
    is still single-threaded: unshare(CLONE_NEWCGROUP) applies to the caller only)."""
    cg = paths.cgroup_v2 / name
    cg.mkdir()
    (cg / "cgroup.procs").write_text(str(os.getpid()))
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.unshare(CLONE_NEWCGROUP) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWCGROUP)")


def main() -> int:
    root, inspect, state = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    pod_mounts(root)
    paths = HostPaths.under(root).with_state(state, run=state / "run")
    if len(sys.argv) > 4:
        own_cgroup_namespace(paths, sys.argv[4])
    attrs = json.loads(inspect.read_text())
    rec = container_from_inspect(paths, attrs)
    assert rec is not None and rec.cgroup_v2, "the container is not running or has no v2 cgroup"
    registry = ContainerRegistry()
    registry.upsert(rec)
    ctx = AgentContext(
        config=AgentConfig.model_validate(
            {"response": {"mode": "enforce", "quarantine": "cgroup", "quarantine_cgroup": "v2"}}
        ),
        paths=paths,
        store=Store(state / "agent.db"),
        registry=registry,
        events=Bus[Event]("events"),
        findings=Bus[Finding]("findings"),
    )
    engine = ResponseEngine(ctx)
    out = engine.isolate(rec.id, "quarantine")
    own_view = sorted(p.name for p in NFT_CGROUP2_ROOT.iterdir())
    own_cgroup = [line for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::")]
    report = {"phase": out.phase, "detail": out.detail, "state": out.state, "record": [rec.cgroup_v2, rec.cgroup_id]}
    print("RESULT", json.dumps({**report, "own_view": own_view, "own_cgroup": own_cgroup}), flush=True)
    for line in sys.stdin:
        if line.strip() == "release":
            [released] = engine.release(rec.id)
            print("RESULT", json.dumps({"phase": released.phase, "detail": released.detail}), flush=True)
    ctx.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
