# SPDX-License-Identifier: Apache-2.0
"""Chaos while the daemon protects a host: SIGHUP reloads under load, a container flooding its
log, a container writing hostile log lines (JSON nested 100,000 deep, lone surrogates, escape
sequences) and a hostile image (a recursive-VIEW rpmdb and a 56 MB METADATA) run next to the demo
host while attacks are played. Nothing may break: every attack is still detected and isolated, no
benign container is acted on, no component fails, the buses drop nothing, every daemon log line
stays one JSON object, the operator's terminal output stays escaped, and the hostile image's scan
fails as a finding about that container alone while the others are scanned.

The agent is killed (SIGKILL) while ``web`` is isolated: a new agent on the same state keeps
the isolation and releases it. dockerd is restarted (SIGTERM, then started again, as
``systemctl restart docker`` or a package upgrade does) while ``web`` is isolated, and a
``restart: always`` container dies while it is down: the agent reconnects by itself, keeps
``web`` isolated and releases it, follows the restarted container to its new pid and cgroup, and
an attack typed into a shell opened there afterwards is detected and isolated. The whole host runs
on a dockerd of the test's own (tests/e2e/dockerd.py: live restore, its own data-root, cgroup
parent and socket, which the agent is pointed at through ``runtime.docker_url``): the host's
daemon and the containers of other tests on it are never touched.
"""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts import demo
from tests.e2e.daemon import Daemon
from tests.e2e.dockerd import SecondDockerd
from tests.privileged.vuln.test_vuln_hostile_live import _hostile_files
from tests.support import VENV_BIN, need_tool, run

LEARN_SECONDS = 30.0
# Rule-detected attacks played inside ``web`` that involve no other container's behaviour (the
# web shell is played from ``client``, the reverse shell lands on ``c2``, the port scan probes
# ``worker``: those neighbours need the demo's longer learning): each a finding and an isolation.
ATTACKS = tuple(a for a in demo.ATTACKS if a.name in ("shadow_read", "download_exec"))
HOSTILE_IMAGE = "riskguard-test/hostile-scan"

FLOOD = (
    'n=0; while :; do i=0; while [ $i -lt 500 ]; do echo "flood line $n.$i GET /index.html 200"; '
    "i=$((i+1)); done; n=$((n+1)); usleep 50000; done"
)
HOSTILE = r"""
while :; do
  printf '{"x":'; head -c 100000 /dev/zero | tr '\0' '['; head -c 100000 /dev/zero | tr '\0' ']'; printf '}\n'
  printf '%s\n' '{"msg":"upload of \udfff\ud800 done","file":"\u001b[2J\u001b]0;owned\u0007x\n2026 FAKE"}'
  printf 'plain \033[31mred\033[0m \r\342\200\256gnp.exe\n'
  sleep 1
done
"""
# Restarted by dockerd when its process dies (``restart: always``): killed while dockerd is down.
PULSE = "while :; do sleep 5; done"
# Every container of the chaos run but the attacked ``web`` and ``pulse``: none may be acted on.
BYSTANDERS = (*demo.BENIGN, "flood", "hostile", "scanme")


def config(state: Any, poll: float, docker_url: str, vulndb: Path) -> str:
    window = 2.0
    return f"""
runtime: {{docker_url: "{docker_url}"}}
response: {{mode: observe, overrides: [{{labels: {{{demo.LABEL}: "1"}}, mode: enforce}}]}}
behavior: {{window_seconds: {window}, learning_seconds: {LEARN_SECONDS}, min_windows: 10}}
vuln: {{list_services: false, db: {{path: {vulndb}}}}}
logs: {{poll_seconds: {poll}}}
outputs: {{alerts_file: {state}/alerts.jsonl, metrics: {{port: 0}}}}
network: {{selinux: {{directory: {state}/selinux}}}}
"""


def extra_container(
    host: demo.DemoHost, role: str, script: str, image: str = demo.BASE_IMAGE, **host_config: Any
) -> None:
    api = host.client.api
    name = f"rgchaos-{role}"
    rotate = {"type": "json-file", "config": {"max-size": "5m", "max-file": "2"}}
    created = api.create_container(
        image,
        ["sh", "-c", script],
        name=name,
        labels={demo.LABEL: "1", "app": role},
        host_config=api.create_host_config(network_mode="none", log_config=rotate, **host_config),
    )
    api.start(created["Id"])
    host.names[role] = name
    host.containers[role] = host.client.containers.get(created["Id"])


