# SPDX-License-Identifier: Apache-2.0
"""One corpus run against a running agent: learning, benign load, late containers, attacks.

Timeline (from the first container's start): the early benign containers and the attack
containers start, attack sessions open; the learning period passes; the late benign containers
start; after ``benign`` more seconds each technique is written into its session, one after the
other; the run goes on until ``total`` seconds. All along, the test sends requests to the web
apps and an operator runs maintenance commands with ``docker exec``. What the agent stored
(findings, actions) and what each workload showed is returned as a ``CorpusResult``.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.corpus import spec
from tests.e2e.corpus.host import CorpusHost, FreezeWatch, Session, build_images
from tests.support import VENV_BIN

# Findings that say nothing about what a container did (posture, planted vulnerabilities) do not
# count as detecting a technique.
POSTURE_SOURCES = frozenset({"netpolicy", "vuln"})


@dataclass(frozen=True)
class Durations:
    # the agent's learning period (behaviour, learned allowances): two runs of the minutely jobs
    learn: float = 120.0
    benign: float = 90.0  # after learning (late containers started), before the first attack
    total: float = 310.0  # from the first container's start to the end of the run
    attack_timeout: float = 12.0  # how long to wait for a technique's finding (and freeze)


def agent_settings(state: Path, run_id: str, learn_seconds: float, window: float = 2.0) -> str:
    """The agent.yaml sections besides state/control: the product's defaults, a short learning
    period, enforce mode on this run's corpus containers only, alerts under ``state``."""
    min_windows = max(8, int(learn_seconds / window) // 2)
    return f"""
response: {{mode: observe, overrides: [{{labels: {{{spec.LABEL}: "{run_id}"}}, mode: enforce}}]}}
behavior: {{window_seconds: {window}, learning_seconds: {learn_seconds}, min_windows: {min_windows}}}
outputs: {{alerts_file: {state}/alerts.jsonl, metrics: {{port: 0}}}}
"""


@dataclass
class AttackResult:
    technique: str
    role: str
    container_id: str
    sent_at: float  # when the command was written into the session
    frozen_after: float | None  # seconds from sent_at to the freezer reporting FROZEN
    output: str = ""  # what the session printed (shows the command ran)


@dataclass
class ContainerResult:
    role: str
    kind: str  # benign | attack
    late: bool
    container_id: str
    started: float
    findings: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    proofs: int  # lines of its own output showing it did its work
    health: dict[str, Any] = field(default_factory=dict)


@dataclass
class CorpusResult:
    run_id: str
    started: float
    ended: float
    learn_ended: float
    containers: dict[str, ContainerResult]
    attacks: dict[str, AttackResult]
    operator: list[tuple[str, list[str], int]]  # role, argv, exit code
    requests: dict[str, list[int]]  # role -> [ok, failed]
    agent_status: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str)

    @classmethod
    def from_json(cls, text: str) -> CorpusResult:
        """A run saved by ``to_json`` (to score it again)."""
        raw = json.loads(text)
        raw["containers"] = {k: ContainerResult(**v) for k, v in raw["containers"].items()}
        raw["attacks"] = {k: AttackResult(**v) for k, v in raw["attacks"].items()}
        raw["operator"] = [tuple(o) for o in raw["operator"]]
        return cls(**raw)


def ctl_json(socket: Path, *args: str) -> Any:
    """``riskguardctl --json`` against the run's agent."""
    done = subprocess.run(
        [str(VENV_BIN / "riskguardctl"), "--socket", str(socket), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"riskguardctl {' '.join(args)}: {done.stderr.strip()}")
    return json.loads(done.stdout)


def detections(findings: list[dict[str, Any]], since: float) -> list[dict[str, Any]]:
    """Findings about behaviour (not posture) from ``since`` on."""
    return [f for f in findings if f["source"] not in POSTURE_SOURCES and float(f["ts"]) >= since]


class _Background:
    """The operator's maintenance rounds and the web apps' traffic, in two threads."""

    def __init__(self, host: CorpusHost, operator_every: float = 30.0) -> None:
        self.host = host
        self.operator_every = operator_every
        self.operator: list[tuple[str, list[str], int]] = []
        self.requests: dict[str, list[int]] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._traffic, self._maintenance)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            if t.ident is not None:
                t.join(30)

    def _benign_roles(self) -> list[str]:
        return [r for r, k in list(self.host.kinds.items()) if k == "benign"]

    def _traffic(self) -> None:
        web = {w.role for w in spec.BENIGN if w.network}
        while not self._stop.wait(2.0):
            for role in [r for r in self._benign_roles() if r in web]:
                counts = self.requests.setdefault(role, [0, 0])
                for path in ("/", "/report"):
                    try:
                        with urllib.request.urlopen(f"http://{self.host.ip(role)}:8000{path}", timeout=5) as r:
                            ok = r.status == 200 and bool(r.read())
                    except OSError:
                        ok = False
                    counts[0 if ok else 1] += 1

    def _maintenance(self) -> None:
        while True:
            running = set(self._benign_roles())
            for role, argv in spec.OPERATOR:
                if role in running and not self._stop.is_set():
                    self.operator.append((role, list(argv), self.host.operator_exec(role, argv)))
            if self._stop.wait(self.operator_every):
                return


