# SPDX-License-Identifier: Apache-2.0
"""Operator actions on one baseline beyond its model: show, allow, deny, forget (an allowance),
export and import (signed documents, ``agent.behavior.transfer``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from agent.behavior.transfer import export_baseline, host_key, import_baseline, read_document

if TYPE_CHECKING:
    from agent.behavior.engine import BehaviorEngine

log = structlog.get_logger("agent.behavior")

ACTIONS = ("show", "allow", "deny", "forget", "export", "import")


def run(engine: BehaviorEngine, action: str, params: Mapping[str, Any], state_dir: Path) -> Any:
    """One ``baseline`` control action of ``ACTIONS``; raises ``ValueError`` with the reason."""
    if action == "import":
        path = params.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError("'path' (a baseline document, see 'riskguardctl baseline export') is required")
        result = import_baseline(engine.db, engine.allowances, read_document(Path(path)), host_key(state_dir))
        engine.reload(result["baseline"])
        return result
    image = params.get("image")
    if not isinstance(image, str) or not image:
        raise ValueError("'image' (the baseline key, see action=list) is required")
    if action == "show":
        return engine.allowances.show(image)
    if action == "export":
        return export_baseline(engine.db, engine.allowances, image, host_key(state_dir))
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
