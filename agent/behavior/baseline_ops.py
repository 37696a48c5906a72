# SPDX-License-Identifier: Apache-2.0
"""Operator actions on one baseline beyond its model: show, allow, deny, forget (an allowance),
export and import (signed documents, ``agent.behavior.transfer``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from agent.behavior.transfer import TransferError, export_baseline, host_key, import_baseline, read_document

if TYPE_CHECKING:
    from agent.behavior.engine import BehaviorEngine

log = structlog.get_logger("agent.behavior")

ACTIONS = ("show", "allow", "deny", "forget", "export", "import")


IMPORTED_KV = "behavior.imported"  # signature -> baseline key: documents already imported


def signing_key(engine: BehaviorEngine, state_dir: Path) -> bytes:
    """The configured key file's bytes, else the host key in ``state_dir``."""
    path = engine.settings.baseline_key_file
    if not path:
        return host_key(state_dir)
    try:
        key = Path(path).read_bytes()
    except OSError as exc:
        raise TransferError(f"behavior.baseline_key_file {path}: {exc.strerror}") from None
    if len(key) < 16:
        raise TransferError(f"behavior.baseline_key_file {path}: a signing key needs at least 16 bytes")
    return key


def import_dir(engine: BehaviorEngine, directory: Path, state_dir: Path) -> dict[str, int]:
    """Import every ``*.json`` baseline document of ``directory`` not imported before; a bad
    document is logged and counted, never fatal."""
    counts = {"imported": 0, "already": 0, "failed": 0}
    try:
        files = sorted(p for p in directory.iterdir() if p.suffix == ".json" and p.is_file())
    except OSError as exc:
        log.warning("baseline_import_dir_unreadable", path=str(directory), error=exc.strerror)
        return counts
    for f in files:
        try:
            doc = read_document(f)
            sig = str((doc.get("signature") or {}).get("value", ""))
            if sig and engine.db.store.kv_get(IMPORTED_KV, sig) is not None:
                counts["already"] += 1
                continue
            result = import_baseline(engine.db, engine.allowances, doc, signing_key(engine, state_dir))
        except TransferError as exc:
            counts["failed"] += 1
            log.warning("baseline_import_failed", path=str(f), error=str(exc))
            continue
        engine.db.store.kv_put(IMPORTED_KV, sig, result["baseline"].encode())
        engine.reload(result["baseline"])
        counts["imported"] += 1
    log.info("baseline_import_dir_read", path=str(directory), **counts)
    return counts


def run(engine: BehaviorEngine, action: str, params: Mapping[str, Any], state_dir: Path) -> Any:
    """One ``baseline`` control action of ``ACTIONS``; raises ``ValueError`` with the reason."""
    if action == "import":
        path = params.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError("'path' (a baseline document, see 'riskguardctl baseline export') is required")
        doc = read_document(Path(path))
        result = import_baseline(engine.db, engine.allowances, doc, signing_key(engine, state_dir))
        engine.db.store.kv_put(IMPORTED_KV, str(doc["signature"]["value"]), result["baseline"].encode())
        engine.reload(result["baseline"])
        return result
    image = params.get("image")
    if not isinstance(image, str) or not image:
        raise ValueError("'image' (the baseline key, see action=list) is required")
    if action == "show":
        return engine.allowances.show(image)
    if action == "export":
        return export_baseline(engine.db, engine.allowances, image, signing_key(engine, state_dir))
    kind = str(params.get("kind", "exec"))
    pattern = str(params.get("pattern", ""))
    if action in ("allow", "deny"):
        if engine.db.get(image) is None:
            raise ValueError(f"no baseline {image!r} (see 'riskguardctl baseline list')")
        return engine.allowances.set(image, kind, pattern, action)
    if action == "forget":
        if not engine.allowances.remove(image, kind, pattern):
            raise ValueError(f"baseline {image!r} has no {kind} allowance {pattern!r}")
        log.info("allowance_removed", baseline=image, kind=kind, pattern=pattern)
        return {"baseline": image, "kind": kind, "pattern": pattern, "removed": True}
    raise ValueError(f"unknown action {action!r}")


def describe(engine: BehaviorEngine) -> list[dict[str, Any]]:
    """Every baseline as ``riskguardctl baseline list`` shows it: state, training windows, the
    loaded models' thresholds and modes, stored model versions and allowance counts."""
    out = []
    allowed = engine.allowances.counts()
    loaded = dict(engine.baselines)  # a snapshot: the scorer thread may add baselines meanwhile
    for row in engine.db.all():
        b = loaded.get(row.image)
        d = row.to_dict()
        d["training_windows"] = engine.db.training_count(row.image)
        if b is not None and b.model is not None:
            d.update(threshold=b.model.threshold, modes=b.model.modes, algorithm=b.model.algorithm)
            if b.seq is not None:
                d["sequence"] = {"threshold": b.seq.threshold, "target_fpr": b.seq.target_fpr, **b.seq.meta}
        d["models"] = engine.db.model_versions(row.image)
        d["allowances"] = allowed.get(row.image, {})
        out.append(d)
    return out