def _wait_until(t: float, stop: Callable[[], bool] = lambda: False) -> None:
    while time.time() < t and not stop():
        time.sleep(min(1.0, max(0.0, t - time.time())))


def play(host: CorpusHost, socket: Path, t: spec.Technique, session: Session, timeout: float) -> AttackResult:
    """Write the technique into its session; wait for a finding naming the container (and, for
    the must-isolate class, for the freezer); return when it was sent and frozen."""
    role = spec.attack_role(t)
    cid = host.containers[role].id
    watch = FreezeWatch(host.pid(role), timeout).start()
    sent = time.time()
    session.send(t.command)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = detections(ctl_json(socket, "findings", "--container", cid, "--limit", "500"), sent - 0.5)
        if seen and (not t.must_isolate or watch.frozen_at is not None):
            break
        time.sleep(0.25)
    if t.must_isolate:
        watch.join()
    frozen_at = watch.frozen_at
    frozen_after = None if frozen_at is None else round(frozen_at - sent, 4)
    return AttackResult(t.name, role, cid, sent, frozen_after, session.output())


def run_corpus(
    client: Any, socket: Path, workdir: Path, run_id: str, d: Durations, say: Callable[[str], None] = print
) -> CorpusResult:
    """Play the whole corpus against the agent listening on ``socket``; remove every container after."""
    host = CorpusHost(client, run_id, workdir)
    host.remove_leftovers()
    say("building the corpus images")
    build_images(client)
    host.create_network()
    bg = _Background(host)
    attacks: dict[str, AttackResult] = {}
    try:
        t_start = time.time()
        for w in spec.BENIGN:
            if not w.late:
                host.start(w.role, w.image, "benign", network=w.network)
        for t in spec.TECHNIQUES:
            host.start(spec.attack_role(t), t.image, "attack", docker_socket=t.docker_socket)
        say(f"started {len(host.containers)} containers; learning for {d.learn:g}s")
        bg.start()
        time.sleep(3)
        sessions: dict[str, Session] = {}
        for t in spec.TECHNIQUES:
            role = spec.attack_role(t)
            sessions[t.name] = host.session(role)
            if t.setup:
                sessions[t.name].send(t.setup)
            sessions[t.name].send("cd /root; echo session ready")
            if t.listener_port:
                host.listener(role, t.listener_port)
        learn_ended = t_start + d.learn + 5
        _wait_until(learn_ended)
        for w in spec.BENIGN:
            if w.late:
                host.start(w.role, w.image, "benign", network=w.network)
        say(f"learning over; late containers started; benign run for {d.benign:g}s")
        _wait_until(time.time() + d.benign)
        for t in spec.TECHNIQUES:
            attacks[t.name] = play(host, socket, t, sessions[t.name], d.attack_timeout)
            a = attacks[t.name]
            say(f"played {t.name}: " + ("not frozen" if a.frozen_after is None else f"frozen after {a.frozen_after}s"))
        _wait_until(t_start + d.total)
        bg.stop()
        ended = time.time()
        containers = {role: _collect(host, socket, role) for role in host.containers}
        status = ctl_json(socket, "status")
        return CorpusResult(run_id, t_start, ended, learn_ended, containers, attacks, bg.operator, bg.requests, status)
    finally:
        bg.stop()
        host.remove()


def _collect(host: CorpusHost, socket: Path, role: str) -> ContainerResult:
    c = host.containers[role]
    workload = next((w for w in spec.BENIGN if w.role == role), None)
    logs = host.logs(role) if workload and workload.proof else ""
    return ContainerResult(
        role=role,
        kind=host.kinds[role],
        late=bool(workload and workload.late),
        container_id=c.id,
        started=host.started[role],
        findings=list(ctl_json(socket, "findings", "--container", c.id, "--limit", "5000")),
        actions=list(ctl_json(socket, "actions", "--container", c.id)),
        proofs=sum(1 for line in logs.splitlines() if workload and workload.proof in line),
        health=host.health(role) if workload and workload.healthcheck else {},
    )
