# SPDX-License-Identifier: Apache-2.0
"""Chaos while the daemon protects a host: SIGHUP reloads under load, a container flooding its
log, and a container writing hostile log lines (JSON nested 100,000 deep, lone surrogates, escape
sequences) run next to the demo host while attacks are played. Nothing may break: every attack is
still detected and isolated, no benign container is acted on, no component fails, the buses drop
nothing, every daemon log line stays one JSON object, and the operator's terminal output stays
escaped.

The agent is also killed (SIGKILL) while ``web`` is isolated: a new agent on the same state keeps
the isolation and releases it. Not played here: a dockerd restart (it would take down the
containers of every other test on a shared host).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scripts import demo
from tests.e2e.daemon import Daemon

LEARN_SECONDS = 30.0
# Rule-detected attacks played inside ``web`` that involve no other container's behaviour (the
# web shell is played from ``client``, the reverse shell lands on ``c2``, the port scan probes
# ``worker``: those neighbours need the demo's longer learning): each a finding and an isolation.
ATTACKS = tuple(a for a in demo.ATTACKS if a.name in ("shadow_read", "download_exec"))

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


def config(state: Any, poll: float) -> str:
    window = 2.0
    return f"""
response: {{mode: observe, overrides: [{{labels: {{{demo.LABEL}: "1"}}, mode: enforce}}]}}
behavior: {{window_seconds: {window}, learning_seconds: {LEARN_SECONDS}, min_windows: 10}}
vuln: {{enabled: false}}
logs: {{poll_seconds: {poll}}}
outputs: {{alerts_file: {state}/alerts.jsonl, metrics: {{port: 0}}}}
network: {{selinux: {{directory: {state}/selinux}}}}
"""


def extra_container(host: demo.DemoHost, role: str, script: str) -> None:
    api = host.client.api
    name = f"rgchaos-{role}"
    rotate = {"type": "json-file", "config": {"max-size": "5m", "max-file": "2"}}
    created = api.create_container(
        demo.BASE_IMAGE,
        ["sh", "-c", script],
        name=name,
        labels={demo.LABEL: "1", "app": role},
        host_config=api.create_host_config(network_mode="none", log_config=rotate),
    )
    api.start(created["Id"])
    host.names[role] = name
    host.containers[role] = host.client.containers.get(created["Id"])


@pytest.fixture(scope="module")
def chaos_host(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[demo.DemoHost, Daemon]]:
    work = tmp_path_factory.mktemp("chaos")
    d = Daemon(work / "agent", "")
    d.write_config(config(d.tmp / "state", 1.0))
    host = demo.DemoHost(docker_client)
    d.start()
    try:
        d.wait_ready()
        host.start(prefix="rgchaos")
        extra_container(host, "flood", FLOOD)
        extra_container(host, "hostile", HOSTILE)
        yield host, d
    finally:
        host.remove()
        d.stop()


def reload(d: Daemon, poll: float) -> None:
    """Rewrite the config (or not) and SIGHUP; wait until the daemon says what it did."""
    before = len(d.lines)
    d.write_config(config(d.tmp / "state", poll))
    d.send(signal.SIGHUP)
    demo.wait_for(
        lambda: any(
            json.loads(line).get("event") in ("config_reloaded", "config_reload_unchanged") for line in d.lines[before:]
        ),
        60,
        "the reload",
    )


def test_attacks_are_handled_through_reloads_a_kill_a_log_flood_and_hostile_lines(
    chaos_host: tuple[demo.DemoHost, Daemon],
) -> None:
    host, d = chaos_host
    socket = d.socket
    started = time.time()
    demo.wait_for(
        lambda: len(demo.ctl_json(socket, "containers")) >= len(host.names), 30, "discovery of every container"
    )
    # Under load (the flood is being tailed): a reload that changes something, one that does not.
    reload(d, 2.0)
    reload(d, 2.0)
    time.sleep(max(0.0, LEARN_SECONDS + 4 - (time.time() - started)))
    for role in (*demo.BENIGN, "web", "flood", "hostile"):
        assert demo.isolations_of(socket, host.id_of(role)) == [], f"{role} was acted on before any attack"

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
                d = restart_after_sigkill(d)
                active = [a for a in demo.ctl_json(socket, "actions", "--container", host.id_of("web")) if a["active"]]
                assert outcome.action["id"] in {a["id"] for a in active}, active
            assert demo.release(host, socket, attack.target), attack.name
        check_after_chaos(host, d, first)
    finally:
        if d is not first:
            d.stop()


def restart_after_sigkill(d: Daemon) -> Daemon:
    """SIGKILL the agent, then start a new one on the same state directory and sockets."""
    d.stop(signal.SIGKILL)
    d.notify_path.unlink(missing_ok=True)
    again = Daemon(d.tmp, "")
    again.write_config(config(d.tmp / "state", 2.0))
    again.start()
    again.wait_ready()
    return again


def check_after_chaos(host: demo.DemoHost, d: Daemon, first: Daemon) -> None:
    """What the chaos must not have cost, as the operator sees it."""
    socket = d.socket
    # Nothing benign was acted on; the hostile and flooding containers are benign too.
    for role in (*demo.BENIGN, "flood", "hostile"):
        assert demo.isolations_of(socket, host.id_of(role)) == [], f"{role} was acted on"
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
