# SPDX-License-Identifier: Apache-2.0
"""Enrichment's per-event work: the container ref made once per registry record, the event
copied slot by slot (the same value ``dataclasses.replace`` gives)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.events import ContainerRef, FileOpen, NetConnect, ProcessExec, ProcessExit
from agent.hostfs import HostPaths
from agent.runtime.enrich import Enricher, with_container
from agent.runtime.model import Container, ContainerRegistry


def _container(name: str) -> Container:
    return Container(
        id="c" * 64,
        name=name,
        image="busybox",
        image_id="sha256:1",
        runtime="docker",
        init_pid=100,
        cgroup_v2="/docker/c",
        cgroup_id=44,
        labels={"app": "web"},
    )


EVENTS = (
    ProcessExec(ts=1.5, cgroup_id=44, pid=7, ppid=1, uid=0, comm="sh", filename="/bin/sh", argv=("sh",),
                stdio=("socket:[1]", "socket:[1]", ""), exe_name="busybox", parent_exe_ino=9),
    NetConnect(ts=2.0, cgroup_id=44, pid=8, op="connect", comm="wget", family=2, protocol="tcp",
               saddr="10.0.0.2", sport=40000, daddr="10.0.0.3", dport=80, state="ESTABLISHED", fd=3),
    ProcessExit(ts=3.0, cgroup_id=44, pid=7, comm="sh", exit_code=2),
    FileOpen(ts=4.0, cgroup_id=44, pid=9, comm="cat", path="/etc/shadow", flags=0, write=False, ppid=7),
)  # fmt: skip


def test_with_container_is_replace_without_its_cost() -> None:
    ref = ContainerRef(id="c" * 64, name="web", image="busybox")
    for ev in EVENTS:
        got = with_container(ev, ref)
        assert got == dataclasses.replace(ev, container=ref) and got is not ev
        assert type(got) is type(ev) and got.container is ref and ev.container is None
        # every other field as it was, the original untouched
        assert dataclasses.asdict(got) == {**dataclasses.asdict(ev), "container": dataclasses.asdict(ref)}


def test_one_ref_per_registry_record_a_new_one_after_an_update(tmp_path: Path) -> None:
    reg = ContainerRegistry()
    reg.upsert(_container("web"))
    e = Enricher(HostPaths.under(tmp_path), reg)
    first = [e(ev) for ev in EVENTS]
    refs = {id(x.container) for x in first if x is not None}
    assert len(refs) == 1 and all(x is not None and x.container.name == "web" for x in first)  # type: ignore[union-attr]
    reg.upsert(_container("web-renamed"))  # an update: a new record, so a new ref
    again = e(EVENTS[0])
    assert again is not None and again.container is not None and again.container.name == "web-renamed"
    assert again.container.labels == {"app": "web"}
