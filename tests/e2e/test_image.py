# SPDX-License-Identifier: Apache-2.0
"""The container image: built from this tree (scripts/build-image.sh, cached by tree hash), run
with the DaemonSet's host mounts, it loads its probes and reports a real container's attack.

The DaemonSet runs the pod ``privileged``; ``docker run --privileged`` cannot start on this lab
VM (its bounding set lacks CAP_SYS_RESOURCE, see HOSTLAB.md), so the test grants the capabilities
the agent uses one by one (Docker 20.10 knows no CAP_BPF/CAP_PERFMON: CAP_SYS_ADMIN covers both).
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import TEST_IMAGE, TEST_LABEL, need_root, need_tool, run, wait_for

REPO = Path(__file__).resolve().parents[2]
CAPS = (
    "SYS_ADMIN",  # bpf(), perf_event_open, setns, mounts
    "SYS_PTRACE",  # /proc/<pid>/{root,exe,fd,ns} of other processes
    "SYS_NICE",  # the response thread's real-time priority
    "DAC_READ_SEARCH",
    "DAC_OVERRIDE",
    "NET_ADMIN",
    "NET_RAW",
    "AUDIT_READ",
    "AUDIT_CONTROL",
    "IPC_LOCK",
    "CHOWN",
    "FOWNER",
    "KILL",
    "SETUID",
    "SETGID",
)
# The DaemonSet's hostPath mounts (config/kubernetes/30-daemonset.yaml), same container paths.
HOST_MOUNTS = (
    ("/proc", "/host/proc", ""),
    ("/sys", "/host/sys", ""),
    ("/sys/kernel/tracing", "/sys/kernel/tracing", ""),
    ("/sys/kernel/debug", "/sys/kernel/debug", ""),
    ("/var/run/docker.sock", "/host/var/run/docker.sock", ""),
    ("/var/lib/docker", "/host/var/lib/docker", ":ro"),
    ("/etc", "/host/etc", ":ro"),
    ("/lib/modules", "/lib/modules", ":ro"),
    ("/usr/src", "/usr/src", ":ro"),
)


def daemonset_config() -> dict[str, Any]:
    """The ConfigMap's agent.yaml, with Kubernetes off (no cluster here) and a free metrics port."""
    doc = yaml.safe_load((REPO / "config" / "kubernetes" / "20-configmap.yaml").read_text())
    cfg: dict[str, Any] = yaml.safe_load(doc["data"]["agent.yaml"])
    cfg["kubernetes"]["enabled"] = False
    cfg["outputs"]["metrics"]["port"] = 0
    return cfg


BUILD_TIMEOUT = 1500.0  # a fresh host: pip wheels of the agent's dependencies, then apt in docker build


def wait_for_background_build(where: Path, timeout: float = BUILD_TIMEOUT) -> None:
    """Wait for the image build ``make test`` started before lint (scripts/run-tests.sh) and fail
    with its log unless it succeeded. The build holds ``lock`` while it runs, so a build that
    died, however it died, releases it: this never waits past the build, nor rebuilds after a
    failure."""
    log = where / "log"

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"

    lock = where / "lock"
    assert lock.exists(), f"RISKGUARD_IMAGE_BUILD={where} is no build of scripts/run-tests.sh (no lock file)"
    deadline = time.monotonic() + timeout
    with lock.open("rb") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the background image build ran over {timeout:.0f} s; its log:\n{tail()}")
                time.sleep(1)
    rc = (where / "rc").read_text().strip() if (where / "rc").exists() else None
    if rc != "0":
        how = f"exited {rc}" if rc is not None else "ended without a result (killed?)"
        pytest.fail(f"the background image build (scripts/build-image.sh) {how}; its log ({log}):\n{tail()}")


