# SPDX-License-Identifier: Apache-2.0
"""Fleet-wide baselines: export a fitted image baseline to a signed file, import it elsewhere.

The document (``FORMAT``, ``DOC_VERSION``) holds the baseline's state, the blobs of its newest
model version (every kind: deviation model, chain, sequence models …, base64) with their feature
version, and its allowances. It is signed with HMAC-SHA256 over its canonical JSON (sorted keys,
no spaces, ``signature`` left out) using the host key: ``baseline.key`` (32 random bytes, mode
0600) in the state directory, created on first use. Nodes that share baselines share that key
(e.g. from a Kubernetes Secret); an import whose signature does not verify is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import structlog

from agent.behavior.allowances import KINDS, VERDICTS, Allowances, check_pattern
from agent.behavior.baseline import BaselineStore
from agent.behavior.features import FEATURE_VERSION

log = structlog.get_logger("agent.behavior")

FORMAT = "riskguard-baseline"
DOC_VERSION = 1
KEY_FILE = "baseline.key"
MAX_DOC_BYTES = 64 << 20


class TransferError(ValueError):
    """A baseline document cannot be exported or imported (with the reason)."""


def host_key(state_dir: Path) -> bytes:
    """The host's signing key, created (0600, 32 random bytes) when absent."""
    path = state_dir / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:  # another process made it first
            return host_key(state_dir)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        log.info("baseline_key_created", path=str(path))
        return key
    if len(key) < 16:
        raise TransferError(f"{path}: a signing key needs at least 16 bytes")
    return key


def _canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(doc: dict[str, Any], key: bytes) -> dict[str, Any]:
    """``doc`` with its ``signature`` (HMAC-SHA256 of the canonical JSON)."""
    mac = hmac.new(key, _canonical(doc), hashlib.sha256).hexdigest()
    return {**doc, "signature": {"alg": "HMAC-SHA256", "key_id": key_id(key), "value": mac}}


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"riskguard-baseline-key:" + key).hexdigest()[:16]


def verify(doc: dict[str, Any], key: bytes) -> None:
    """Raise ``TransferError`` unless ``doc`` is signed with ``key``."""
    sig = doc.get("signature")
    if not isinstance(sig, dict) or sig.get("alg") != "HMAC-SHA256" or not isinstance(sig.get("value"), str):
        raise TransferError("the document is not signed (signature.alg HMAC-SHA256 expected)")
    want = hmac.new(key, _canonical(doc), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig["value"]):
        raise TransferError(
            f"bad signature: signed with key {sig.get('key_id', '?')}, this host's key is {key_id(key)} "
            "(or the document was changed)"
        )


def export_baseline(db: BaselineStore, allowances: Allowances, key: str, signing_key: bytes) -> dict[str, Any]:
    """The signed document of baseline ``key``; it must be fitted (state scoring)."""
    row = db.get(key)
    if row is None:
        raise TransferError(f"no baseline {key!r}")
    if row.state != "scoring" or row.version <= 0:
        raise TransferError(f"baseline {key!r} is still {row.state}: only a fitted baseline can be exported")
    models = [
        {
            "kind": str(r[0]),
            "algorithm": str(r[1]),
            "windows": int(r[2]),
            "meta": json.loads(r[3]),
            "blob": base64.b64encode(bytes(r[4])).decode(),
        }
        for r in db.store.query(
            "SELECT kind, algorithm, windows, meta, blob FROM behavior_models "
            "WHERE image = ? AND version = ? AND feature_version = ? ORDER BY kind",
            (key, row.version, FEATURE_VERSION),
        )
    ]
    if not models:
        raise TransferError(f"baseline {key!r} has no model of feature version {FEATURE_VERSION}")
    doc = {
        "format": FORMAT,
        "version": DOC_VERSION,
        "baseline": key,
        "feature_version": FEATURE_VERSION,
        "model_version": row.version,
        "exported_at": time.time(),
        "exported_by": socket.gethostname(),
        "models": models,
        "allowances": [{k: e[k] for k in ("kind", "pattern", "verdict", "origin")} for e in allowances.entries(key)],
    }
    return sign(doc, signing_key)


def read_document(path: Path) -> dict[str, Any]:
    """A baseline document from ``path`` (bounded size, JSON object)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_DOC_BYTES + 1)
    except OSError as exc:
        raise TransferError(f"{path}: {exc.strerror}") from None
    if len(raw) > MAX_DOC_BYTES:
        raise TransferError(f"{path}: larger than {MAX_DOC_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TransferError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise TransferError(f"{path}: not a baseline document")
    return doc


def import_baseline(
    db: BaselineStore, allowances: Allowances, doc: dict[str, Any], signing_key: bytes, now: float | None = None
) -> dict[str, Any]:
    """Verify ``doc`` and install it as a new model version of its baseline (scoring, frozen
    so local refits do not drift from the fleet's); its allowances become ``import`` entries."""
    now = time.time() if now is None else now
    if doc.get("format") != FORMAT:
        raise TransferError(f"not a {FORMAT} document")
    if doc.get("version") != DOC_VERSION:
        raise TransferError(
            f"document version {doc.get('version')!r} is not supported (this agent reads {DOC_VERSION})"
        )
    verify(doc, signing_key)
    key = doc.get("baseline")
    if not isinstance(key, str) or not key:
        raise TransferError("the document names no baseline")
    if doc.get("feature_version") != FEATURE_VERSION:
        raise TransferError(
            f"feature version {doc.get('feature_version')!r} differs from this agent's {FEATURE_VERSION}: refit instead"
        )
    blobs: dict[str, bytes] = {}
    algorithm, windows, meta = "", 0, {}
    for m in doc.get("models") or []:
        try:
            blobs[str(m["kind"])] = base64.b64decode(m["blob"], validate=True)
            if m["kind"] == "deviation":
                algorithm, windows, meta = str(m["algorithm"]), int(m["windows"]), dict(m["meta"])
        except (KeyError, TypeError, ValueError) as exc:
            raise TransferError(f"malformed model entry: {exc!r}") from None
    if "deviation" not in blobs:
        raise TransferError("the document holds no deviation model")
    entries = []
    for e in doc.get("allowances") or []:
        try:
            kind, verdict = str(e["kind"]), str(e["verdict"])
            pattern = check_pattern(kind, str(e["pattern"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TransferError(f"malformed allowance: {exc}") from None
        if kind not in KINDS or verdict not in VERDICTS:
            raise TransferError(f"malformed allowance: {kind}/{verdict}")
        entries.append((kind, pattern, verdict, "learned" if e.get("origin") == "learned" else "import"))
    db.create(key, now)
    version = db.save_models(key, blobs, algorithm, windows, meta, now)
    db.set_frozen(key, True)
    allowances.load(key, entries)
    log.info(
        "baseline_imported",
        baseline=key,
        version=version,
        allowances=len(entries),
        signed_by=doc["signature"].get("key_id"),
    )
    return {"baseline": key, "version": version, "models": sorted(blobs), "allowances": len(entries), "frozen": True}