def build_hostile_image(client: Any) -> None:
    """The hostile files of tests/privileged/vuln (a 4 KiB rpmdb.sqlite whose ``Packages`` is a
    recursive VIEW, a 56 MB METADATA) as an image of their own, on top of the busybox image."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tf:
        for name, data in (
            ("Dockerfile", f"FROM {demo.BASE_IMAGE}\nADD hostile.tar /\n".encode()),
            ("hostile.tar", _hostile_files()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=HOSTILE_IMAGE, rm=True, pull=False)


@pytest.fixture(scope="module")
def chaos_host(
    docker_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[demo.DemoHost, Daemon, SecondDockerd]]:
    need_tool("dockerd")
    need_tool("iptables")
    work = tmp_path_factory.mktemp("chaos")
    status = demo.host_debian_files()["var/lib/dpkg/status"].decode()
    demo.write_osv_fixture(work / "osv", status)
    vulndb = work / "vulndb.sqlite"
    run([str(VENV_BIN / "riskguard-agent"), "vulndb", "import", str(work / "osv"), "--db", str(vulndb)])
    dockerd = SecondDockerd()
    d = Daemon(work / "agent", "")
    host: demo.DemoHost | None = None
    try:
        dockerd.start()
        dockerd.load_from_host(demo.BASE_IMAGE)
        client = dockerd.client()
        build_hostile_image(client)
        d.write_config(config(d.tmp / "state", 1.0, dockerd.url, vulndb))
        host = demo.DemoHost(client)
        d.start()
        d.wait_ready()
        host.start(prefix="rgchaos")  # removes every container with the demo's label first
        # The hostile image before the others: their scans are queued behind its scan.
        extra_container(host, "scanme", "sleep 86400", image=HOSTILE_IMAGE)
        extra_container(host, "flood", FLOOD)
        extra_container(host, "hostile", HOSTILE)
        extra_container(host, "pulse", PULSE, restart_policy={"Name": "always"})
        yield host, d, dockerd
    finally:
        dockerd.thaw_all()
        if host is not None:
            host.remove()
        if d.proc is not None:
            d.stop()
        dockerd.remove()


def reload(d: Daemon, poll: float, docker_url: str, vulndb: Path) -> None:
    """Rewrite the config (or not) and SIGHUP; wait until the daemon says what it did."""
    before = len(d.lines)
    d.write_config(config(d.tmp / "state", poll, docker_url, vulndb))
    d.send(signal.SIGHUP)
    demo.wait_for(
        lambda: any(
            json.loads(line).get("event") in ("config_reloaded", "config_reload_unchanged") for line in d.lines[before:]
        ),
        60,
        "the reload",
    )


@pytest.mark.timeout(900)
def test_attacks_are_handled_through_reloads_a_kill_a_dockerd_restart_a_log_flood_and_hostile_input(
    chaos_host: tuple[demo.DemoHost, Daemon, SecondDockerd],
) -> None:
    host, d, dockerd = chaos_host
    socket = d.socket
    vulndb = d.tmp.parent / "vulndb.sqlite"
    started = time.time()
    demo.wait_for(
        lambda: len(demo.ctl_json(socket, "containers")) >= len(host.names), 30, "discovery of every container"
    )
    # Under load (the flood is being tailed): a reload that changes something, one that does not.
    reload(d, 2.0, dockerd.url, vulndb)
    reload(d, 2.0, dockerd.url, vulndb)
    check_scans(host, d)
    time.sleep(max(0.0, LEARN_SECONDS + 4 - (time.time() - started)))
    touched = acted_on(socket)
    early = [role for role in (*BYSTANDERS, "web", "pulse") if host.id_of(role) in touched]
    assert early == [], f"acted on before any attack: {early}"

    first = d
    try:
        for i, attack in enumerate(ATTACKS):
            if i == 1:
                d.send(signal.SIGHUP)  # a reload on the new agent, as the next attack starts
            outcome = demo.play(host, socket, attack, timeout=60)
            assert outcome.finding["container_id"] == host.id_of("web"), attack.name
            assert outcome.action["action"] in ("freeze", "quarantine")
            if i == 0:
                # kill -9 while web is isolated (an attack that leaves nothing behind): a new agent
                # on the same state keeps it isolated and releases it on the operator's word.
                d = restart_after_sigkill(d, dockerd.url, vulndb)
                active = [a for a in demo.ctl_json(socket, "actions", "--container", host.id_of("web")) if a["active"]]
                assert outcome.action["id"] in {a["id"] for a in active}, active
            if i == 1:
                # dockerd restarts while web is isolated and pulse dies meanwhile.
                restart_dockerd(host, d, dockerd, outcome.action)
            assert demo.release(host, socket, attack.target), attack.name
        attack_after_the_restart(host, d, dockerd)
        check_after_chaos(host, d, first)
    finally:
        # for a post-mortem: both agents' logs next to their state
        (first.tmp / "agent-first.log").write_text("\n".join(first.lines))
        if d is not first:
            (d.tmp / "agent-second.log").write_text("\n".join(d.lines))
            d.stop()


def restart_after_sigkill(d: Daemon, docker_url: str, vulndb: Path) -> Daemon:
    """SIGKILL the agent, then start a new one on the same state directory and sockets."""
    d.stop(signal.SIGKILL)
    d.notify_path.unlink(missing_ok=True)
    again = Daemon(d.tmp, "")
    again.write_config(config(d.tmp / "state", 2.0, docker_url, vulndb))
    again.start()
    again.wait_ready()
    return again


def check_scans(host: demo.DemoHost, d: Daemon) -> None:
    """The hostile image costs its own scan (a LOW finding about it, naming the view); every other
    container is still scanned, those queued behind it too, and the Debian one gets its
    vulnerability finding."""
    socket = d.socket
    scanme, debian = host.id_of("scanme"), host.id_of("debian")
    incomplete = demo.wait_for(
        lambda: [f for f in demo.ctl_json(socket, "findings", "--source", "vuln") if f["detector_id"] != "vuln.image"],
        90,
        "the hostile image's failed scan",
    )
    assert {(f["container_id"], f["detector_id"], f["severity"]) for f in incomplete} == {
        (scanme, "vuln.scan_incomplete", "low")
    }, incomplete
    assert "view" in incomplete[0]["summary"]
    vuln = demo.wait_for(
        lambda: demo.ctl_json(socket, "findings", "--container", debian, "--source", "vuln"),
        90,
        "the vulnerability finding on the Debian container, scanned after the hostile one",
    )
    assert [f["detector_id"] for f in vuln] == ["vuln.image"], vuln
    assert demo.VULNERABLE_PACKAGE in vuln[0]["evidence"]["packages"]
    every = {host.id_of(role)[:12] for role in host.names}

    def scanned() -> list[str]:
        return [str(e.get("container_id")) for e in d.events() if e.get("event") == "container_scanned"]

    order = demo.wait_for(lambda: every <= set(s := scanned()) and s, 90, "a scan of every container")
    for role in ("flood", "hostile", "pulse"):  # started after scanme: their scans were queued behind it
        assert order.index(host.id_of(role)[:12]) > order.index(scanme[:12]), (role, order)
    assert demo.ctl_json(socket, "status")["components"]["vuln"]["errors"] == 0


def acted_on(socket: Path) -> set[str]:
    """Containers ever frozen or quarantined (not as a dry run): one riskguardctl call for all."""
    actions = demo.ctl_json(socket, "actions", "--limit", "100000")
    return {a["container_id"] for a in actions if a["action"] in ("freeze", "quarantine") and not a["dry_run"]}


def registered(socket: Path) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in demo.ctl_json(socket, "containers")}


def isolated_in_kernel(dockerd: SecondDockerd, container: Any, action: str) -> bool:
    """Whether the kernel still holds the isolation: the freezer reads FROZEN, or the container's
    netns has the agent's quarantine table."""
    if action == "freeze":
        return dockerd.freezer_state(container.id) == "FROZEN"
    container.reload()
    pid = str(container.attrs["State"]["Pid"])
    tables = run(["nsenter", "-t", pid, "-n", "nft", "list", "tables"], check=False).stdout
    return "riskguard_q_" in tables


