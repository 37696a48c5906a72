# SPDX-License-Identifier: Apache-2.0
"""The detectors component on real buses (synchronous ``process``), the registry and the docs."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path

import pydantic
import pytest

import agent.detectors
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.detectors.component import DetectorsComponent, build, evaluate_all
from agent.detectors.registry import BY_ID, DETECTORS, RETIRED_IDS, enabled
from agent.detectors.spec import Detector, DetectorState
from agent.events import ContainerRef, FileOpen, PrivilegeEvent, ProcessExec, ProcessExit
from agent.findings import Finding, Severity
from agent.hostfs import HostPaths
from agent.settings.detectors import DetectorsSettings
from agent.wiring import attach
from tests.support import REPO

C = ContainerRef(id="ab" * 32, name="web", image="nginx")
_INFRA = {
    "__init__",
    "component",
    "registry",
    "settings",
    "spec",
    "cli",
    "ctl",
    "lineage",
    "lineage_exe",
    "lineage_allowances",
    "lineage_names",
    # shared memory and helpers of the sequence rules (RG-0014 … RG-0018)
    "activity",
    "pipes",
    "anti_forensics",
    # the recent connect attempts and their target counts (RG-0013)
    "connects",
    # the container's start-up scripts (RG-0002, RG-0017)
    "startup",
    # one copy of each string and tuple the lineage and activity tables hold
    "dedup",
}


def shadow(ts: float = 100.0, pid: int = 10) -> FileOpen:
    return FileOpen(ts=ts, pid=pid, cgroup_id=5, container=C, comm="cat", path="/etc/shadow", flags=0, write=False)


def started(ctx: AgentContext, comp: DetectorsComponent | None) -> list[Finding]:
    assert comp is not None
    attach(ctx, comp)
    got: list[Finding] = []
    ctx.findings.subscribe(got.append)
    ctx.findings.start()
    return got


def settle(ctx: AgentContext) -> None:
    assert ctx.findings.drain(5)


def test_build_and_report_through_buses(make_ctx: Callable[..., AgentContext]) -> None:
    ctx = make_ctx()
    comp = build(ctx)
    got = started(ctx, comp)
    assert "detectors.list" in ctx.control_methods
    ctx.events.process(shadow())
    ctx.events.process(ProcessExec(ts=1, pid=3, container=C, ppid=2, uid=0, comm="ls", filename="/bin/ls"))
    settle(ctx)
    assert [f.detector_id for f in got] == ["RG-0002"]
    assert got[0].container == C and got[0].evidence["path"] == "/etc/shadow"
    assert (
        ctx.metrics.get_sample_value("riskguard_detector_findings_total", {"detector": "RG-0002", "severity": "high"})
        == 1
    )
    listed = ctx.control_methods["detectors.list"]({})
    assert [d["id"] for d in listed] == [d.id for d in DETECTORS]
    assert all(d["enabled"] for d in listed)
    assert comp is not None and comp.status()["findings"] == {"RG-0002": 1}


def test_repeats_are_suppressed_within_the_window(make_ctx: Callable[..., AgentContext]) -> None:
    ctx = make_ctx()
    comp = build(ctx)
    got = started(ctx, comp)
    ctx.events.process(shadow(100.0))
    ctx.events.process(shadow(150.0, pid=11))  # same container, same subject
    ctx.events.process(shadow(401.0))  # window (300 s) over
    settle(ctx)
    assert [f.ts for f in got] == [100.0, 401.0]
    assert comp is not None and comp.status()["suppressed"] == {"RG-0002": 1}
    assert ctx.metrics.get_sample_value("riskguard_detector_suppressed_total", {"detector": "RG-0002"}) == 1


def test_a_flooding_container_is_rate_limited_per_detector(make_ctx: Callable[..., AgentContext]) -> None:
    ctx = make_ctx()
    comp = DetectorsComponent(DetectorsSettings(max_findings_per_minute=5), DETECTORS)
    got = started(ctx, comp)
    other = ContainerRef(id="cd" * 32, name="quiet", image="x")
    for i in range(50):  # distinct subjects: not repeats, a flood
        ctx.events.process(
            ProcessExec(ts=120.0 + i / 100, pid=100 + i, container=C, ppid=1, uid=0, comm="x", filename=f"/tmp/x{i}")
        )
    ctx.events.process(ProcessExec(ts=121.0, pid=9, container=other, ppid=1, uid=0, comm="y", filename="/tmp/y"))
    ctx.events.process(ProcessExec(ts=181.0, pid=99, container=C, ppid=1, uid=0, comm="z", filename="/tmp/z"))
    settle(ctx)
    mine = [f for f in got if f.container == C]
    assert len(mine) == 6  # 5 in the first minute, 1 in the next
    assert [f.container for f in got if f.container != C] == [other]
    assert comp.status()["rate_limited"] == {"RG-0004": 45}


def test_disabled_ids_do_not_run_and_unneeded_types_are_not_subscribed(
    make_ctx: Callable[..., AgentContext],
) -> None:
    ctx = make_ctx()
    comp = DetectorsComponent(DetectorsSettings(), enabled([d.id for d in DETECTORS if d.id != "RG-0012"]))
    got = started(ctx, comp)
    ctx.events.process(shadow())
    ctx.events.process(PrivilegeEvent(ts=1, pid=3, container=C, comm="x", syscall="mount"))
    settle(ctx)
    assert got == []
    assert comp.status()["evaluated"] == {}
    subscribed = {k.__name__ for kind, name, _h in ctx.events.subscribers() if name == "detectors" for k in kind}  # type: ignore[union-attr]
    assert "FileOpen" not in subscribed and "FlowWindow" in subscribed


def test_a_failing_detector_is_counted_and_others_still_run(make_ctx: Callable[..., AgentContext]) -> None:
    def boom(_ev: FileOpen, _st: DetectorState) -> Finding | None:
        raise RuntimeError("bad rule")

    broken = Detector(
        id="RG-9999",
        name="broken",
        events=(FileOpen,),
        severity=Severity.LOW,
        mitre="T0000",
        description="x",
        evaluate=boom,
    )
    ctx = make_ctx()
    comp = DetectorsComponent(DetectorsSettings(), (broken, BY_ID["RG-0002"]))
    got = started(ctx, comp)
    ctx.events.process(shadow())
    settle(ctx)
    assert [f.detector_id for f in got] == ["RG-0002"]
    assert comp.status()["errors"] == {"RG-9999": 1}


def test_parent_names_learned_from_exec_events_and_forgotten_on_exit(
    make_ctx: Callable[..., AgentContext], host_tree: HostPaths
) -> None:
    host_tree.pid_dir(50).mkdir(parents=True)  # httpd runs (its /proc holds nothing readable)
    ctx = make_ctx(paths=host_tree)
    comp = build(ctx)
    got = started(ctx, comp)
    httpd = ProcessExec(ts=1, pid=50, container=C, ppid=1, uid=0, comm="httpd", filename="/usr/sbin/httpd")
    sh = ProcessExec(ts=2, pid=51, container=C, ppid=50, uid=33, comm="sh", filename="/bin/sh", argv=("sh", "-c", "id"))
    ctx.events.process(httpd)
    ctx.events.process(sh)
    ctx.events.process(ProcessExit(ts=3, pid=50, container=C, comm="httpd"))
    ctx.events.process(ProcessExec(ts=4, pid=52, container=C, ppid=50, uid=33, comm="bash", filename="/bin/bash"))
    settle(ctx)
    assert [(f.detector_id, f.evidence["parent"]) for f in got] == [("RG-0001", "httpd")]


def test_exited_processes_leave_the_name_table(make_ctx: Callable[..., AgentContext], host_tree: HostPaths) -> None:
    # No source publishes an exit for every process: the table is pruned against /proc (here a
    # captured tree in which only pid 50 still runs) so an exec-heavy container cannot fill it.
    (host_tree.pid_dir(50)).mkdir(parents=True)
    ctx = make_ctx(paths=host_tree)
    comp = build(ctx)
    got = started(ctx, comp)
    assert comp is not None
    comp.prune_seconds = 0  # prune at every exec (the agent: every 10 s)
    for pid in range(50, 60):
        ctx.events.process(
            ProcessExec(ts=pid, pid=pid, container=C, ppid=1, uid=0, comm="httpd", filename="/usr/sbin/httpd")
        )
    assert comp.status()["known_processes"] == 1 and comp.status()["exited_processes_forgotten"] == 9
    # The survivor still names its children; a child of a forgotten pid gets no parent name.
    ctx.events.process(ProcessExec(ts=70, pid=61, container=C, ppid=50, uid=33, comm="sh", filename="/bin/sh"))
    ctx.events.process(ProcessExec(ts=71, pid=62, container=C, ppid=55, uid=33, comm="sh", filename="/bin/sh"))
    settle(ctx)
    assert [(f.detector_id, f.evidence["parent"]) for f in got] == [("RG-0001", "httpd")]


def test_entrypoint_shell_is_not_a_service_shell(make_ctx: Callable[..., AgentContext]) -> None:
    from agent.runtime.model import Container

    ctx = make_ctx()
    ctx.registry.upsert(Container(id=C.id, name="web", image="nginx", image_id="", runtime="docker", init_pid=700))
    comp = build(ctx)
    got = started(ctx, comp)
    ctx.events.process(
        ProcessExec(ts=1, pid=700, container=C, ppid=690, uid=0, comm="sh", filename="/bin/sh", parent_comm="dockerd")
    )
    settle(ctx)
    assert got == []


def test_build_returns_none_when_disabled(make_ctx: Callable[..., AgentContext]) -> None:
    class Config(AgentConfig):  # the lead adds ``detectors`` to AgentConfig; same shape here
        detectors: DetectorsSettings = DetectorsSettings(enabled=False)

    assert build(make_ctx(config=Config())) is None


def test_settings_validation() -> None:
    assert DetectorsSettings(disabled=("RG-0003",)).disabled == ("RG-0003",)
    with pytest.raises(pydantic.ValidationError):
        DetectorsSettings(disabled=("shell",))
    with pytest.raises(pydantic.ValidationError):
        DetectorsSettings.model_validate({"shellz": ["sh"]})


def test_evaluate_all_runs_only_matching_types() -> None:
    found = evaluate_all(DETECTORS, shadow(), DetectorState())
    assert [f.detector_id for f in found] == ["RG-0002"]


# --- registry hygiene ------------------------------------------------------------------------
def test_registry_ids_are_stable_unique_and_well_formed() -> None:
    ids = [d.id for d in DETECTORS]
    assert len(set(ids)) == len(ids)
    assert not set(ids) & RETIRED_IDS
    assert ids == sorted(ids)
    assert len({d.name for d in DETECTORS}) == len(DETECTORS)
    for d in DETECTORS:
        assert re.fullmatch(r"RG-\d{4}", d.id)
        assert re.fullmatch(r"T\d{4}(\.\d{3})?", d.mitre), d.mitre
        assert re.fullmatch(r"[a-z_]+", d.name)
        assert d.events and d.description and d.false_positives


def test_every_detector_module_is_registered() -> None:
    modules = [m.name for m in pkgutil.iter_modules(agent.detectors.__path__) if m.name not in _INFRA]
    specs = [importlib.import_module(f"agent.detectors.{m}").SPEC for m in modules]
    assert sorted(s.id for s in specs) == sorted(d.id for d in DETECTORS)


def test_docs_table_lists_every_detector() -> None:
    doc = (REPO / "docs" / "detectors.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in doc.splitlines() if line.startswith("| RG-")}
    assert set(rows) == set(BY_ID)
    for d in DETECTORS:
        row = rows[d.id]
        assert f"`{d.name}`" in row and d.mitre in row, d.id
        for t in d.events:
            assert t.__name__ in row, (d.id, t.__name__)


def test_docs_page_exists() -> None:
    assert Path(REPO / "docs" / "detectors.md").is_file()


def test_docs_yaml_block_equals_the_defaults() -> None:
    import yaml

    doc = (REPO / "docs" / "detectors.md").read_text(encoding="utf-8")
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(block)["detectors"] == DetectorsSettings().model_dump(mode="json")
