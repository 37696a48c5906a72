# SPDX-License-Identifier: Apache-2.0
"""Freeze and thaw a container through its cgroup: v1 ``freezer.state`` or v2 ``cgroup.freeze``.

Writes go straight to the cgroup files found through ``HostPaths`` (no runtime API in the way:
a frozen container stays frozen even if dockerd is down). The v1 freezer can stay in FREEZING
while tasks fork concurrently; we retry as runc does (``libcontainer/cgroups/fs/freezer.go``):
re-write FROZEN, with an occasional THAWED + 10 ms pause so that the freeze eventually wins. The
v2 freeze is asynchronous: we poll ``cgroup.events`` until the kernel reports ``frozen 1``.
Every result is confirmed by reading the state back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import structlog

from agent.findings import Action, ActionResult
from agent.hostfs import HostPaths
from agent.runtime.cgroups import cgroup_dir_v1, cgroup_dir_v2
from agent.runtime.model import Container

log = structlog.get_logger("agent.response")

FreezerKind = Literal["v1", "v2"]
FreezeState = Literal["frozen", "thawed", "freezing", "gone"]


class FreezeError(Exception):
    """The container's cgroup could not be frozen or thawed."""


def freezer_of(paths: HostPaths, container: Container, method: str = "auto") -> tuple[FreezerKind, Path]:
    """The freezer the container is frozen through: (kind, cgroup directory).

    ``auto`` prefers the v1 freezer when the container has one (Docker on a hybrid host uses it
    for ``docker pause`` too), else the v2 cgroup. A root cgroup is refused: that is the host.
    """
    v1 = container.cgroup_v1.get("freezer", "")
    v2 = container.cgroup_v2
    if method == "v1" or (method == "auto" and v1):
        if not v1 or v1.strip("/") == "":
            raise FreezeError(f"container {container.short_id} has no v1 freezer cgroup of its own")
        return "v1", cgroup_dir_v1(paths, "freezer", v1)
    if not v2 or v2.strip("/") == "":
        raise FreezeError(f"container {container.short_id} has no v2 cgroup of its own")
    return "v2", cgroup_dir_v2(paths, v2)


def read_state(kind: FreezerKind, cgdir: Path) -> FreezeState:
    """The freezer state as the kernel reports it."""
    try:
        if kind == "v1":
            raw = (cgdir / "freezer.state").read_text().strip()
            return {"FROZEN": "frozen", "FREEZING": "freezing"}.get(raw, "thawed")  # type: ignore[return-value]
        events = (cgdir / "cgroup.events").read_text().split()
        frozen = dict(zip(events[::2], events[1::2], strict=False)).get("frozen") == "1"
        if frozen:
            return "frozen"
        return "freezing" if (cgdir / "cgroup.freeze").read_text().strip() == "1" else "thawed"
    except FileNotFoundError:
        return "gone"


def _freeze_v1(cgdir: Path, timeout: float) -> int:
    """runc's freezeWithRetries; returns the attempts used."""
    state_file = cgdir / "freezer.state"
    deadline = time.monotonic() + timeout
    for i in range(1000):
        if i % 50 == 49:
            # runc: "Occasional thaw and sleep improves the odds to complete freeze when there
            # are many processes under the cgroup" (new forks keep the freezer in FREEZING).
            state_file.write_text("THAWED")
            time.sleep(0.01)
        state_file.write_text("FROZEN")
        if i % 25 == 24:
            time.sleep(10e-6)
        state = state_file.read_text().strip()
        if state == "FROZEN":
            return i + 1
        if state != "FREEZING":
            raise FreezeError(f"unexpected freezer.state {state!r} in {cgdir}")
        if time.monotonic() > deadline:
            break
    state_file.write_text("THAWED")  # never leave a half-frozen cgroup behind
    raise FreezeError(f"{cgdir} stayed FREEZING (forks racing the freezer?)")


