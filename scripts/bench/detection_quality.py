#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Precision and recall of the detection on the e2e benign corpus with its attack techniques.

    .venv/bin/python scripts/bench/detection_quality.py [--learn 60] [--benign 120] [--total 310]

Runs the corpus of tests/e2e/corpus (the same definitions as tests/e2e/test_benign_corpus.py)
against one agent with the product's defaults, enforce mode on the corpus's containers, a short
learning period. Prints, per technique, whether a finding named its container (detected/missed)
and how fast the must-isolate class was frozen; on the benign side, findings by severity and
detector and the containers acted on; then recall, isolation recall and precision (of high
findings, per container and of actions). Writes the whole run to
bench-results/detection-quality.json. Needs root, dockerd and the local images of
scripts/setup-host.sh. The defaults take about six minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import docker  # noqa: E402

from tests.e2e.corpus import report, spec  # noqa: E402
from tests.e2e.corpus.run import CorpusResult, Durations, agent_settings, run_corpus  # noqa: E402
from tests.e2e.daemon import Daemon  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    defaults = Durations()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--learn", type=float, default=defaults.learn, help="learning period, seconds")
    parser.add_argument("--benign", type=float, default=defaults.benign, help="benign run after learning, seconds")
    parser.add_argument("--total", type=float, default=defaults.total, help="whole run, seconds")
    parser.add_argument("--rescore", type=Path, help="score a saved run (bench-results/*.json) instead of running")
    args = parser.parse_args(argv)
    if args.rescore:
        raw = json.loads(args.rescore.read_text())
        result = CorpusResult.from_json(json.dumps(raw.get("run", raw)))
        print_report(result, result.ended - result.started)
        return 0
    durations = Durations(learn=args.learn, benign=args.benign, total=args.total)
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="rg-detection-quality-") as tmp:
        d = Daemon(Path(tmp) / "agent", "")
        d.write_config(agent_settings(d.tmp / "state", run_id, durations.learn))
        d.start()
        try:
            d.wait_ready()
            t0 = time.time()
            result = run_corpus(docker.from_env(), d.socket, Path(tmp), run_id, durations, say=print)
        finally:
            d.stop()
    out = REPO / "bench-results"
    out.mkdir(exist_ok=True)
    scores = report.scores(result)
    (out / "detection-quality.json").write_text(
        json.dumps({"scores": scores, "run": json.loads(result.to_json())}) + "\n"
    )
    print_report(result, time.time() - t0)
    return 0


def print_report(result: CorpusResult, seconds: float) -> None:
    """The tables, the findings behind them and the scores."""
    s = report.scores(result)

    print(
        f"\n== corpus run {result.run_id}: {seconds:.0f} s, {len(spec.BENIGN)} benign containers, "
        f"{len(spec.TECHNIQUES)} techniques"
    )
    print(report.table(result))
    print("\n" + report.details(result))
    print("\n== benign side")
    print(f"findings by severity: {s['benign_findings_by_severity'] or 'none'}")
    print(f"findings by detector: {s['benign_findings_by_detector'] or 'none'}")
    print(f"containers acted on: {s['benign_containers_isolated'] or 'none'}")
    failed = {k: v for k, v in result.agent_status.get("components", {}).items() if v.get("state") != "running"}
    print(f"agent components not running: {failed or 'none'}; events: {result.agent_status.get('events')}")
    print("\n== scores")
    print(f"recall (techniques with a finding naming their container): {s['recall']}  missed: {s['missed']}")
    print(f"isolation recall (must-isolate frozen within {spec.ISOLATE_SECONDS:g} s): {s['isolation_recall']}")
    print(f"precision, high findings: {s['precision_findings']} {s['high_findings']}")
    print(f"precision, containers with a high finding: {s['precision_containers']}")
    print(f"precision, containers isolated: {s['precision_actions']}")


if __name__ == "__main__":
    sys.exit(main())