def restarted_pid(container: Any, old_pid: int) -> int:
    """The container's new init pid once dockerd has started it again, else 0."""
    container.reload()
    state = container.attrs["State"]
    return int(state["Pid"]) if state["Running"] and state["Pid"] not in (0, old_pid) else 0


def restart_dockerd(host: demo.DemoHost, d: Daemon, dockerd: SecondDockerd, action: dict[str, Any]) -> None:
    """Restart dockerd while ``web`` is isolated; ``pulse`` dies while it is down. The agent must
    come back to Docker by itself, keep web isolated, follow pulse to its new pid and cgroup."""
    socket = d.socket
    web, pulse = host.id_of("web"), host.id_of("pulse")
    before = registered(socket)
    flood = host.id_of("flood")
    flood_lines = sum(
        v["lines"] for k, v in demo.ctl_json(socket, "logs", "status")["tail"]["per_log"].items() if k.startswith(flood)
    )
    assert isolated_in_kernel(dockerd, host.containers["web"], action["action"])
    mark = len(d.lines)
    away = dockerd.restart(while_down=lambda: os.kill(before[pulse]["init_pid"], signal.SIGKILL))

    # The agent saw dockerd go and come back, by itself.
    def reconnected() -> bool:
        seen = [e["event"] for e in d.events()[mark:] if e.get("event") in ("docker_unavailable", "docker_connected")]
        return seen[:1] == ["docker_unavailable"] and seen[-1:] == ["docker_connected"]

    demo.wait_for(
        lambda: reconnected() and demo.ctl_json(socket, "status")["runtime"]["docker"]["connected"],
        30,
        "the agent reconnected to the restarted dockerd",
    )
    status = demo.ctl_json(socket, "status")
    assert status["runtime"]["docker"]["reconnects"] >= 1, status["runtime"]
    failed = {k: v for k, v in status["components"].items() if v.get("state") != "running"}
    assert not failed, failed
    # pulse is back with a new process and a new cgroup; the agent follows it there.
    new_pid = demo.wait_for(lambda: restarted_pid(host.containers["pulse"], before[pulse]["init_pid"]), 30, "pulse")
    after = demo.wait_for(
        lambda: (r := registered(socket)).get(pulse, {}).get("init_pid") == new_pid and r,
        30,
        "the agent following pulse to its new pid",
    )
    assert after[pulse]["cgroup_id"] and after[pulse]["cgroup_id"] != before[pulse]["cgroup_id"]
    # Every other container survived the restart (live restore) and is still watched as it was.
    for role in (*BYSTANDERS, "web"):
        cid = host.id_of(role)
        assert after[cid]["init_pid"] == before[cid]["init_pid"], role
        assert after[cid]["cgroup_id"] == before[cid]["cgroup_id"], role
    # web is still isolated: in the kernel, in its record, in the operator's view.
    assert isolated_in_kernel(dockerd, host.containers["web"], action["action"])
    active = [a for a in demo.ctl_json(socket, "actions", "--container", web) if a["active"]]
    assert action["id"] in {a["id"] for a in active}, active
    assert after[web]["state"], after[web]
    # Logs of the survivors are still read.
    demo.wait_for(
        lambda: (
            sum(
                v["lines"]
                for k, v in demo.ctl_json(socket, "logs", "status")["tail"]["per_log"].items()
                if k.startswith(flood)
            )
            > flood_lines
        ),
        30,
        "the flood's log read again after the restart",
    )
    print(f"\ndockerd away {away:.1f}s; pulse pid {before[pulse]['init_pid']} -> {new_pid}")


