# SPDX-License-Identifier: Apache-2.0
"""Tailing one container log (Docker ``json-file`` or ``local``, a CRI file); which logs to tail
is ``agent.sources.logset``.

Each log is read from a committed offset kept in the store (``kv`` namespace ``logs.offsets``),
keyed by the container and the file's (device, inode), so a restarted agent neither loses nor
repeats a line. The offset only moves past records that complete a logical line (Docker and CRI
split long lines into partial records). Rotation (a new inode at the path) is followed by
draining the old file through its still-open descriptor and reading any newer rotated siblings
before the new file; truncation (same inode, size below the offset) restarts at 0. Oversized
records, corrupt frames and invalid JSON are counted and skipped; nothing here raises on content.

Formats:
- json-file: one JSON object per line, ``{"log": "...\\n", "stream": "stdout", "time": RFC3339}``;
  a ``log`` value without a trailing newline is a partial line (Docker splits at 16 KiB).
- local: length-prefixed protobuf frames (``agent.sources.logformats``).
- cri: ``<RFC3339Nano> <stdout|stderr> <P|F> <content>`` (P: partial).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import structlog

from agent.events import ContainerRef
from agent.sources.logformats import FRAME, MAX_FRAME, decode_local_entry, parse_rfc3339, rotated_siblings
from agent.store import Store

log = structlog.get_logger("agent.sources.logs")

OFFSETS_NS = "logs.offsets"


@dataclass(frozen=True, slots=True)
class LogTarget:
    """One container log to tail."""

    key: str  # stable id for offsets: the container id (Docker) or pod dir/container (CRI)
    container: ContainerRef
    path: Path
    fmt: str  # json-file | local | cri


@dataclass(frozen=True, slots=True)
class RawLine:
    """One logical log line, before structuring."""

    target: LogTarget
    ts: float
    stream: str
    data: bytes
    truncated: bool = False


@dataclass
class TailStats:
    lines: int = 0
    bytes: int = 0
    truncated: int = 0
    oversized_records: int = 0
    malformed: int = 0
    rotations: int = 0
    truncations: int = 0
    missing: int = 0
    rate_dropped: int = 0
    rotated_unread: int = 0
    malformed_by_reason: Counter[str] = field(default_factory=Counter)

    def bad(self, reason: str) -> None:
        """Count one record skipped as malformed, by reason."""
        self.malformed += 1
        self.malformed_by_reason[reason] += 1

    def snapshot(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


class LogTailer:
    """Tails one container log across rotations, committing offsets to the store."""

    def __init__(
        self,
        target: LogTarget,
        store: Store | None,
        max_line: int = 16384,
        max_record: int = 1 << 20,
        chunk: int = 1 << 20,
        start_at: str = "beginning",
        rate_per_second: float = 0.0,
        burst: float = 0.0,
    ) -> None:
        self.target = target
        self.store = store
        self.max_line = max_line
        self.max_record = max_record
        self.chunk = chunk
        self.start_at = start_at
        self.rate = rate_per_second
        self.burst = burst or rate_per_second * 5
        self._tokens = self.burst
        self._refill = time.monotonic()
        self.stats = TailStats()
        self._fh: IO[bytes] | None = None
        self._ident: tuple[int, int] = (0, 0)
        self._offset = 0
        self._skipping_record = False  # inside an oversized json-file / cri record
        self._skipping_line = False  # logical line already emitted truncated; drop its partials
        self._pending: bytearray = bytearray()
        self._pending_ts = 0.0
        self._pending_stream = "stdout"
        self._pending_start = 0  # file offset of the first record of the pending line
        self._rec_pos = 0
        self._tail = b""  # the bytes just before the offset, to notice in-place rewrites
        self._loaded = False
        self._last_commit: tuple[Any, ...] = ()

    # --- offsets -------------------------------------------------------------------------
    @property
    def _okey(self) -> str:
        return f"{self.target.key}:{self.target.path.name}"

    def _load(self) -> dict[str, Any] | None:
        if self.store is None:
            return None
        raw = self.store.kv_get_json(OFFSETS_NS, self._okey)
        return raw if isinstance(raw, dict) else None

    def _commit(self) -> None:
        if self.store is None:
            return
        # A half-assembled line is not committed: a restart re-reads its partial records.
        offset = self._pending_start if self._pending else self._offset
        state = (self._ident, offset, self._skipping_record, self._skipping_line)
        if state == self._last_commit:
            return
        self.store.kv_put_json(
            OFFSETS_NS,
            self._okey,
            {
                "dev": self._ident[0],
                "ino": self._ident[1],
                "offset": offset,
                "skipping_record": self._skipping_record,
                "skipping_line": self._skipping_line,
                "path": str(self.target.path),
            },
        )
        self._last_commit = state

    def committed(self) -> dict[str, Any] | None:
        """The stored offset (tests, status)."""
        return self._load()

    # --- files ---------------------------------------------------------------------------
    def _open(self, path: Path, offset: int) -> bool:
        try:
            fh = path.open("rb")  # kept open across polls on purpose
        except OSError:
            return False
        st = os.fstat(fh.fileno())
        if self._fh is not None:
            self._fh.close()
        self._fh = fh
        self._ident = (st.st_dev, st.st_ino)
        self._offset = offset if offset <= st.st_size else 0
        self._tail = b""
        self._pending.clear()
        return True

    def _first_open(self, out: list[RawLine], budget: int) -> None:
        self._loaded = True
        saved = self._load()
        path = self.target.path
        if saved:
            ident = (int(saved.get("dev", 0)), int(saved.get("ino", 0)))
            self._skipping_record = bool(saved.get("skipping_record"))
            self._skipping_line = bool(saved.get("skipping_line"))
            chain = [*rotated_siblings(path), path]
            for i, p in enumerate(chain):
                try:
                    st = p.stat()
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == ident:
                    if p != path:
                        # Rotated while we were down: finish it, then every newer sibling.
                        if self._open(p, int(saved.get("offset", 0))):
                            self._read(out, budget)
                        for newer in chain[i + 1 : -1]:
                            if self._open(newer, 0):
                                self._read(out, budget)
                        self._open(path, 0)
                        self.stats.rotations += 1
                    else:
                        self._open(path, int(saved.get("offset", 0)))
                    return
            # The saved file is gone (rotated out and deleted, or compressed).
            self.stats.rotated_unread += 1
            self._skipping_record = self._skipping_line = False
            self._open(path, 0)
            return
        if self._open(path, 0) and self.start_at == "end" and self._fh is not None:
            self._offset = os.fstat(self._fh.fileno()).st_size
            # Align to a record boundary is unnecessary at EOF; a partial trailing record is
            # re-read whole when its writer finishes it.

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def poll(self, max_lines: int = 10_000) -> list[RawLine]:
        """Every complete line written since the last poll (at most ``max_lines`` read)."""
        out: list[RawLine] = []
        if not self._loaded:
            self._first_open(out, max_lines)
        if self._fh is None and not self._open(self.target.path, 0):
            self.stats.missing += 1
            return out
        self._check_truncation()
        self._read(out, max_lines)
        if len(out) < max_lines:
            self._check_rotation(out, max_lines)
        self._commit()
        return self._rate_limit(out)

    def _check_rotation(self, out: list[RawLine], budget: int) -> None:
        path = self.target.path
        try:
            st = path.stat()
        except OSError:
            return  # deleted (maybe mid-rotation): keep draining the open descriptor
        if (st.st_dev, st.st_ino) != self._ident:
            old = self._ident
            self._read(out, budget)  # drain what the writer added before the switch
            self._flush_pending(out)
            chain = rotated_siblings(path)
            newer: list[Path] = []
            found = False
            for p in chain:
                try:
                    s2 = p.stat()
                except OSError:
                    continue
                if found:
                    newer.append(p)
                elif (s2.st_dev, s2.st_ino) == old:
                    found = True
            for p in newer:  # rotated more than once between polls
                if self._open(p, 0):
                    self._read(out, budget)
                    self._flush_pending(out)
            self.stats.rotations += 1
            self._skipping_record = self._skipping_line = False
            self._open(path, 0)
            self._read(out, budget)
        elif st.st_size < self._offset:
            self.stats.truncations += 1
            log.info("log_truncated", container_id=self.target.key, path=str(path))
            self._offset = 0
            self._pending.clear()
            self._skipping_record = self._skipping_line = False
            self._read(out, budget)

    def _check_truncation(self) -> None:
        """Detect a file cut or rewritten in place (same inode): smaller than our offset, or the
        bytes just before our offset changed (a truncate followed by new writes of equal size)."""
        fh = self._fh
        if fh is None or self._offset == 0:
            return
        size = os.fstat(fh.fileno()).st_size
        rewritten = False
        if size >= self._offset and self._tail:
            fh.seek(self._offset - len(self._tail))
            rewritten = fh.read(len(self._tail)) != self._tail
        if size < self._offset or rewritten:
            self.stats.truncations += 1
            log.info("log_truncated", container_id=self.target.key, path=str(self.target.path))
            self._offset = 0
            self._tail = b""
            self._pending.clear()
            self._skipping_record = self._skipping_line = False

    def _rate_limit(self, lines: list[RawLine]) -> list[RawLine]:
        if self.rate <= 0 or not lines:
            return lines
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._refill) * self.rate)
        self._refill = now
        allowed = int(self._tokens)
        if allowed >= len(lines):
            self._tokens -= len(lines)
            return lines
        self._tokens -= allowed
        self.stats.rate_dropped += len(lines) - allowed
        return lines[:allowed]

    # --- reading -------------------------------------------------------------------------
    def _read(self, out: list[RawLine], budget: int) -> None:
        fh = self._fh
        if fh is None:
            return
        while len(out) < budget:
            fh.seek(self._offset)
            buf = fh.read(self.chunk)
            if not buf:
                return
            consumed = self._parse(buf, out, budget)
            if consumed == 0:
                return  # an incomplete trailing record: wait for the writer
            self._offset += consumed
            self._tail = buf[max(0, consumed - 256) : consumed]

    def _parse(self, buf: bytes, out: list[RawLine], budget: int) -> int:
        if self.target.fmt == "local":
            return self._parse_local(buf, out, budget)
        pos = 0
        n = len(buf)
        while pos < n and len(out) < budget:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if n - pos >= self.max_record:
                    # A record longer than any writer produces: skip it up to its newline.
                    self.stats.oversized_records += 1 if not self._skipping_record else 0
                    self._skipping_record = True
                    return n
                return pos
            record = buf[pos:nl]
            pos = nl + 1
            if self._skipping_record:
                self._skipping_record = False
                continue
            if len(record) > self.max_record:
                self.stats.oversized_records += 1
                continue
            self._rec_pos = self._offset + pos - len(record) - 1
            self._record(record, out)
        return pos

    def _parse_local(self, buf: bytes, out: list[RawLine], budget: int) -> int:
        pos = 0
        n = len(buf)
        while pos + 4 <= n and len(out) < budget:
            (size,) = FRAME.unpack_from(buf, pos)
            end = pos + 4 + size + 4
            if size <= MAX_FRAME and end > n:
                if size + 8 > self.chunk:
                    self.chunk = size + 8  # one frame bigger than our read size
                return pos
            if size > MAX_FRAME or FRAME.unpack_from(buf, end - 4)[0] != size:
                # The size suffix moby writes after each frame disagrees (or the size is absurd):
                # a length-prefixed stream cannot be resynchronised, so skip to the end of file.
                if pos:
                    return pos  # hand over the good frames first; the next read lands here
                self.stats.bad("local_frame")
                log.warning(
                    "log_frame_corrupt",
                    container_id=self.target.key,
                    path=str(self.target.path),
                    offset=self._offset,
                )
                assert self._fh is not None
                return max(os.fstat(self._fh.fileno()).st_size - self._offset, 1)
            msg = buf[pos + 4 : pos + 4 + size]
            self._rec_pos = self._offset + pos
            pos = end
            try:
                source, tnano, line, partial, last = decode_local_entry(msg)
            except ValueError:
                self.stats.bad("local_entry")
                continue
            self._piece(line, not partial or last, tnano / 1e9, source or "stdout", out)
        return pos

    def _record(self, record: bytes, out: list[RawLine]) -> None:
        if self.target.fmt == "json-file":
            try:
                obj = json.loads(record)
                text = obj["log"]
                if not isinstance(text, str):
                    raise TypeError("log is not a string")
            except (ValueError, KeyError, TypeError, RecursionError):
                self.stats.bad("json_record")
                return
            stream = obj.get("stream") if isinstance(obj.get("stream"), str) else "stdout"
            complete = text.endswith("\n")
            data = text.encode("utf-8", "surrogatepass")
            if complete:
                data = data[:-1]
            self._piece(data, complete, parse_rfc3339(str(obj.get("time", ""))), str(stream), out)
            return
        # cri
        parts = record.split(b" ", 3)
        if len(parts) < 3 or parts[2] not in (b"P", b"F"):
            self.stats.bad("cri_record")
            return
        data = parts[3] if len(parts) == 4 else b""
        self._piece(
            data,
            parts[2] == b"F",
            parse_rfc3339(parts[0].decode("ascii", "replace")),
            parts[1].decode("ascii", "replace"),
            out,
        )

    def _piece(self, data: bytes, complete: bool, ts: float, stream: str, out: list[RawLine]) -> None:
        """Join partial records into one logical line, capped at ``max_line`` bytes."""
        if self._skipping_line:
            if complete:
                self._skipping_line = False
            return
        if not self._pending:
            self._pending_ts, self._pending_stream = ts, stream
            self._pending_start = self._rec_pos
        room = self.max_line - len(self._pending)
        self._pending += data[: max(room, 0)]
        if len(data) > room:
            # Emit the capped line now and drop the rest of it as it arrives.
            self.stats.truncated += 1
            self._emit(out, truncated=True)
            if not complete:
                self._skipping_line = True
            return
        if complete:
            self._emit(out)

    def _emit(self, out: list[RawLine], truncated: bool = False) -> None:
        data = bytes(self._pending)
        self._pending.clear()
        self.stats.lines += 1
        self.stats.bytes += len(data)
        out.append(RawLine(self.target, self._pending_ts or time.time(), self._pending_stream, data, truncated))

    def _flush_pending(self, out: list[RawLine]) -> None:
        if self._pending:
            self._emit(out)
