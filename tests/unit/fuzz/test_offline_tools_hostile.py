# SPDX-License-Identifier: Apache-2.0
"""The offline tools on hostile input, through the real ``riskguard-agent`` entry point: a clear
error line and exit 2, or the bad record counted and skipped; never a traceback."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from agent.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    d = tmp_path / "traces"
    d.mkdir()
    (d / "t1").write_text("59 1 2 3 60\n")
    return d


@pytest.mark.parametrize(
    "model",
    [
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,  # nested beyond the interpreter's recursion limit
        b'{"format": "riskguard-syscalls-ngram/1", "n": "x"}',
        b"PK\x03\x04" + b"\x00" * 200,  # a corrupt .npz
        b"\xff\xfe not json",
    ],
)
def test_syscalls_score_hostile_model_is_an_error_line(
    tmp_path: Path, traces: Path, model: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    m = tmp_path / "model.json"
    m.write_bytes(model)
    rc, out, err = _run(["syscalls", "score", "--traces", str(traces), "--model", str(m)], capsys)
    assert rc == 2 and out == ""
    assert err.startswith("syscalls score: unreadable syscall")


def test_syscalls_score_pickled_npz_is_refused(
    tmp_path: Path, traces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, meta=np.array([{"arch": "x86_64"}], dtype=object))  # object arrays need pickle
    m = tmp_path / "model.npz"
    m.write_bytes(buf.getvalue())
    rc, _, err = _run(["syscalls", "score", "--traces", str(traces), "--model", str(m)], capsys)
    assert rc == 2 and "unreadable syscall" in err


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("agent:\n  log_level: " + "9" * 5000 + "\n", "agent.log_level"),
        ("vuln:\n  interval_seconds: !!float abc\n", "vuln.interval_seconds"),
    ],
)
def test_check_config_hostile_values_are_dotted_errors(
    tmp_path: Path, text: str, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "etc"
    d.mkdir(mode=0o700)
    cfg = d / "agent.yaml"
    cfg.write_text(text)
    cfg.chmod(0o600)
    rc, _, err = _run(["check-config", "--config", str(cfg)], capsys)
    assert rc == 2 and where in err, err


def test_vulndb_import_hostile_zip_counts_and_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    z = tmp_path / "all.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("deep.json", "[" * 200_000 + "]" * 200_000)
        zf.writestr("bad.json", b"\xff\xfe\x00")
        zf.writestr("ok.json", json.dumps({"id": "X-1", "modified": "2024-01-01T00:00:00Z", "affected": []}))
    rc, out, err = _run(["vulndb", "import", str(z), "--db", str(tmp_path / "db.sqlite"), "--quiet", "--json"], capsys)
    summary = json.loads(out)
    assert rc == 0 and (summary["added"], summary["malformed"]) == (1, 2)
    assert "deep.json: JSON nested deeper than" in err


def test_audit_decode_hostile_lines_through_the_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "audit.log"
    f.write_text(
        "type=SYSCALL msg=audit(1.1:" + "9" * 4300 + "): syscall=59\n"
        "type=SYSCALL msg=audit(1.1:2): arch=c000003e syscall=" + "9" * 40 + " success=yes\n"
        "type=SYSCALL msg=audit(1.1:3): arch=c000003e syscall=59 comm=" + "41" * 40_000 + "\n"
    )
    rc, out, err = _run(["audit", "decode", str(f)], capsys)
    assert rc == 0 and "malformed=2" in err and "events=1" in err
    assert json.loads(out)["syscall"] == "9" * 40
