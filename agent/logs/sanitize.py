# SPDX-License-Identifier: Apache-2.0
"""A container's log line as the agent may hold it: decoded, ANSI escapes and control characters
stripped, length capped (counted in ``SanitizeStats``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.textsafe import no_surrogates

# CSI / OSC / other ESC sequences (ECMA-48), then any remaining C0/C1 control except TAB.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


@dataclass
class SanitizeStats:
    invalid_utf8: int = 0
    ansi_stripped: int = 0
    control_stripped: int = 0
    truncated: int = 0
    json_too_deep: int = 0  # a JSON line past textsafe.MAX_JSON_DEPTH: structured as plain text

    def snapshot(self) -> dict[str, int]:
        return {
            "invalid_utf8": self.invalid_utf8,
            "ansi_stripped": self.ansi_stripped,
            "control_stripped": self.control_stripped,
            "truncated": self.truncated,
            "json_too_deep": self.json_too_deep,
        }


def sanitize(raw: bytes | str, max_len: int, stats: SanitizeStats | None = None) -> str:
    """Decode (invalid UTF-8 replaced), strip ANSI escapes and control characters, cap length."""
    if isinstance(raw, bytes):
        if len(raw) > max_len * 4:
            raw = raw[: max_len * 4]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            if stats:
                stats.invalid_utf8 += 1
    else:
        text = raw
    text = text.rstrip("\r\n")
    if text.isprintable():  # no surrogate, escape or control character (a tab is not printable)
        if len(text) > max_len:
            text = text[:max_len]
            if stats:
                stats.truncated += 1
        return text
    text = no_surrogates(text)
    if "\x1b" in text:
        text, n = _ANSI.subn("", text)
        if n and stats:
            stats.ansi_stripped += 1
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
        if stats:
            stats.control_stripped += 1
    if len(text) > max_len:
        text = text[:max_len]
        if stats:
            stats.truncated += 1
    return text
