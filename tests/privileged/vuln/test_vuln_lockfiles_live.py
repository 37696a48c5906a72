# SPDX-License-Identifier: Apache-2.0
"""Lockfiles in a real container (the local busybox image, ``--network none``): an application's
Cargo.lock, package-lock.json and requirements.txt written inside it are inventoried through
/proc/<pid>/root and matched; ``riskguard-agent scan container`` gates on ``--severity`` /
``--exit-code`` and writes SARIF; the committed image (``docker save``) gives the same CycloneDX
components."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.vuln.db import VulnDB
from tests.fixtures.vuln.builders import CRITICAL, osv, write_records
from tests.privileged.vuln.test_vuln_containers import _tar
from tests.unit.vuln.test_vuln_lockfiles import CARGO_LOCK, PACKAGE_LOCK

REQUIREMENTS = "flask==2.0.0\nrequests>=2\n"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "vulndb.sqlite"
    v = VulnDB(path)
    v.import_paths(
        [
            write_records(
                tmp_path / "osv",
                [
                    osv("RUSTSEC-2021-0003", "crates.io", "smallvec", introduced="1.6.0", fixed="1.6.1"),
                    osv("GHSA-lodash", "npm", "lodash", fixed="4.17.21", severity_vector=CRITICAL),
                    osv("GHSA-flask", "PyPI", "Flask", fixed="2.2.5", rating="HIGH"),
                    osv("GHSA-requests", "PyPI", "requests", fixed="2.31.0", rating="HIGH"),  # a range: no pin
                ],
            )
        ],
        progress=False,
    )
    v.close()
    return path


def _scan(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["scan", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_lockfiles_in_a_running_container_and_its_image(
    run_container: Callable[..., Any], docker_client: Any, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = run_container("sleep", "600")
    c.exec_run(["mkdir", "-p", "/app/svc", "/app/web"])
    files = {
        "app/svc/Cargo.lock": CARGO_LOCK,
        "app/web/package-lock.json": json.dumps(PACKAGE_LOCK),
        "app/requirements.txt": REQUIREMENTS,
    }
    assert c.put_archive("/", _tar(files))
    rc, out, _ = _scan(capsys, "container", c.name, "--db", str(db), "--format", "json")
    assert rc == 0
    assert {(r["ecosystem"], r["package"], r["vulnerability"], r["path"]) for r in json.loads(out)} == {
        ("crates.io", "smallvec", "RUSTSEC-2021-0003", "/app/svc/Cargo.lock"),
        ("npm", "lodash", "GHSA-lodash", "/app/web/package-lock.json"),
        ("PyPI", "flask", "GHSA-flask", "/app/requirements.txt"),
    }
    rc, out, _ = _scan(
        capsys, "container", c.name, "--db", str(db), "--format", "sarif", "--severity", "CRITICAL", "--exit-code", "3"
    )
    run = json.loads(out)["runs"][0]
    assert rc == 3 and [r["ruleId"] for r in run["results"]] == ["GHSA-lodash"]
    assert (
        run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "app/web/package-lock.json"
    )
    tag = f"rgtest-lock-{uuid.uuid4().hex[:8]}"
    image = c.commit(repository=tag, tag="1")
    try:
        rc, out, _ = _scan(capsys, "image", f"{tag}:1", "--db", str(db), "--format", "cyclonedx")
    finally:
        docker_client.images.remove(image.id, force=True)
    bom = json.loads(out)
    purls = {comp.get("purl") for comp in bom["components"]}
    assert rc == 0 and {"pkg:cargo/smallvec@1.6.0", "pkg:npm/lodash@4.17.20", "pkg:pypi/flask@2.0.0"} <= purls
    assert {v["id"] for v in bom["vulnerabilities"]} == {"RUSTSEC-2021-0003", "GHSA-lodash", "GHSA-flask"}
