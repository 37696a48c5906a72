# SPDX-License-Identifier: Apache-2.0
"""Which in-kernel stop rules a container enforces (agent/response/kernel_rules.py): only where the
response would freeze for the rule anyway; the exec rule only once the image's learning is over
and it never ran a program from a stop prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.behavior.allowances import Allowances
from agent.decoders.ebpf import RULE_BITS
from agent.hostfs import HostPaths
from agent.response.guards import Guards
from agent.response.kernel_rules import KernelRules
from agent.runtime.model import Container, ContainerRegistry
from agent.settings.behavior import BehaviorSettings
from agent.settings.response import ResponseSettings
from agent.store import Store

ALL = RULE_BITS["open"] | RULE_BITS["namespace"] | RULE_BITS["runtime_socket"] | RULE_BITS["exec"]
NO_EXEC = ALL & ~RULE_BITS["exec"]


def container(i: int, image: str = "app:1", labels: dict[str, str] | None = None) -> Container:
    return Container(
        id=f"{i:064x}",
        name=f"c{i}",
        image=image,
        image_id="",
        runtime="docker",
        init_pid=10_000 + i,
        cgroup_v1={"freezer": f"/docker/{i:064x}"},
        cgroup_id=100 + i,
        labels=labels or {},
    )


def rules(host: HostPaths, allowances: Any = None, **settings: Any) -> tuple[KernelRules, ContainerRegistry]:
    registry = ContainerRegistry()
    s = ResponseSettings(**{"mode": "enforce", **settings})
    return KernelRules(s, Guards(host, registry, s), allowances), registry


def test_enforce_gets_every_rule_observe_and_guards_none(host_tree: HostPaths) -> None:
    kr, reg = rules(
        host_tree,
        overrides=[{"labels": {"tier": "dev"}, "mode": "observe"}, {"image": "capped:*", "max_action": "alert"}],
        allow_images=["trusted:*"],
    )
    cases = {
        "plain": (container(1), ALL),
        "observe override": (container(2, labels={"tier": "dev"}), 0),
        "capped below freeze": (container(3, image="capped:1"), 0),
        "allow-listed": (container(4, image="trusted:2"), 0),
        "exempt label": (container(5, labels={"riskguard.exempt": "true"}), 0),
    }
    for c, _ in cases.values():
        reg.upsert(c)
    for name, (c, want) in cases.items():
        assert kr.rules_for(c) == want, name
    assert kr.rules_for(container(9)) == 0, "a container outside the registry"


def test_global_observe_dry_run_disabled_and_ladder_stop_everything(host_tree: HostPaths) -> None:
    c = container(1)
    for settings in (
        {"mode": "observe"},
        {"dry_run": True},
        {"kernel_stop": {"enabled": False}},
        {"ladder": {"rule": "alert"}},
    ):
        kr, reg = rules(host_tree, **settings)
        reg.upsert(c)
        assert kr.rules_for(c) == 0, settings
    kr, reg = rules(host_tree, kernel_stop={"rules": ["open"]})
    reg.upsert(c)
    assert kr.rules_for(c) == RULE_BITS["open"]
    s = ResponseSettings(mode="enforce")
    off = KernelRules(s, Guards(host_tree, reg, s), None, disabled=["RG-0011", "RG-0008"])
    assert off.rules_for(c) == RULE_BITS["open"] | RULE_BITS["exec"], "disabled detectors' rules"


def test_exec_rule_waits_for_learning_and_respects_learned_writable_execs(host_tree: HostPaths, tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    try:
        allow = Allowances(store, BehaviorSettings(learning_seconds=600))
        kr, reg = rules(host_tree, allow)
        learning, done, tmp_user = container(1, "learning:1"), container(2, "done:1"), container(3, "tmpuser:1")
        for c in (learning, done, tmp_user):
            reg.upsert(c)
        assert kr.rules_for(learning) == NO_EXEC, "an image never seen: its normal is unknown"
        allow.baselines.create(allow.key_of(learning.ref()), 1e12)  # first seen now-ish: learning
        assert kr.rules_for(learning) == NO_EXEC
        for c in (done, tmp_user):
            allow.baselines.create(allow.key_of(c.ref()), 1.0)  # learning long over
        allow.set(allow.key_of(tmp_user.ref()), "exe", "/tmp/installer", "allow", origin="learned")
        assert kr.rules_for(done) == ALL
        assert kr.rules_for(tmp_user) == NO_EXEC, "the image ran a program from /tmp while learning"
    finally:
        store.close()
