# SPDX-License-Identifier: Apache-2.0
"""On a default Docker host, an image's behaviour baseline gets fitted.

Every container there keeps NET_RAW, so the network posture audit reports RG-0105 about each of
them; here the container even adds NET_RAW explicitly (RG-0105 at medium). Posture findings say
nothing about what a container did, so they must not stop learning: the daemon (default
components, observe mode, a 20 s learning period of 2 s windows) has to fit the image's
baseline, and ``riskguardctl baseline list|show`` must say so.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.e2e.daemon import Daemon
from tests.support import TEST_IMAGE, TEST_LABEL, wait_for

LEARN = 20.0


def test_posture_findings_do_not_stop_a_baseline_from_being_fitted(
    daemon: Callable[..., Daemon], docker_client: Any
) -> None:
    d = daemon(
        f"""
response: {{mode: observe}}
behavior: {{window_seconds: 2.0, learning_seconds: {LEARN}, min_windows: 8}}
vuln: {{enabled: false}}
outputs: {{metrics: {{port: 0}}}}
"""
    )
    c = docker_client.containers.run(
        TEST_IMAGE,
        ["sh", "-c", "while true; do date > /tmp/now; ls /etc > /dev/null; sleep 0.5; done"],
        detach=True,
        name=f"rgtest-h5-e2e-{uuid.uuid4().hex[:8]}",
        labels={TEST_LABEL: "1"},
        network_mode="none",
        cap_add=["NET_RAW"],
    )
    try:
        started = time.time()

        def posture() -> Any:
            rows = d.ctl_json("findings", "--container", c.id)
            return next((r for r in rows if r["detector_id"] == "RG-0105" and r["container_id"] == c.id), None)

        f = wait_for(posture, timeout=60, interval=1.0, what=f"RG-0105 about the container: {d.tail()}")
        assert isinstance(f, dict) and f["severity"] == "medium" and f["source"] == "netpolicy"  # open

        def fitted() -> Any:
            rows = d.ctl_json("baseline", "list")["baselines"]
            return next((b for b in rows if b["image"] == TEST_IMAGE and b["state"] == "scoring"), None)

        b = wait_for(fitted, timeout=LEARN + 90, interval=1.0, what=f"a fitted baseline of {TEST_IMAGE}")
        assert isinstance(b, dict)
        assert b["version"] >= 1 and b["training_windows"] >= 8
        assert time.time() - started < LEARN + 90
        shown = d.ctl_json("baseline", "show", TEST_IMAGE)
        assert shown["state"] == "scoring" and not shown["allowances_learning"]
        # The container's own execs (date, ls, sleep from its shell) were learned as allowances.
        assert any(a["kind"] == "exec" and a["origin"] == "learned" for a in shown["allowances"])
        r = d.ctl("baseline", "list")
        assert r.returncode == 0 and TEST_IMAGE in r.stdout and "scoring" in r.stdout
    finally:
        c.remove(force=True)
