# SPDX-License-Identifier: Apache-2.0
"""RG-0004 from the /proc source: running executables that are memfd-backed or in /tmp."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.context import AgentContext
from agent.detectors.component import DetectorsComponent
from agent.detectors.registry import BY_ID
from agent.events import ProcSnapshot
from agent.findings import Finding
from agent.settings.detectors import DetectorsSettings
from agent.wiring import attach
from tests.support import need_root, wait_for


def test_rg0004_from_proc_snapshots(
    make_ctx: Callable[..., AgentContext],
    run_container: Callable[..., Any],
    container_record: Callable[[Any], Any],
    trigger_binary: Path,
) -> None:
    need_root()
    from agent.sources import procfs

    c = run_container(
        "sh",
        "-c",
        # busybox picks its applet from argv[0]: a copy named "sleep" sleeps.
        "cp /bin/busybox /tmp/sleep; /tmp/sleep 300 & /opt/rg/rgtrigger memfd /bin/busybox sleep 300 & wait",
        volumes={str(trigger_binary): {"bind": "/opt/rg", "mode": "ro"}},
    )
    ctx = make_ctx()
    ctx.registry.upsert(container_record(c))
    source = procfs.build(ctx)
    assert source is not None
    comp = DetectorsComponent(DetectorsSettings(), (BY_ID["RG-0004"],))
    attach(ctx, comp)
    found: list[Finding] = []
    ctx.findings.subscribe(found.append)

    def snap() -> ProcSnapshot | None:
        snaps = [s for s in source.collect() if len(s.suspicious_exes) >= 2]
        return snaps[0] if snaps else None

    # collect() publishes on ctx.events; run the bus synchronously below.
    s = wait_for(snap, timeout=10, what="a snapshot with both suspicious executables")
    assert isinstance(s, ProcSnapshot)
    while (ev := ctx.events.queue.get(0.01)) is not None:
        ctx.events.process(ev)
    while (f := ctx.findings.queue.get(0.01)) is not None:
        ctx.findings.process(f)
    assert found, "no RG-0004 finding from the snapshot"
    f = found[-1]
    assert f.container_id == c.id and f.detector_id == "RG-0004"
    whys = {w for _pid, _exe, w in f.evidence["all"]}
    assert {"memfd", "writable_dir"} <= whys, f.evidence
    assert f.evidence["why"] in ("memfd", "writable_dir") and f.severity.name == "HIGH"
