# SPDX-License-Identifier: Apache-2.0
"""Baselines across hosts: signed export/import, and ``riskguardctl baseline`` over a real
control socket (list, show, allow, deny, forget, export, import)."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from behavior_synth import IMAGE, container, normal_window

from agent.behavior import baseline_ops, ctl
from agent.behavior.component import BehaviorComponent
from agent.behavior.engine import BehaviorEngine
from agent.behavior.transfer import KEY_FILE, TransferError, export_baseline, host_key, import_baseline, sign
from agent.config import AgentConfig
from agent.context import AgentContext
from agent.control import ControlError, ControlServer
from agent.settings.behavior import BehaviorSettings
from agent.store import Store

SETTINGS = BehaviorSettings(
    window_seconds=2.0, learning_seconds=60.0, min_windows=30, refit_seconds=0, fit_in_subprocess=False
)


def learn(engine: BehaviorEngine, seed: int = 1) -> None:
    rng = random.Random(seed)
    c = container(1)
    for i in range(60):
        w = normal_window(rng, 1000 + 2 * i, c)
        engine.process([w], now=w.end)
        if i == 3:
            engine.allowances.observe(c, "exec", "python3>sh", w.end)
    assert engine.db.get(IMAGE).state == "scoring"  # type: ignore[union-attr]


def test_export_import_between_hosts(tmp_path: Path) -> None:
    a = BehaviorEngine(SETTINGS, Store(tmp_path / "a" / "agent.db"))
    learn(a)
    a.allowances.set(IMAGE, "exec", "httpd>sh", "deny")
    key = host_key(tmp_path / "a")
    assert stat.S_IMODE((tmp_path / "a" / KEY_FILE).stat().st_mode) == 0o600 and len(key) == 32
    assert host_key(tmp_path / "a") == key  # created once
    doc = json.loads(json.dumps(export_baseline(a.db, a.allowances, IMAGE, key)))
    assert doc["format"] == "riskguard-baseline" and doc["signature"]["alg"] == "HMAC-SHA256"
    assert {m["kind"] for m in doc["models"]} >= {"deviation", "chain"}

    # Host B shares the fleet key and has never seen the image.
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / KEY_FILE, tmp_path / "b" / KEY_FILE)
    b = BehaviorEngine(SETTINGS, Store(tmp_path / "b" / "agent.db"))
    out = import_baseline(b.db, b.allowances, doc, host_key(tmp_path / "b"))
    assert out["baseline"] == IMAGE and out["frozen"] and out["allowances"] == 2
    row = b.db.get(IMAGE)
    assert row is not None and row.state == "scoring" and row.frozen
    # The imported model scores a fresh container exactly as the exporting host's does.
    w = normal_window(random.Random(9), 5000, container(7))
    (sa,) = a.process([w], now=w.end)
    (sb,) = b.process([w], now=w.end)
    assert sa.result is not None and sb.result is not None and not sb.learning
    assert sb.result.score == pytest.approx(sa.result.score)
    entries = {(e["pattern"], e["verdict"], e["origin"]) for e in b.allowances.entries(IMAGE)}
    assert entries == {("python3>sh", "allow", "learned"), ("httpd>sh", "deny", "import")}


def test_import_refuses_tampered_or_foreign_documents(tmp_path: Path) -> None:
    a = BehaviorEngine(SETTINGS, Store(tmp_path / "a" / "agent.db"))
    learn(a)
    key = host_key(tmp_path / "a")
    doc = export_baseline(a.db, a.allowances, IMAGE, key)
    b = BehaviorEngine(SETTINGS, Store(tmp_path / "b" / "agent.db"))
    tampered = {**doc, "allowances": [*doc["allowances"], {"kind": "exec", "pattern": "nc>sh", "verdict": "allow"}]}
    with pytest.raises(TransferError, match="bad signature"):
        import_baseline(b.db, b.allowances, tampered, key)
    with pytest.raises(TransferError, match="bad signature"):
        import_baseline(b.db, b.allowances, doc, host_key(tmp_path / "b"))  # another fleet's key
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    with pytest.raises(TransferError, match="not signed"):
        import_baseline(b.db, b.allowances, unsigned, key)
    old = sign({**unsigned, "feature_version": -1}, key)
    with pytest.raises(TransferError, match="feature version"):
        import_baseline(b.db, b.allowances, old, key)
    with pytest.raises(TransferError, match="not a riskguard-baseline"):
        import_baseline(b.db, b.allowances, {"hello": 1}, key)
    assert b.db.get(IMAGE) is None  # nothing half-imported


def test_only_fitted_baselines_export(tmp_path: Path) -> None:
    e = BehaviorEngine(SETTINGS, Store(tmp_path / "agent.db"))
    w = normal_window(random.Random(1), 1000, container(1))
    e.process([w], now=w.end)
    with pytest.raises(TransferError, match="still learning"):
        export_baseline(e.db, e.allowances, IMAGE, host_key(tmp_path))
    with pytest.raises(TransferError, match="no baseline"):
        export_baseline(e.db, e.allowances, "nope:1", host_key(tmp_path))


def run_ctl(sock: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    p = argparse.ArgumentParser()
    p.add_argument("--socket", type=Path, default=sock)
    ctl.register(p.add_subparsers())
    capsys.readouterr()
    args = p.parse_args(argv)
    rc = args.func(args)
    return rc, capsys.readouterr().out


def test_riskguardctl_baseline(
    make_ctx: Callable[..., AgentContext], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = make_ctx(AgentConfig(behavior=SETTINGS))
    comp = BehaviorComponent(ctx)
    comp.start(ctx)
    server = ControlServer(tmp_path / "ctl.sock", ctx.control_methods)
    server.start()
    sock = tmp_path / "ctl.sock"
    try:
        with comp._lock:
            learn(comp.engine)
        rc, out = run_ctl(sock, ["baseline", "list"], capsys)
        assert rc == 0 and IMAGE in out and "scoring" in out and "ALLOW" in out
        assert run_ctl(sock, ["baseline", "allow", IMAGE, "exec", "crond>sh"], capsys)[0] == 0
        assert run_ctl(sock, ["baseline", "deny", IMAGE, "exe", "/usr/bin/nc"], capsys)[0] == 0
        rc, out = run_ctl(sock, ["baseline", "show", IMAGE], capsys)
        assert rc == 0 and "python3>sh" in out and "learned" in out and "crond>sh" in out and "operator" in out
        assert "allowances fixed" in out
        rc, out = run_ctl(sock, ["baseline", "show", IMAGE, "--json"], capsys)
        shown = json.loads(out[out.index("{") :])
        assert {(e["kind"], e["pattern"], e["verdict"]) for e in shown["allowances"]} == {
            ("exec", "python3>sh", "allow"),
            ("exec", "crond>sh", "allow"),
            ("exe", "/usr/bin/nc", "deny"),
        }
        assert run_ctl(sock, ["baseline", "forget", IMAGE, "exec", "crond>sh"], capsys)[0] == 0
        with pytest.raises(ControlError, match="no exec allowance"):
            run_ctl(sock, ["baseline", "forget", IMAGE, "exec", "crond>sh"], capsys)
        with pytest.raises(ControlError, match="PARENT>CHILD"):
            run_ctl(sock, ["baseline", "allow", IMAGE, "exec", "sh"], capsys)
        assert run_ctl(sock, ["baseline", "allow", IMAGE], capsys)[0] == 2  # KIND PATTERN missing
        rc, out = run_ctl(sock, ["baseline", "export", IMAGE], capsys)
        out = out.strip().splitlines()[-1]  # the agent's own log lines share stdout in this test
        doc = json.loads(out)
        assert rc == 0 and doc["baseline"] == IMAGE and doc["signature"]["value"]
        # Relearn, then restore the exported baseline with import.
        assert run_ctl(sock, ["baseline", "relearn", IMAGE], capsys)[0] == 0
        assert comp.engine.db.get(IMAGE).state == "learning"  # type: ignore[union-attr]
        f = tmp_path / "web.baseline.json"
        f.write_text(out)
        rc, out = run_ctl(sock, ["baseline", "import", str(f)], capsys)
        assert rc == 0 and "version=" in out and "frozen=True" in out
        row = comp.engine.db.get(IMAGE)
        assert row is not None and row.state == "scoring" and row.frozen
        assert run_ctl(sock, ["baseline", "import", str(tmp_path / "missing.json")], capsys)[0] == 2
    finally:
        server.stop()
        comp.stop()


def test_a_new_node_loads_baselines_from_a_mounted_directory(
    make_ctx: Callable[..., AgentContext], tmp_path: Path
) -> None:
    # The fleet: one node learned the image and exported it; the documents and the shared key
    # reach other nodes as a ConfigMap directory and a Secret file.
    a = BehaviorEngine(SETTINGS, Store(tmp_path / "a" / "agent.db"))
    learn(a)
    fleet_key = tmp_path / "secret" / "baseline.key"
    fleet_key.parent.mkdir()
    fleet_key.write_bytes(b"k" * 32)
    shared = tmp_path / "configmap"
    shared.mkdir()
    doc = export_baseline(a.db, a.allowances, IMAGE, fleet_key.read_bytes())
    (shared / "web.json").write_text(json.dumps(doc))
    (shared / "broken.json").write_text("{not json")
    (shared / "README").write_text("not a document")
    settings = SETTINGS.model_copy(update={"baseline_import_dir": str(shared), "baseline_key_file": str(fleet_key)})
    ctx = make_ctx(AgentConfig(behavior=settings))
    comp = BehaviorComponent(ctx)
    comp.start(ctx)
    comp.stop()
    row = comp.engine.db.get(IMAGE)
    assert row is not None and row.state == "scoring" and row.frozen and row.version == 1
    # A restart of that node (same state database) does not import the same document again.
    ctx2 = make_ctx(AgentConfig(behavior=settings))
    ctx2.store.close()
    ctx2.store = ctx.store
    again = BehaviorComponent(ctx2)
    again.start(ctx2)
    again.stop()
    assert again.engine.db.get(IMAGE).version == 1  # type: ignore[union-attr]
    counts = baseline_ops.import_dir(again.engine, shared, ctx2.paths.state)
    assert counts == {"imported": 0, "already": 1, "failed": 1}  # broken.json: counted, skipped
