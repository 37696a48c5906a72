#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Install footprint: the venv of a base and a full install, and the container image.

    .venv/bin/python scripts/bench/install_size.py [--extras kubernetes,gmp] [--keep DIR] [--json]

Builds a fresh venv (Debian's python3 -m venv, then ``pip install .[extras]`` from this checkout,
non-editable, with the host's pip configuration) in a temporary directory, once without extras
("base") and once with them ("full"); measures each on disk (``du``, MiB), with and without pip
itself, lists the largest distributions, then removes the libraries' test suites and the
venv's seeded setuptools as scripts/install.sh and the Dockerfile do, and measures again. The
base venv must then still fit both behaviour detectors and run ``riskguard-agent --version``
(checked). Then reports the size of the riskguard-agent image if scripts/build-image.sh has built
it. Each venv takes one to two minutes to install.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TARGET_BASE_MB = 250  # issue 17's target for the base venv


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def largest(site: Path, n: int = 12) -> list[tuple[str, float]]:
    sizes = [(p.name, du_mb(p)) for p in site.iterdir() if p.is_dir() and not p.name.endswith(".dist-info")]
    return sorted(sizes, key=lambda x: -x[1])[:n]


# Run in the base venv after the test suites are gone: the behaviour models fit (scikit-learn,
# no pyod) and the CLI starts.
SMOKE = """
import importlib.util, numpy as np
from agent.behavior.features import N_FEATURES
from agent.behavior.model import DeviationModel
from agent.settings.behavior import BehaviorSettings
x = np.abs(np.random.default_rng(1).normal(size=(64, N_FEATURES)))
for algorithm in ("iforest", "ecod"):
    DeviationModel.fit(x, BehaviorSettings(algorithm=algorithm))
print("pyod installed:", importlib.util.find_spec("pyod") is not None)
"""


def measure(root: Path, label: str, extras: str) -> dict[str, Any]:
    venv = root / label
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    spec = f"{REPO}[{extras}]" if extras else str(REPO)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", spec], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    total = du_mb(venv)
    pip = sum(du_mb(p) for p in site.glob("pip*") if p.is_dir())
    top = largest(site)
    # What scripts/install.sh and the Dockerfile remove: every ``tests`` directory of the libraries ...
    tests = [p for p in site.rglob("tests") if p.is_dir() and not any(q.name == "tests" for q in p.parents)]
    tests_mb = sum(du_mb(p) for p in tests)
    for p in tests:
        shutil.rmtree(p)
    # ... and the setuptools python3 -m venv seeds (pip builds in isolated environments).
    subprocess.run([str(venv / "bin" / "pip"), "uninstall", "-q", "-y", "setuptools"], check=True)
    smoke = None
    if not extras:
        py = str(venv / "bin" / "python")
        out = subprocess.run([py, "-c", SMOKE], capture_output=True, text=True, check=True, cwd=root).stdout
        version = subprocess.run([str(venv / "bin" / "riskguard-agent"), "--version"], capture_output=True, text=True)
        smoke = f"{out.strip()}; riskguard-agent --version: {version.stdout.strip() or version.stderr.strip()}"
    return {
        "install": label,
        "extras": extras,
        "venv_mb": round(total, 1),
        "venv_without_pip_mb": round(total - pip, 1),
        "tests_mb": round(tests_mb, 1),
        "venv_slim_mb": round(du_mb(venv) - pip, 1),
        "largest": [(n, round(s, 1)) for n, s in top],
        "smoke": smoke,
    }


def image_size() -> dict[str, Any] | None:
    if shutil.which("docker") is None:
        return None
    tag = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-image.sh"), "--print-tag"], capture_output=True, text=True
    ).stdout.strip()
    for ref in (tag, tag.rsplit("-", 1)[0]):
        r = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", ref], capture_output=True, text=True)
        if r.returncode == 0:
            return {"image": ref, "size_mb": round(int(r.stdout) / 1e6, 1)}
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extras", default="kubernetes,gmp", help="extras of the full install")
    ap.add_argument("--keep", type=Path, help="build the venvs here and keep them")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="riskguard-size-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        results = [measure(root, "base", ""), measure(root, "full", args.extras)]
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report = {"venvs": results, "image": image_size(), "target_base_mb": TARGET_BASE_MB}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for r in results:
        head = f"{r['install']:5} [{r['extras'] or '-'}]  venv {r['venv_mb']:7.1f} MB"
        print(f"{head}  (without pip {r['venv_without_pip_mb']:.1f} MB; also without the libraries' tests and")
        slim = r["venv_slim_mb"]
        print(f"       setuptools, as scripts/install.sh and the image leave it: {slim:.1f} MB)")
        print("       largest: " + ", ".join(f"{n} {s:.0f}" for n, s in r["largest"]))
        if r["smoke"]:
            print(f"       check: fits iforest and ecod; {r['smoke']}")
    if report["image"]:
        print(f"image {report['image']['image']}: {report['image']['size_mb']} MB")
    for key, what in (
        ("venv_without_pip_mb", "pip install ."),
        ("venv_slim_mb", "scripts/install.sh"),
    ):
        base = results[0][key]
        verdict = "met" if base <= TARGET_BASE_MB else "NOT met"
        print(f"base venv ({what}, without pip) vs target {TARGET_BASE_MB} MB: {verdict} ({base:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
