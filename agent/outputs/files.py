# SPDX-License-Identifier: Apache-2.0
"""An append-only JSON-lines file rotated by size: ``f`` → ``f.1`` → … → ``f.<keep>`` (dropped).

Files are created 0600 (alerts carry evidence: command lines, paths, addresses). A write error
(disk full, directory gone) is counted and logged once per error kind, never raised into the
caller, so a broken disk never stops detection.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("agent.outputs")


class RotatingJsonl:
    """Thread-safe JSON-lines writer with size-based rotation keeping ``keep`` old files."""

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self.written = 0
        self.rotations = 0
        self.errors = 0
        self._fd: int | None = None
        self._size = 0
        self._lock = threading.Lock()
        self._last_error = ""

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # O_NOFOLLOW: a symlink planted at the alerts path is refused, not followed.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            self._fd = fd
            self._size = os.fstat(fd).st_size
        return self._fd

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for i in range(self.keep - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self.rotations += 1

    def write(self, obj: Any) -> bool:
        """Append one object as a line; return False (and count it) when it could not be written."""
        line = (json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                fd = self._open()
                if self._size > 0 and self._size + len(line) > self.max_bytes:
                    self._rotate()
                    fd = self._open()
                os.write(fd, line)
                self._size += len(line)
                self.written += 1
                return True
            except OSError as exc:
                self.errors += 1
                if self._fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(self._fd)
                    self._fd = None
                kind = f"{type(exc).__name__}:{exc.errno}"
                if kind != self._last_error:
                    self._last_error = kind
                    log.error("output_write_failed", path=str(self.path), error=str(exc))
                return False

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def status(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "written": self.written,
            "rotations": self.rotations,
            "errors": self.errors,
        }
