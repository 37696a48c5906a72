# SPDX-License-Identifier: Apache-2.0
"""Capture raw probe records from a real container into ``records/records.jsonl`` (root).

Run: ``.venv/bin/python tests/unit/ebpf/capture_records.py``. It starts a busybox container,
loads the probes, runs ls, cat /etc/shadow, a write below /etc, nc listen/connect/accept,
unshare, rm and mv below /var/log, touch -d, cat /proc/1/cmdline, a shell that exits 3 and a cat
whose stdout is a file, and writes one JSON object per record: probe name and the record bytes in hex. The
unit tests decode these bytes; re-run this when a record layout in probes/*.h changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.events import Event
from agent.findings import Finding
from agent.hostfs import HostPaths
from agent.pipeline import Bus
from agent.runtime.docker import container_from_inspect
from agent.runtime.model import ContainerRegistry
from agent.sources.ebpf import build
from agent.store import Store

OUT = Path(__file__).resolve().parent / "records" / "records.jsonl"


def main() -> int:
    state = Path(tempfile.mkdtemp(prefix="rg-capture-"))
    ctx = AgentContext(
        config=AgentConfig(),
        paths=HostPaths().with_state(state),
        store=Store(state / "a.db"),
        registry=ContainerRegistry(),
        events=Bus[Event]("events"),
        findings=Bus[Finding]("findings"),
    )
    client = docker.from_env()
    c = client.containers.run(
        "riskguard-test/busybox",
        ["sleep", "120"],
        detach=True,
        network_mode="none",
        security_opt=["seccomp=unconfined"],
        labels={"riskguard.test": "1"},
    )
    records: list[tuple[str, bytes]] = []
    try:
        c.reload()
        rec = container_from_inspect(HostPaths(), c.attrs)
        assert rec is not None
        src = build(ctx)
        assert src is not None
        ctx.registry.add_listener(src.on_container)
        src.start(ctx)
        # Keep a copy of every raw record as the reader thread takes its batch.
        orig = src.reader.process_batch

        def spy() -> int:
            records.extend(src.reader.batch)
            return orig()

        src.reader.process_batch = spy  # type: ignore[method-assign]
        ctx.registry.upsert(rec)
        for cmd in (
            ["ls", "/etc"],
            ["cat", "/etc/shadow"],
            ["sh", "-c", "echo x > /etc/rg-written"],
            [
                "sh",
                "-c",
                "sleep 2 | nc -l -p 8080 >/dev/null & sleep 0.3; (echo hi; sleep 1) | nc 127.0.0.1 8080; wait",
            ],
            ["unshare", "-m", "true"],
            ["sh", "-c", "echo x > /var/log/rg.log && mv /var/log/rg.log /var/log/rg.old && rm /var/log/rg.old"],
            ["sh", "-c", "echo x > /tmp/rg-t && touch -d '2020-01-01 00:00:00' /tmp/rg-t"],
            ["cat", "/proc/1/cmdline"],
            ["sh", "-c", "sleep 0.1; exit 3"],
            ["sh", "-c", "cat /etc/hostname > /tmp/rg-out; true"],
        ):
            subprocess.run(["docker", "exec", c.id, *cmd], capture_output=True, timeout=30)
        time.sleep(0.5)
        src.stop()
    finally:
        c.remove(force=True)
    with OUT.open("w") as f:
        for probe, raw in records:
            f.write(json.dumps({"probe": probe, "hex": raw.hex()}) + "\n")
    print(f"wrote {len(records)} records to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
