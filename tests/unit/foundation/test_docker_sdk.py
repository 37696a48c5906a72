# SPDX-License-Identifier: Apache-2.0
"""The docker SDK as the agent imports it: no SSH transport, so no paramiko/cryptography."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO

PROBE = """
import json, sys
from agent.runtime.docker import docker_sdk
docker = docker_sdk()
assert docker_sdk() is docker
heavy = sorted(m for m in ("paramiko", "cryptography", "nacl", "bcrypt") if m in sys.modules)
client = docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41")  # no request made
try:
    docker.DockerClient(base_url="ssh://root@localhost", version="1.41")
    ssh = "accepted"
except docker.errors.DockerException as exc:
    ssh = str(exc)
import paramiko  # other users of paramiko (python-gvm's SSH transport) still get it
found = hasattr(docker.errors, "NotFound")
print(json.dumps({"heavy": heavy, "ssh": ssh, "errors": found, "paramiko": paramiko.__name__}))
"""


def test_sdk_is_imported_without_its_ssh_transport() -> None:
    pytest.importorskip("paramiko")  # the point only stands where paramiko is installed
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["heavy"] == []
    assert "paramiko" in got["ssh"]  # the SDK's own message: ssh:// needs its SSH adapter
    assert got["errors"] and got["paramiko"] == "paramiko"