def _freeze_v2(cgdir: Path, timeout: float) -> int:
    """Write ``1`` to cgroup.freeze and poll cgroup.events until ``frozen 1``; returns polls."""
    (cgdir / "cgroup.freeze").write_text("1")
    deadline = time.monotonic() + timeout
    delay = 20e-6
    polls = 0
    while True:
        polls += 1
        if read_state("v2", cgdir) == "frozen":
            return polls
        if time.monotonic() > deadline:
            (cgdir / "cgroup.freeze").write_text("0")
            raise FreezeError(f"{cgdir} did not report frozen within {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 2e-3)


def freeze(
    paths: HostPaths,
    container: Container,
    method: str = "auto",
    timeout: float = 5.0,
    dry_run: bool = False,
) -> ActionResult:
    """Freeze every process of ``container``; the result says how (``state``) and is confirmed."""
    try:
        kind, cgdir = freezer_of(paths, container, method)
    except FreezeError as exc:
        return ActionResult(action=Action.FREEZE, container_id=container.id, ok=False, detail=str(exc))
    state: dict[str, Any] = {"freezer": kind, "cgroup": str(cgdir)}
    if dry_run:
        would = "freezer.state=FROZEN" if kind == "v1" else "cgroup.freeze=1"
        return ActionResult.dry(Action.FREEZE, container.id, f"would write {would} in {cgdir}", state)
    before = read_state(kind, cgdir)
    if before == "gone":
        return ActionResult(
            action=Action.FREEZE, container_id=container.id, ok=False, detail=f"{cgdir} is gone", state=state
        )
    state["was"] = before
    try:
        attempts = _freeze_v1(cgdir, timeout) if kind == "v1" else _freeze_v2(cgdir, timeout)
    except (OSError, FreezeError) as exc:
        log.error("container_freeze_failed", container_id=container.id, error=str(exc))
        return ActionResult(action=Action.FREEZE, container_id=container.id, ok=False, detail=str(exc), state=state)
    confirmed = read_state(kind, cgdir)
    ok = confirmed == "frozen"
    state["attempts"] = attempts
    return ActionResult(
        action=Action.FREEZE,
        container_id=container.id,
        ok=ok,
        detail=f"{kind} freezer reads {confirmed}",
        state=state,
    )


def thaw(paths: HostPaths, container_id: str, state: Mapping[str, Any], dry_run: bool = False) -> ActionResult:
    """Thaw the cgroup recorded in ``state`` (what ``freeze`` returned); confirmed by read-back."""
    kind, cgdir = recorded(state)
    if dry_run:
        return ActionResult.dry(Action.FREEZE, container_id, f"would thaw {cgdir}")
    try:
        if kind == "v1":
            (cgdir / "freezer.state").write_text("THAWED")
        else:
            (cgdir / "cgroup.freeze").write_text("0")
    except FileNotFoundError:
        return ActionResult(
            action=Action.FREEZE,
            container_id=container_id,
            ok=True,
            detail=f"{cgdir} is gone (container exited)",
        )
    except OSError as exc:
        return ActionResult(action=Action.FREEZE, container_id=container_id, ok=False, detail=str(exc))
    deadline = time.monotonic() + 5.0
    now_state = read_state(kind, cgdir)
    while now_state not in ("thawed", "gone") and time.monotonic() < deadline:
        time.sleep(0.001)
        now_state = read_state(kind, cgdir)
    return ActionResult(
        action=Action.FREEZE,
        container_id=container_id,
        ok=now_state in ("thawed", "gone"),
        detail=f"{kind} freezer reads {now_state}",
    )


def recorded(state: Mapping[str, Any]) -> tuple[FreezerKind, Path]:
    """The freezer kind and cgroup directory a freeze recorded in ``state``."""
    return ("v1" if state.get("freezer") == "v1" else "v2"), Path(str(state.get("cgroup", "")))


def holds_no_process(kind: FreezerKind, cgdir: Path) -> bool:
    """Whether the cgroup exists and no process is left in it (v1 ``cgroup.procs`` empty, v2
    ``populated 0``): a frozen cgroup like that freezes nothing."""
    try:
        if kind == "v1":
            return not (cgdir / "cgroup.procs").read_text().split()
        events = (cgdir / "cgroup.events").read_text().split()
        return dict(zip(events[::2], events[1::2], strict=False)).get("populated") == "0"
    except OSError:
        return False


def remove_leftover(container_id: str, state: Mapping[str, Any]) -> bool:
    """Remove the cgroup a freeze of ``container_id`` recorded in ``state`` when it is all that
    is left of the container: it holds no process and is the container's own (its name carries
    the id). Only that cgroup is ever touched.

    The runtime removes a container's cgroups itself, but ``docker rm -f`` thaws, kills and
    removes in a row: a sweep that re-freezes in between (the thaw looks like an undone freeze)
    makes its rmdir fail, and it does not retry, so the emptied, frozen directory would stay for
    good. Thawed first, then removed. Returns whether it is gone now."""
    kind, cgdir = recorded(state)
    if read_state(kind, cgdir) == "gone":
        return True
    if not container_id or container_id[:12] not in cgdir.name or not holds_no_process(kind, cgdir):
        return False
    try:
        (cgdir / ("freezer.state" if kind == "v1" else "cgroup.freeze")).write_text("THAWED" if kind == "v1" else "0")
        cgdir.rmdir()
    except FileNotFoundError:
        return True
    except OSError as exc:
        log.warning("freezer_leftover_not_removed", container_id=container_id, cgroup=str(cgdir), error=str(exc))
        return False
    log.info("freezer_leftover_removed", container_id=container_id, cgroup=str(cgdir))
    return True


def current_state(paths: HostPaths, state: Mapping[str, Any]) -> FreezeState:
    """Read back the state of a recorded freeze (``state`` as ``freeze`` returned it)."""
    return read_state(*recorded(state))