def attack_after_the_restart(host: demo.DemoHost, d: Daemon, dockerd: SecondDockerd) -> None:
    """An attacker's shell opened in ``pulse`` after it came back reads /etc/shadow: the finding
    names pulse and pulse is isolated, then released."""
    socket = d.socket
    pulse = host.id_of("pulse")
    session = dockerd.open_session(pulse)
    try:
        t0 = time.time()
        session.type("cat /etc/shadow >/dev/null")

        def finding() -> list[dict[str, Any]]:
            return [
                f
                for f in demo.ctl_json(socket, "findings", "--container", pulse, "--limit", "200")
                if f["detector_id"] == "RG-0002" and f["ts"] >= t0 - 1
            ]

        def isolation() -> list[dict[str, Any]]:
            return [
                a
                for a in demo.ctl_json(socket, "actions", "--container", pulse)
                if a["action"] in ("freeze", "quarantine") and a["phase"] == "confirmed" and a["created"] >= t0 - 1
            ]

        demo.wait_for(finding, 60, "RG-0002 on pulse after the dockerd restart")
        action = demo.wait_for(isolation, 60, "the isolation of pulse")[0]
        assert isolated_in_kernel(dockerd, host.containers["pulse"], action["action"])
        assert demo.release(host, socket, "pulse")
    finally:
        session.close()


def check_after_chaos(host: demo.DemoHost, d: Daemon, first: Daemon) -> None:
    """What the chaos must not have cost, as the operator sees it."""
    socket = d.socket
    # Nothing benign was acted on; the hostile, flooding and scanned containers are benign too.
    touched = acted_on(socket)
    hit = [role for role in BYSTANDERS if host.id_of(role) in touched]
    assert hit == [], f"acted on: {hit}"
    status = demo.ctl_json(socket, "status")
    failed = {k: v for k, v in status["components"].items() if v.get("state") != "running"}
    assert not failed, failed
    assert sum((status["events"].get("dropped") or {}).values()) == 0, status["events"]
    assert status["events"].get("errors") == {} and status["findings"].get("errors") == {}, status
    logs = demo.ctl_json(socket, "logs", "status")
    hostile = host.id_of("hostile")
    mine = {k: v for k, v in logs["tail"]["per_log"].items() if k.startswith(hostile)}
    assert mine and next(iter(mine.values()))["lines"] >= 3
    assert logs["malformed"].get("json_too_deep", 0) >= 1, logs["malformed"]
    flood = host.id_of("flood")
    assert any(v["lines"] > 1000 for k, v in logs["tail"]["per_log"].items() if k.startswith(flood))

    # Every line the daemons wrote is one JSON object; the operator's tables stay escaped.
    for line in [*first.lines, *d.lines]:
        json.loads(line)
    table = demo.ctl(socket, "containers")
    assert table.returncode == 0 and "\x1b" not in table.stdout and "\r" not in table.stdout
    reloads = [e for e in [*first.events(), *d.events()] if e.get("event") == "config_reloaded"]
    assert reloads, "no reload took effect"
