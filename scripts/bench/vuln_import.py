# SPDX-License-Identifier: Apache-2.0
"""Benchmark: OSV import throughput and database size for a full-Debian-sized generated export.

Generates N (default 40,000) Debian-style OSV records (1-3 releases each, fixed/unfixed ranges,
aliases, some CVSS vectors) into an ``all.zip`` in a temp dir, then interleaves 5 runs of:

* baseline: unzip + ``json.loads`` of every record (the floor any importer pays);
* import:   ``VulnDB.import_paths`` into a fresh database (parse, normalise, index, commit);

and reports records/s, the import/baseline ratio, the database size, and the cost of an
incremental re-import (unchanged zip: skipped; touched zip: every record compared, none written).
Target: a full-Debian-sized import in ≤ 60 s.

    .venv/bin/python scripts/bench/vuln_import.py [--records 40000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.logsetup import configure_logging
from agent.vuln.db import VulnDB

VECTORS = [
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N",
    "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N",
]


def generate(path: Path, n: int, seed: int = 7) -> None:
    rnd = random.Random(seed)
    packages = [f"src{i:05d}" for i in range(6000)]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            pkg = rnd.choice(packages)
            affected = []
            for release in rnd.sample(["11", "12", "13"], rnd.randint(1, 3)):
                events: list[dict[str, str]] = [{"introduced": "0"}]
                r = rnd.random()
                if r < 0.7:
                    events.append(
                        {
                            "fixed": f"{rnd.randint(1, 9)}.{rnd.randint(0, 20)}-{rnd.randint(1, 5)}"
                            f"+deb{release}u{rnd.randint(1, 9)}"
                        }
                    )
                elif r < 0.8:
                    events.append({"fixed": "0"})
                affected.append(
                    {
                        "package": {"ecosystem": f"Debian:{release}", "name": pkg},
                        "ranges": [{"type": "ECOSYSTEM", "events": events}],
                        "ecosystem_specific": {"urgency": rnd.choice(["low", "medium", "high", "not yet assigned"])},
                    }
                )
            rec: dict[str, object] = {
                "schema_version": "1.6.0",
                "id": f"DEBIAN-CVE-{2000 + i // 10000}-{i:06d}",
                "modified": "2024-05-01T00:00:00Z",
                "published": "2023-01-01T00:00:00Z",
                "summary": f"generated advisory {i} for {pkg}",
                "details": "x" * rnd.randint(50, 400),
                "aliases": [f"CVE-{2000 + i // 10000}-{i:06d}"] if rnd.random() < 0.5 else [],
                "affected": affected,
            }
            if rnd.random() < 0.3:
                rec["severity"] = [{"type": "CVSS_V3", "score": rnd.choice(VECTORS)}]
            zf.writestr(f"{rec['id']}.json", json.dumps(rec))


def baseline(path: Path) -> int:
    n = 0
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            json.loads(zf.read(info))
            n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    configure_logging("warning", "json", stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="rg-bench-vuln-") as tmp:
        d = Path(tmp)
        z = d / "all.zip"
        t = time.perf_counter()
        generate(z, args.records)
        print(
            f"generated {args.records} records ({z.stat().st_size / 1e6:.1f} MB zip) in {time.perf_counter() - t:.1f}s"
        )
        base_t: list[float] = []
        imp_t: list[float] = []
        sizes: list[int] = []
        for run in range(args.runs):
            t = time.perf_counter()
            baseline(z)
            base_t.append(time.perf_counter() - t)
            dbp = d / f"db{run}.sqlite"
            db = VulnDB(dbp)
            t = time.perf_counter()
            s = db.import_paths([z], progress=False)
            imp_t.append(time.perf_counter() - t)
            assert s.added == args.records, s
            db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes.append(dbp.stat().st_size)
            if run < args.runs - 1:
                db.close()
                dbp.unlink()
        # incremental: the same zip (skipped by mtime/size), then a touched zip (all compared)
        t = time.perf_counter()
        s_skip = db.import_paths([z], progress=False)
        skip_t = time.perf_counter() - t
        later = time.time() + 10
        os.utime(z, (later, later))
        t = time.perf_counter()
        s_touch = db.import_paths([z], progress=False)
        touch_t = time.perf_counter() - t
        db.close()
        n = args.records
        bm, im = statistics.median(base_t), statistics.median(imp_t)
        print(f"baseline unzip+json.loads: median {bm:.2f}s ({n / bm:,.0f} rec/s) runs={[round(x, 2) for x in base_t]}")
        runs = [round(x, 2) for x in imp_t]
        print(f"import into sqlite:        median {im:.2f}s ({n / im:,.0f} rec/s) runs={runs}")
        print(f"ratio import/baseline:     {im / bm:.2f}x")
        print(
            f"database size:             {statistics.median(sizes) / 1e6:.1f} MB "
            f"({statistics.median(sizes) / n:.0f} B/record)"
        )
        print(f"re-import unchanged zip:   {skip_t * 1000:.1f} ms (sources_skipped={s_skip.sources_skipped})")
        print(
            f"re-import touched zip:     {touch_t:.2f}s (unchanged={s_touch.unchanged}, "
            f"written={s_touch.added + s_touch.updated})"
        )
        verdict = "PASS" if im <= 60 else "FAIL"
        print(f"target full-Debian-sized import <= 60 s: {verdict} ({im:.2f}s for {n} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
