#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Install footprint: the venv of a base and a full install, and the container image.

    .venv/bin/python scripts/bench/install_size.py [--extras kubernetes,gmp] [--keep DIR] [--json]

Builds a fresh venv (Debian's python3 -m venv, then ``pip install .[extras]`` from this checkout,
non-editable, with the host's pip configuration) in a temporary directory, once without extras
("base") and once with them ("full"); measures each on disk (``du``), with and without pip
itself, and lists the largest distributions. Then reports the size of the riskguard-agent image
if scripts/build-image.sh has built it. Each venv takes one to two minutes to install.
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


def measure(root: Path, label: str, extras: str) -> dict[str, Any]:
    venv = root / label
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    spec = f"{REPO}[{extras}]" if extras else str(REPO)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", spec], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    total = du_mb(venv)
    pip = sum(du_mb(p) for p in site.glob("pip*") if p.is_dir())
    return {
        "install": label,
        "extras": extras,
        "venv_mb": round(total, 1),
        "venv_without_pip_mb": round(total - pip, 1),
        "largest": [(n, round(s, 1)) for n, s in largest(site)],
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
        print(f"{head}  (without pip {r['venv_without_pip_mb']:.1f} MB)")
        print("       largest: " + ", ".join(f"{n} {s:.0f}" for n, s in r["largest"]))
    if report["image"]:
        print(f"image {report['image']['image']}: {report['image']['size_mb']} MB")
    base = results[0]["venv_without_pip_mb"]
    print(f"base venv vs target {TARGET_BASE_MB} MB: {'met' if base <= TARGET_BASE_MB else 'NOT met'} ({base:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
