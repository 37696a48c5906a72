# SPDX-License-Identifier: Apache-2.0
"""Is a process part of its container's start-up: the entrypoint and the hook scripts it runs?

An nginx-style entrypoint (``/docker-entrypoint.sh``) runs ``/docker-entrypoint.d/*.sh`` hooks
that write configuration below /etc (``envsubst > /etc/nginx/conf.d/default.conf``, ``sed -i``)
before it execs the server. Such a write is start-up when the writer runs below the container's
init process through start-up programs only (shells, init systems, wrappers, supervisors) and
within ``detectors.startup_seconds`` of the init's start. A server started by the entrypoint
(role other or interpreter) breaks the chain: what it or its children write is not start-up.
"""

from __future__ import annotations

from agent.detectors.lineage import ProcInfo
from agent.detectors.spec import DetectorState

STARTUP_ROLES = ("shell", "init", "wrapper", "supervisor")
# Clock slack between an event's time and the init's start read from /proc (clock ticks).
SLACK_SECONDS = 1.0


def startup_entry(state: DetectorState, container: str, chain: list[ProcInfo], ts: float) -> ProcInfo | None:
    """The container's init process when ``chain`` (the process first, then its ancestors)
    reaches it through start-up programs only within ``detectors.startup_seconds`` of its
    start; ``None`` otherwise (no container, init unknown, an application in between, late)."""
    window = state.settings.startup_seconds
    if not container or not chain or window <= 0:
        return None
    init = state.init_pid(container)
    if init <= 0:
        return None
    idx = next((i for i, p in enumerate(chain) if p.pid == init), -1)
    if idx < 0:
        return None
    # The writer itself may be any program (sed, envsubst, cp); those above it must be start-up
    # programs, and so must the init when it is the writer.
    between = chain[1 : idx + 1] if idx > 0 else chain[:1]
    if any(p.role not in STARTUP_ROLES for p in between):
        return None
    entry = chain[idx]
    start = entry.start_ts
    if start <= 0:
        known = state.lineage.lookup(container, init)
        start = known.start_ts if known is not None else 0.0
    if start <= 0 or not start - SLACK_SECONDS <= ts <= start + window:
        return None
    return entry
