# SPDX-License-Identifier: Apache-2.0
"""Benchmark: warm scan of a 100-package dpkg rootfs against a Debian-sized database.

Builds a Debian 12 rootfs with 100 installed packages (binary → source names, epochs, tildes,
backport suffixes) and a database of 40,000 generated OSV records in which every installed source
package has several advisories across Debian 11/12/13. Then interleaves 7 runs each of:

* baseline: reading and parsing the dpkg status file alone (``read_inventory``);
* warm scan: ``scan_root`` (inventory + matching, warm page cache and warm version caches);
* rematch:  matching a cached inventory only (what the daemon does when the database changes).

Target: warm scan ≤ 1 s.

    .venv/bin/python scripts/bench/vuln_scan.py [--records 40000] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.logsetup import configure_logging
from agent.vuln.db import VulnDB
from agent.vuln.inventory import read_inventory
from agent.vuln.matcher import Matcher
from agent.vuln.rootfs import DirRoot
from agent.vuln.scanner import scan_root
from tests.fixtures.vuln.builders import write_dpkg_status, write_os_release


def build(tmp: Path, n_records: int) -> tuple[Path, Path]:
    rnd = random.Random(11)
    root = tmp / "rootfs"
    write_os_release(root, "debian", "12", "bookworm")
    pkgs = []
    for i in range(100):
        src = f"src{i:03d}"
        epoch = "1:" if i % 10 == 0 else ""
        version = f"{epoch}{1 + i % 7}.{i % 13}-{1 + i % 3}" + ("~deb12u1" if i % 4 == 0 else "+deb12u2")
        pkgs.append({"name": f"lib{src}", "version": version, "source": src})
    write_dpkg_status(root, pkgs)
    recs = tmp / "osv"
    recs.mkdir()
    records = []
    for i in range(n_records):
        # ~ one record in 10 names an installed source package; the rest are other packages.
        name = f"src{rnd.randrange(100):03d}" if i % 10 == 0 else f"other{rnd.randrange(6000):05d}"
        events: list[dict[str, str]] = [{"introduced": "0"}]
        if rnd.random() < 0.8:
            events.append(
                {
                    "fixed": f"{1 + rnd.randrange(8)}.{rnd.randrange(14)}-{1 + rnd.randrange(3)}"
                    f"+deb12u{rnd.randrange(1, 5)}"
                }
            )
        records.append(
            {
                "id": f"DEBIAN-CVE-2024-{i:06d}",
                "modified": "2024-05-01T00:00:00Z",
                "aliases": [f"CVE-2024-{i:06d}"],
                "affected": [
                    {
                        "package": {"ecosystem": f"Debian:{rel}", "name": name},
                        "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    }
                    for rel in rnd.sample(["11", "12", "13"], rnd.randint(1, 3))
                ],
            }
        )
    (recs / "all.json").write_text(json.dumps(records))
    dbp = tmp / "db.sqlite"
    db = VulnDB(dbp)
    db.import_paths([recs], progress=False)
    db.close()
    return root, dbp


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    configure_logging("warning", "json", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="rg-bench-vuln-") as tmp:
        root, dbp = build(Path(tmp), args.records)
        db = VulnDB(dbp)
        r = DirRoot(root)
        first = time.perf_counter()
        res = scan_root(r, db)
        cold = time.perf_counter() - first
        base_t, scan_t, rematch_t = [], [], []
        inv = read_inventory(r)
        for _ in range(args.runs):
            t = time.perf_counter()
            read_inventory(r)
            base_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            res = scan_root(r, db)
            scan_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            Matcher(db).match(inv)
            rematch_t.append(time.perf_counter() - t)
        b, s, m = statistics.median(base_t), statistics.median(scan_t), statistics.median(rematch_t)
        print(f"rootfs: {len(res.inventory.packages)} dpkg packages; db: {args.records} OSV records")
        print(f"first scan (cold caches):  {cold * 1000:.1f} ms, {len(res.matches)} vulnerabilities")
        print(f"baseline read_inventory:   median {b * 1000:.1f} ms runs={[round(x * 1000, 1) for x in base_t]}")
        print(f"warm scan (read + match):  median {s * 1000:.1f} ms runs={[round(x * 1000, 1) for x in scan_t]}")
        print(f"rematch cached inventory:  median {m * 1000:.1f} ms runs={[round(x * 1000, 1) for x in rematch_t]}")
        print(f"ratio warm scan/baseline:  {s / b:.2f}x; rematch/warm scan: {m / s:.2f}x")
        print(f"target warm scan <= 1 s: {'PASS' if s <= 1.0 else 'FAIL'} ({s:.3f}s)")
        r.close()
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
