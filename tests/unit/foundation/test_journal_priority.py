# SPDX-License-Identifier: Apache-2.0
"""Log lines carry their syslog priority as an sd-daemon prefix when stdout is the journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SCRIPT = """
import os, sys
from agent.logsetup import configure_logging
import structlog
if os.environ.get("AS_JOURNAL"):
    st = os.fstat(1)
    os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
configure_logging("debug", "json")
log = structlog.get_logger("t")
log.debug("probe_loaded", n=1)
log.info("agent_started")
log.warning("queue_full", q="events")
log.error("output_unavailable", output="webhook")
"""


def run(tmp_path: Path, journal: bool) -> list[str]:
    out = tmp_path / "stdout"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal:
        env["AS_JOURNAL"] = "1"
    with out.open("w") as f:  # a regular file stands in for journald's stream socket
        subprocess.run([sys.executable, "-c", SCRIPT], stdout=f, env=env, cwd=REPO, check=True, timeout=60)
    return out.read_text().splitlines()


def test_journal_stream_lines_start_with_their_priority(tmp_path: Path) -> None:
    lines = run(tmp_path, journal=True)
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>"]
    assert json.loads(lines[3][3:])["event"] == "output_unavailable"


def test_other_streams_stay_plain_json(tmp_path: Path) -> None:
    lines = run(tmp_path, journal=False)
    assert [json.loads(line)["level"] for line in lines] == ["debug", "info", "warning", "error"]
