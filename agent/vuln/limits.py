# SPDX-License-Identifier: Apache-2.0
"""Limits on everything the scanner and the offline tools parse from untrusted input.

Package databases, metadata files, image layers and vulnerability feeds come from containers or
from downloads: each is read with a size cap, JSON with a nesting cap, and row-shaped data with
a row cap. ``docs/operations.md`` (Limits) lists these values and what happens when one is hit:
the input (file, record, entry) is counted as skipped or malformed with its reason, the rest goes
on; nothing raises past its reader.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 64  # nesting of arrays/objects in any JSON we read (OSV/NVD need < 12)
MAX_JSON_BYTES = 256 << 20  # one JSON document (an NVD yearly feed is ~100 MB uncompressed)
MAX_ZIP_ENTRY_BYTES = 64 << 20  # one uncompressed OSV record or feed inside a zip
MAX_METADATA_BYTES = 1 << 20  # a Python METADATA / PKG-INFO (only its header is needed)
MAX_PACKAGE_JSON_BYTES = 4 << 20  # an npm package.json
MAX_RPMDB_BYTES = 128 << 20  # rpmdb.sqlite copied out of a container (real ones: < 64 MiB)
MAX_RPM_ROWS = 200_000  # rows read from rpmdb's Packages table
MAX_RPM_BLOB_BYTES = 16 << 20  # one rpm header blob
MAX_PACKAGES = 200_000  # packages one reader may return


class JsonLimitError(ValueError):
    """JSON that is larger or more deeply nested than allowed."""


def json_depth_exceeds(value: Any, max_depth: int) -> bool:
    """True when ``value`` nests lists/dicts deeper than ``max_depth`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
    return False


def loads_bounded(data: bytes | str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses documents over ``max_bytes`` or nested deeper than ``max_depth``.

    Raises ``JsonLimitError`` for a limit, ``ValueError`` for text that is not JSON; never
    ``RecursionError``.
    """
    if len(data) > max_bytes:
        raise JsonLimitError(f"JSON document of {len(data)} bytes is larger than {max_bytes}")
    try:
        value = json.loads(data)
    except RecursionError:
        raise JsonLimitError(f"JSON nested deeper than {max_depth}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc.reason}") from None
    if isinstance(value, (dict, list)) and json_depth_exceeds(value, max_depth):
        raise JsonLimitError(f"JSON nested deeper than {max_depth}")
    return value


class ReaderFailed(Exception):
    """A package reader gave up on a hostile or oversized database; the message says why."""