@pytest.fixture(scope="module")
def image() -> str:
    need_root()
    need_tool("docker")
    # `make test` builds the image in the background meanwhile; pytest run by hand builds it here.
    # After a background build of this tree, build-image.sh finds its image and only tags it (it
    # rebuilds if the tree changed since).
    if os.environ.get("RISKGUARD_IMAGE_BUILD"):
        wait_for_background_build(Path(os.environ["RISKGUARD_IMAGE_BUILD"]))
    r = run(["bash", str(REPO / "scripts" / "build-image.sh")], check=False, timeout=BUILD_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    tag = r.stdout.strip().splitlines()[-1]
    assert tag.startswith("riskguard-agent:")
    return tag


@pytest.fixture
def agent(image: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cfg_dir, state, rundir = tmp_path / "etc", tmp_path / "state", tmp_path / "run"
    for d in (cfg_dir, state, rundir):
        d.mkdir(mode=0o700)
    (cfg_dir / "agent.yaml").write_text(yaml.safe_dump(daemonset_config()))
    name = f"rgimg-agent-{uuid.uuid4().hex[:6]}"
    mounts = [f"{cfg_dir}:/etc/riskguard:ro", f"{state}:/var/lib/riskguard", f"{rundir}:/run/riskguard"]
    mounts += [f"{src}:{dst}{mode}" for src, dst, mode in HOST_MOUNTS if Path(src).exists()]
    cmd = ["docker", "run", "-d", "--name", name, "--label", TEST_LABEL, "--pid", "host", "--network", "host"]
    cmd += ["--cap-drop", "ALL", *[a for c in CAPS for a in ("--cap-add", c)]]
    cmd += ["--security-opt", "apparmor=unconfined", "--security-opt", "seccomp=unconfined"]
    cmd += [a for m in mounts for a in ("-v", m)]
    run([*cmd, image], timeout=60)
    try:
        yield name, state
    finally:
        logs = run(["docker", "logs", "--tail", "40", name], check=False).stdout
        run(["docker", "rm", "-f", name], check=False)
        print(logs)


def events(name: str) -> list[dict[str, Any]]:
    out = []
    for line in run(["docker", "logs", name], check=False, timeout=30).stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def alerts(state: Path, container_id: str) -> list[dict[str, Any]]:
    path = state / "alerts.jsonl"
    if not path.exists():
        return []
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in recs if r.get("container_id") == container_id]


# Fits both deviation detectors in the image's venv; pyod (an optional extra) is not installed.
FIT = """
import importlib.util
import numpy as np
from agent.behavior.features import N_FEATURES
from agent.behavior.model import DeviationModel
from agent.settings.behavior import BehaviorSettings
x = np.abs(np.random.default_rng(1).normal(size=(64, N_FEATURES)))
for algorithm in ("iforest", "ecod"):
    DeviationModel.fit(x, BehaviorSettings(algorithm=algorithm))
assert importlib.util.find_spec("pyod") is None and importlib.util.find_spec("numba") is None
"""


def test_image_carries_the_agent_bcc_and_the_probes(image: str) -> None:
    script = (
        "riskguard-agent --version && python3 -c 'import bcc' "
        "&& /opt/riskguard/venv/bin/python -c 'import bcc, nftables, audit, kubernetes' "
        # the behaviour models still fit with the libraries' test suites removed, and without pyod
        f"&& /opt/riskguard/venv/bin/python -c {shlex.quote(FIT)} "
        "&& ls /opt/riskguard/share/probes/*.bpf.c | wc -l"
    )
    r = run(["docker", "run", "--rm", "--entrypoint", "sh", image, "-c", script], check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    version, probes = r.stdout.split()[-2:]
    assert int(probes) >= 5 and version[0].isdigit(), r.stdout


def test_image_reports_a_shadow_read_from_a_real_container(agent: tuple[str, Path]) -> None:
    name, state = agent
    wait_for(
        lambda: any(e.get("event") == "agent_started" for e in events(name)),
        timeout=240,
        what="the containerised agent to start",
    )
    loaded = [e for e in events(name) if e.get("event") == "ebpf_probes_loaded"]
    assert loaded and "files" in loaded[0]["probes"], loaded
    target = f"rgimg-target-{uuid.uuid4().hex[:6]}"
    cid = run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            target,
            "--label",
            TEST_LABEL,
            "--network",
            "none",
            TEST_IMAGE,
            "sleep",
            "600",
        ],
        timeout=60,
    ).stdout.strip()
    try:
        wait_for(
            lambda: any(
                e.get("event") == "container_discovered" and cid.startswith(str(e.get("container_id", "")))
                for e in events(name)
            ),
            timeout=60,
            what="the agent to discover the target",
        )
        shell = subprocess.Popen(
            ["docker", "exec", "-i", cid, "sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert shell.stdin is not None
        time.sleep(0.5)
        # Benign twin: the same tool on an ordinary file stays silent.
        shell.stdin.write("cat /etc/hostname\n")
        shell.stdin.flush()
        time.sleep(3)
        assert [a for a in alerts(state, cid) if a["detector_id"] == "RG-0002"] == []
        shell.stdin.write("cat /etc/shadow\n")
        shell.stdin.flush()
        hit = wait_for(
            lambda: [a for a in alerts(state, cid) if a["detector_id"] == "RG-0002"],
            timeout=60,
            what="RG-0002 for the shadow read in the agent's alerts file",
        )
        assert isinstance(hit, list) and hit[0]["evidence"]["path"] == "/etc/shadow"
        assert hit[0]["container_name"] == target
        shell.stdin.close()
        shell.wait(10)
        # The image's CLI answers over the control socket in the mounted run directory.
        r = run(["docker", "exec", name, "riskguardctl", "--json", "findings"], timeout=60)
        rows = json.loads(r.stdout)
        rows = rows.get("findings", rows) if isinstance(rows, dict) else rows
        assert any(f.get("container_id") == cid and f.get("detector_id") == "RG-0002" for f in rows), r.stdout[:2000]
    finally:
        run(["docker", "rm", "-f", target], check=False)
