# SPDX-License-Identifier: Apache-2.0
"""What the response may act on: a discovered container, never the host, the agent itself, or a
container labelled exempt. ``Guards`` establishes the facts (``agent.policy.Target``) the policy
and the engine decide on."""

from __future__ import annotations

import os

from agent.events import ContainerRef
from agent.hostfs import HostPaths
from agent.policy import Target
from agent.runtime.cgroups import read_proc_cgroup
from agent.runtime.model import Container, ContainerRegistry
from agent.settings.response import ResponseSettings


class Guards:
    """Resolves a finding's container in the registry and says why it may not be acted on."""

    def __init__(self, paths: HostPaths, registry: ContainerRegistry, settings: ResponseSettings) -> None:
        self.paths = paths
        self.registry = registry
        self.settings = settings
        self.own_cgroups = self._agent_cgroups()

    def _agent_cgroups(self) -> list[tuple[str, str]]:
        """(hierarchy, path) of the agent's own cgroups: a container holding them is the agent."""
        try:
            cg = read_proc_cgroup(self.paths, os.getpid())
        except Exception:
            return []
        own = [(k, v) for k, v in cg.v1.items() if k == "freezer"]
        if cg.v2 is not None:
            own.append(("v2", cg.v2))
        return own

    def is_agent(self, c: Container) -> bool:
        """Whether ``c`` holds the agent's own process or cgroup."""
        if c.init_pid == os.getpid():
            return True
        for hierarchy, path in self.own_cgroups:
            mine = c.cgroup_v2 if hierarchy == "v2" else c.cgroup_v1.get(hierarchy, "")
            if mine.strip("/") and (path == mine or path.startswith(mine.rstrip("/") + "/")):
                return True
        return False

    def resolve(self, ref: ContainerRef | str | None) -> tuple[Container | None, Target]:
        """The registry's record of a finding's container and the facts the policy needs."""
        if ref is None:
            return None, Target(known=False, is_host=True)
        cid = ref.id if isinstance(ref, ContainerRef) else ref
        c = self.registry.get(cid)
        if c is None or (isinstance(ref, ContainerRef) and c.id != ref.id):
            return None, Target(known=False)
        is_host = not c.cgroup_v2.strip("/") and not c.cgroup_v1.get("freezer", "").strip("/")
        return c, Target(known=True, is_agent=self.is_agent(c), is_host=is_host)

    def refusal(self, c: Container | None, target: Target) -> str:
        """Why the engine must not act on this container ('' when it may)."""
        if c is None or not target.known:
            return "not a discovered container"
        if target.is_host:
            return "the host"
        if target.is_agent:
            return "the agent itself"
        if c.labels.get(self.settings.exempt_label, "").lower() == "true":
            return f"labelled {self.settings.exempt_label}=true"
        return ""
