# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the privileged tests: an agent context on a scratch state directory, a
test container registered with it, ``docker exec`` into it, and the detector chain (eBPF
source → enrichment → detectors → findings) started and torn down around a module's tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agent.config import AgentConfig
from agent.context import AgentContext
from agent.detectors.component import DetectorsComponent
from agent.detectors.registry import DETECTORS
from agent.findings import Finding
from agent.hostfs import HostPaths
from agent.runtime.docker import container_from_inspect
from agent.runtime.enrich import Enricher
from agent.runtime.model import Container
from agent.settings.detectors import DetectorsSettings
from agent.wiring import attach
from tests.support import TEST_IMAGE, TEST_LABEL, need, need_root, remove_container


def agent_context(state: Path, config: AgentConfig | None = None) -> AgentContext:
    """An agent context whose state, run directory and store live below ``state``."""
    return AgentContext.in_state(state, config)


def run_container(
    client: Any,
    prefix: str,
    command: list[str],
    image: str = TEST_IMAGE,
    labels: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    """A detached test container named ``prefix-<random>``, labelled for cleanup, ``--network none``."""
    return client.containers.run(
        image,
        command,
        detach=True,
        name=f"{prefix}-{uuid.uuid4().hex[:8]}",
        labels={TEST_LABEL: "1", **(labels or {})},
        network_mode="none",
        **extra,
    )


def register(ctx: AgentContext, c: Any) -> Container:
    """Register the running docker container ``c`` with the agent's registry, as the runtime
    watcher does; fails when it has no cgroup id."""
    c.reload()
    rec = container_from_inspect(HostPaths(), c.attrs)
    assert rec is not None and rec.cgroup_id, "the test container has no cgroup id"
    ctx.registry.upsert(rec)
    return rec


def docker_exec(
    c: Any, *cmd: str, user: str = "", stdin: str | None = None, detach: bool = False, timeout: float = 20
) -> str:
    """Run ``cmd`` in container ``c`` (``docker exec``) and return its combined output."""
    args = ["docker", "exec", *(["-i"] if stdin is not None else []), *(["-d"] if detach else [])]
    if user:
        args += ["-u", user]
    proc = subprocess.run([*args, c.id, *cmd], input=stdin, capture_output=True, text=True, timeout=timeout)
    return proc.stdout + proc.stderr


@dataclass
class Session:
    """An interactive shell opened in a container with a stdin pipe kept open."""

    proc: subprocess.Popen[str]
    out: IO[str]

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.poll() is None, "the session shell has exited"
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.out.close()


def open_session(c: Any, shell: str = "sh") -> Session:
    """``docker exec -i <c> <shell>`` as an attacker's shell, typed into later; output to a temp file."""
    out = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by Session.close)
    proc = subprocess.Popen(
        ["docker", "exec", "-i", c.id, shell],
        stdin=subprocess.PIPE,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(0.5)  # the shell is up before anything is typed into it
    return Session(proc, out)


@dataclass
class DetectorChain:
    """A started detector chain and the findings it published, in order."""

    ctx: AgentContext
    state: Path
    findings: list[Finding] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def collect(self, f: Finding) -> None:
        with self.lock:
            self.findings.append(f)

    def of(self, detector: str, container_id: str, mark: int = 0) -> list[Finding]:
        """The findings of ``detector`` about the container since the ``mark``-th finding."""
        with self.lock:
            return [f for f in self.findings[mark:] if f.detector_id == detector and f.container_id == container_id]

    def summaries(self, mark: int = 0) -> list[str]:
        with self.lock:
            return [f"{f.detector_id}: {f.summary}" for f in self.findings[mark:]]


def write_files(root: Path, files: Mapping[str, str], plain: str = "") -> Path:
    """Write ``files`` (relative path → text) below ``root``, executable except paths starting
    with ``plain`` (when given); returns ``root``."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(0o644 if plain and rel.startswith(plain) else 0o755)
    return root


@dataclass
class ContainerLab:
    """Containers a module starts against its detector chain, with host ``files`` to mount."""

    chain: DetectorChain
    docker: Any
    files: Path
    containers: list[Any] = field(default_factory=list)

    def launch(self, name: str, command: list[str], mounts: dict[str, str]) -> Any:
        """Create and start a test container with ``mounts`` (below ``files`` → container path,
        read-only), register it and give its cgroup time to reach the eBPF filter."""
        c = self.docker.containers.create(
            TEST_IMAGE,
            command,
            name=f"{name}-{uuid.uuid4().hex[:6]}",
            labels={TEST_LABEL: "1"},
            network_mode="none",
            volumes={str(self.files / rel): {"bind": path, "mode": "ro"} for rel, path in mounts.items()},
        )
        self.containers.append(c)
        c.start()
        register(self.chain.ctx, c)
        time.sleep(0.5)  # the container's cgroup reaches the eBPF filter
        return c

    def remove(self) -> None:
        for c in self.containers:
            remove_container(c)


@contextmanager
def detector_chain(
    prefix: str,
    settings: DetectorsSettings,
    config: AgentConfig | None = None,
    before: Callable[[DetectorChain], object] | None = None,
) -> Iterator[DetectorChain]:
    """eBPF source → enrichment → detectors on a fresh state directory named ``prefix…``;
    ``before`` runs before the source is built; everything is stopped and removed on exit."""
    need_root()
    try:
        from agent.sources import ebpf
    except ImportError as exc:
        need(False, f"This test needs the eBPF source (agent/sources/ebpf/): {exc}")
        raise
    state = Path(tempfile.mkdtemp(prefix=prefix))
    ctx = agent_context(state, config)
    chain = DetectorChain(ctx, state)
    components: list[Any] = []
    try:
        if before is not None:
            before(chain)
        ctx.events.add_prepare(Enricher(ctx.paths, ctx.registry))
        source = ebpf.build(ctx)
        need(source is not None, "The eBPF source is disabled or unavailable on this machine.")
        assert source is not None
        detectors = DetectorsComponent(settings, DETECTORS)
        ctx.findings.subscribe(chain.collect)
        for comp in (source, detectors):
            attach(ctx, comp)
            components.append(comp)
        ctx.events.start()
        ctx.findings.start()
        status = source.status()
        need(not status.get("error"), f"The eBPF source did not start: {status}")
        yield chain
    finally:
        for comp in reversed(components):
            try:
                comp.stop()
            except Exception:
                pass
        ctx.events.stop(1)
        ctx.findings.stop(1)
        ctx.store.close()
        shutil.rmtree(state, ignore_errors=True)
