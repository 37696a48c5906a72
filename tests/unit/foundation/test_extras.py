# SPDX-License-Identifier: Apache-2.0
"""A base install (no [kubernetes], no [gmp] extra) degrades feature by feature, with an error
that names the setting and the install command; the rest of the agent runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support import REPO

# Each case runs in a fresh interpreter where the extra's top-level module cannot be imported
# (``sys.modules[name] = None`` is how Python marks a module as unavailable).
KUBE = """
import sys; sys.modules["kubernetes"] = None
from types import SimpleNamespace
from structlog.testing import capture_logs
from agent.config import parse_config
from agent.response.component import _kube
cfg = parse_config({"kubernetes": {"enabled": True, "connection": "url", "api_url": "http://127.0.0.1:9"}}, "t")
with capture_logs() as logs:
    client = _kube(SimpleNamespace(config=cfg))
assert client is None
[e] = [e for e in logs if e["event"] == "kubernetes_unavailable"]
print(e["error"])
"""
GMP = """
import sys; sys.modules["gvm"] = None
import tempfile
from pathlib import Path
from structlog.testing import capture_logs
from agent.config import parse_config
from agent.context import AgentContext
from agent.events import Event
from agent.findings import Finding
from agent.hostfs import HostPaths
from agent.pipeline import Bus
from agent.runtime.model import ContainerRegistry
from agent.store import Store
from agent.vuln.component import build
tmp = Path(tempfile.mkdtemp())
cfg = parse_config({"vuln": {"enabled": True, "on_start": False, "db": {"path": str(tmp / "v.sqlite")},
                              "gmp": {"enabled": True}}}, "t")
ctx = AgentContext(config=cfg, paths=HostPaths().with_state(tmp, run=tmp / "run"), store=Store(tmp / "a.db"),
                   registry=ContainerRegistry(), events=Bus[Event]("events"), findings=Bus[Finding]("findings"))
comp = build(ctx)
with capture_logs() as logs:
    comp.start(ctx)
try:
    assert comp._thread is not None and comp._thread.is_alive()  # local scanning runs
    assert comp._gmp_thread is None
    print(comp.status()["last_error"])
    assert any(e["event"] == "gmp_unavailable" for e in logs)
finally:
    comp.stop()
    ctx.store.close()
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_kubernetes_enabled_without_the_extra_names_it() -> None:
    r = run(KUBE)
    assert r.returncode == 0, r.stderr
    assert "kubernetes.enabled needs the kubernetes library" in r.stdout
    assert "pip install 'riskguard-agent[kubernetes]'" in r.stdout


def test_gmp_enabled_without_the_extra_keeps_local_scans() -> None:
    r = run(GMP)
    assert r.returncode == 0, r.stderr
    assert "pip install 'riskguard-agent[gmp]'" in r.stdout
    assert "Traceback" not in r.stderr


def test_with_the_extras_installed_nothing_is_reported() -> None:
    from agent.extras import installed

    # The dev install carries every extra (pyproject's dev list), so the tests cover them.
    assert installed("kubernetes") and installed("gmp")
