# SPDX-License-Identifier: Apache-2.0
"""Is a process part of its container's start-up: the entrypoint and the hook scripts it runs?

An nginx-style entrypoint (``/docker-entrypoint.sh``) runs ``/docker-entrypoint.d/*.sh`` hooks
that write configuration below /etc (``envsubst > /etc/nginx/conf.d/default.conf``, ``sed -i``)
before it execs the server. Such a write is start-up when the writer runs below the container's
init process through start-up programs only (shells, init systems, wrappers, supervisors) and
within ``detectors.startup_seconds`` of the container's start. A server started by the
entrypoint (role other or interpreter) breaks the chain: what its children write is not
start-up. An init that exec'd its server after the event (``exec nginx`` at the end of the
entrypoint) is judged by what it ran before, as lineage remembers it.
"""

from __future__ import annotations

from agent.detectors.lineage import ProcInfo
from agent.detectors.spec import DetectorState

STARTUP_ROLES = ("shell", "init", "wrapper", "supervisor")
# Clock slack between an event's time and the init's start read from /proc (clock ticks).
SLACK_SECONDS = 1.0


def startup_entry(state: DetectorState, container: str, chain: list[ProcInfo], ts: float) -> ProcInfo | None:
    """The container's init process when ``chain`` (the process first, then its ancestors)
    reaches it through start-up programs only within ``detectors.startup_seconds`` of the
    container's start; ``None`` otherwise (no container, init unknown, an application in
    between, late)."""
    window = state.settings.startup_seconds
    if not container or not chain or window <= 0:
        return None
    init = state.init_pid(container)
    idx = next((i for i, p in enumerate(chain) if p.pid == init), -1) if init > 0 else -1
    if idx < 0:
        return None
    # The writer itself may be any program (sed, envsubst, cp); those between it and the init
    # must be start-up programs, and so must the init.
    if any(p.role not in STARTUP_ROLES for p in chain[1:idx]):
        return None
    entry = chain[idx]
    if entry.role not in STARTUP_ROLES:
        # An entrypoint that exec'd its server after the event: what it ran before decides
        # (unknown when the agent started later: the exec after the event shows it was a
        # program that hands over, the entrypoint pattern).
        before = state.lineage.previous.get((container, init))
        replaced = entry.source == "exec" and entry.start_ts > ts
        if not replaced or (before is not None and before.role not in STARTUP_ROLES):
            return None
    start = state.started_at(container)
    if start <= 0:
        start = state.lineage.proc_start(init)
    if start <= 0 or not start - SLACK_SECONDS <= ts <= start + window:
        return None
    return entry
