# SPDX-License-Identifier: Apache-2.0
"""A container whose scan failed is itself a finding, and one failure never stops the queue.

``SCAN_LIMITS`` bound one container's inventory read (a sandbox child: wall clock, address space,
CPU). When the read is killed or fails, ``report_scan_failed`` reports a MEDIUM finding
(``vuln.scan_failed``: an image that exhausts the scanner is worth a look); when only one
package reader gave up (a view for a table, an oversized file), ``report_reader_failures``
reports a LOW one (``vuln.scan_incomplete``). Each is reported once per container and reason
kind (the ``vuln_reported`` table), so a hostile image does not repeat its finding every round.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from agent.context import AgentContext
from agent.findings import Finding, Severity, Source
from agent.runtime.model import Container
from agent.vuln.sandbox import SandboxLimits

# 768 MiB of address space: below the service's MemoryMax (512M RSS) with the child as the OOM
# killer's first choice (oom_score_adj 1000), so a hostile image can never get the agent killed.
SCAN_LIMITS = SandboxLimits(timeout=120.0, memory_bytes=768 << 20, cpu_seconds=90, result_bytes=128 << 20)

MIGRATIONS: list[str] = [
    """
    CREATE TABLE vuln_inventories (
        image_id TEXT PRIMARY KEY,
        read_at REAL NOT NULL,
        stamps TEXT NOT NULL,
        inventory TEXT NOT NULL
    );
    CREATE TABLE vuln_results (
        container_id TEXT PRIMARY KEY,
        container_name TEXT NOT NULL,
        image_id TEXT NOT NULL,
        scanned_at REAL NOT NULL,
        db_generation INTEGER NOT NULL,
        summary TEXT NOT NULL,
        matches TEXT NOT NULL,
        services TEXT NOT NULL
    );
    CREATE TABLE vuln_reported (
        container_id TEXT NOT NULL,
        vuln_key TEXT NOT NULL,
        first_seen REAL NOT NULL,
        PRIMARY KEY (container_id, vuln_key)
    );
    """,
]


def _first_time(ctx: AgentContext, c: Container, key: str) -> bool:
    cur = ctx.store.execute("INSERT OR IGNORE INTO vuln_reported VALUES (?, ?, ?)", (c.id, key, time.time()))
    return cur.rowcount > 0


def report_scan_failed(ctx: AgentContext, c: Container, kind: str, reason: str) -> bool:
    """Report that ``c``'s scan failed (``kind``: timeout, memory, cpu, crashed, error, result)."""
    if not _first_time(ctx, c, f"scan_failed\0{kind}"):
        return False
    ctx.report(
        Finding(
            container=c.ref(),
            source=Source.VULN,
            detector_id="vuln.scan_failed",
            severity=Severity.MEDIUM,
            summary=f"scan failed: {reason}",
            evidence={"kind": kind, "reason": reason, "image_id": c.image_id, "image": c.image},
        )
    )
    return True


def report_reader_failures(ctx: AgentContext, c: Container, failures: Mapping[str, str]) -> int:
    """Report each package reader that gave up on ``c`` (once per container and reader)."""
    n = 0
    for reader, reason in sorted(failures.items()):
        if not _first_time(ctx, c, f"scan_incomplete\0{reader}"):
            continue
        ctx.report(
            Finding(
                container=c.ref(),
                source=Source.VULN,
                detector_id="vuln.scan_incomplete",
                severity=Severity.LOW,
                summary=f"scan incomplete: {reader}: {reason}",
                evidence={"reader": reader, "reason": reason, "image_id": c.image_id, "image": c.image},
            )
        )
        n += 1
    return n
