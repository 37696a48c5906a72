# SPDX-License-Identifier: Apache-2.0
"""The alert record: one flat JSON object per finding (alerts file, webhook, log line).

Fields: ``type`` ("finding"), ``id``, ``ts``, ``time`` (RFC 3339 UTC), ``host``,
``container_id``, ``container_name``, ``image``, ``source``, ``detector_id``, ``severity``,
``summary``, ``evidence``, ``mitre``, ``verdict`` (the policy's action name or ""),
``enforce`` (bool or null), ``verdict_reason``, ``action`` (the action result or null).
Action results become ``type: "action"`` records with ``kind``, ``result``, ``ok``, ``detail``,
``dry_run``, ``container_id``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from agent.findings import ActionResult, Finding, Verdict


def rfc3339(ts: float) -> str:
    """``2026-11-27T01:02:03.456Z``."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def action_dict(action: ActionResult | Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    """An action result as a plain dict (``kind``, ``ok``, ``result``, ``detail``, ``dry_run`` …)."""
    if action is None:
        return None
    if isinstance(action, str):
        return {"kind": action, "ok": None, "result": "", "detail": "", "dry_run": False}
    if isinstance(action, ActionResult):
        d: dict[str, Any] = {
            "kind": str(action.action),
            "container_id": action.container_id,
            "ok": action.ok,
            "detail": action.detail,
            "dry_run": action.dry_run,
        }
    else:
        d = dict(action)
        d["kind"] = str(d.get("kind") or d.get("action") or "")
        d.pop("action", None)
    d.setdefault("ok", None)
    d.setdefault("dry_run", False)
    d.setdefault("detail", "")
    if not d.get("result"):
        ok = d.get("ok")
        d["result"] = "dry_run" if d.get("dry_run") else ("ok" if ok else "failed" if ok is False else "")
    return d


def finding_record(
    finding: Finding | Mapping[str, Any],
    verdict: Verdict | Mapping[str, Any] | str | None = None,
    action: ActionResult | Mapping[str, Any] | str | None = None,
    host: str = "",
) -> dict[str, Any]:
    """The alert record of a finding, with the verdict and action taken when known."""
    f = finding.to_dict() if isinstance(finding, Finding) else dict(finding)
    ts = float(f.get("ts") or 0.0)
    rec: dict[str, Any] = {
        "type": "finding",
        "id": str(f.get("id", "")),
        "ts": ts,
        "time": rfc3339(ts),
        "host": host,
        "container_id": str(f.get("container_id", "")),
        "container_name": str(f.get("container_name", "")),
        "image": str(f.get("image", "")),
        "source": str(f.get("source", "")),
        "detector_id": str(f.get("detector_id", "")),
        "severity": str(f.get("severity", "")),
        "summary": str(f.get("summary", "")),
        "evidence": dict(f.get("evidence") or {}),
        "mitre": str(f.get("mitre", "")),
        "verdict": "",
        "enforce": None,
        "verdict_reason": "",
        "action": action_dict(action),
    }
    if isinstance(verdict, Verdict):
        rec["verdict"] = str(verdict.action)
        rec["enforce"] = verdict.enforce
        rec["verdict_reason"] = verdict.reason
    elif isinstance(verdict, Mapping):
        rec["verdict"] = str(verdict.get("action", ""))
        rec["enforce"] = verdict.get("enforce")
        rec["verdict_reason"] = str(verdict.get("reason", ""))
    elif isinstance(verdict, str):
        rec["verdict"] = verdict
    elif f.get("verdict"):  # a stored finding row carries its verdict
        rec["verdict"] = str(f["verdict"])
    return rec


def action_record(result: ActionResult | Mapping[str, Any], host: str = "", ts: float | None = None) -> dict[str, Any]:
    """The record of one action result (``type: "action"``)."""
    a = action_dict(result) or {}
    when = float(a.pop("ts", None) or ts or time.time())
    return {"type": "action", "ts": when, "time": rfc3339(when), "host": host, **a}
