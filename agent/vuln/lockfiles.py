# SPDX-License-Identifier: Apache-2.0
"""Application lockfiles in a root as packages of their OSV ecosystem (PyPI, crates.io, npm).

Read: ``requirements*.txt`` (pinned ``==`` lines only), ``poetry.lock``, ``Pipfile.lock``,
``uv.lock``, ``pylock.toml`` (PEP 751), ``Cargo.lock`` (registry crates only), and
``package-lock.json`` / ``npm-shrinkwrap.json`` (v1 to v3) / ``yarn.lock`` (classic and berry).
Found by a bounded walk of the application directories (``node_modules``, ``.git`` and
site-packages are not entered); each file is read through the ``Root`` with a size cap, TOML with
``tomllib``, JSON with ``loads_bounded``. A file that does not parse is counted in
``skipped["lockfile"]`` and the others are still read.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

from agent.vuln.limits import MAX_PACKAGES, JsonLimitError, ReaderFailed, loads_bounded
from agent.vuln.pkgmodel import Package
from agent.vuln.pkgmodel import purl as _purl
from agent.vuln.rootfs import Root, RootError

MAX_LOCKFILE_BYTES = 32 << 20  # one lockfile (a large package-lock.json is ~10 MB)
MAX_LOCKFILE_DIRS = 20_000  # directories the discovery walk may list
MAX_LOCKFILE_DEPTH = 6  # levels below each application directory
LOCK_TOPS = ("/app", "/srv", "/opt", "/home", "/root", "/usr/src", "/var/www", "/workspace", "/code")
_PRUNE = frozenset({"node_modules", ".git", "__pycache__", "site-packages", "dist-packages", ".cache", "target"})
_PEP503 = re.compile(r"[-_.]+")

Entry = tuple[str, str]  # (name, version) as the lockfile writes them


def _pypi(name: str) -> str:
    return _PEP503.sub("-", name).lower()


# --- parsers: text -> (name, version) pairs; ValueError for text that is not the format ----------
_REQ = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*===?\s*([A-Za-z0-9][A-Za-z0-9.+!_-]*)\s*(?:;.*)?$"
)


def parse_requirements(text: str) -> list[Entry]:
    """``name==version`` lines (extras, markers and ``--hash`` options allowed); ranges, URLs,
    ``-r``/``-e`` lines and comments are not pins and are left out."""
    out: list[Entry] = []
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        line = re.split(r"\s+--", line, maxsplit=1)[0].strip()  # --hash=sha256:... after the pin
        m = _REQ.match(line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def _toml_packages(text: str, table: str) -> list[dict[str, Any]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not TOML: {exc}") from None
    rows = doc.get(table) or []
    if not isinstance(rows, list):
        raise ValueError(f"[[{table}]] is not an array of tables")
    return [r for r in rows if isinstance(r, dict)]


def _pair(row: dict[str, Any]) -> Entry | None:
    name, version = row.get("name"), row.get("version")
    if isinstance(name, str) and isinstance(version, str) and name and version:
        return name, version
    return None


def parse_poetry_lock(text: str) -> list[Entry]:
    """``[[package]]`` name/version of poetry.lock."""
    return [p for r in _toml_packages(text, "package") if (p := _pair(r))]


def parse_uv_lock(text: str) -> list[Entry]:
    """``[[package]]`` of uv.lock, without the project itself (editable, virtual or path sources)."""
    out = []
    for r in _toml_packages(text, "package"):
        src = r.get("source")
        if isinstance(src, dict) and src.keys() & {"editable", "virtual", "directory", "path"}:
            continue
        if p := _pair(r):
            out.append(p)
    return out


def parse_pylock(text: str) -> list[Entry]:
    """``[[packages]]`` of a PEP 751 ``pylock.toml`` (entries without a version are directories)."""
    return [p for r in _toml_packages(text, "packages") if (p := _pair(r))]


def parse_cargo_lock(text: str) -> list[Entry]:
    """``[[package]]`` of Cargo.lock that come from a registry (workspace crates have no source)."""
    return [
        p
        for r in _toml_packages(text, "package")
        if str(r.get("source", "")).startswith(("registry+", "sparse+")) and (p := _pair(r))
    ]


def _json(text: str) -> dict[str, Any]:
    try:
        doc = loads_bounded(text, max_bytes=MAX_LOCKFILE_BYTES)
    except JsonLimitError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def parse_pipfile_lock(text: str) -> list[Entry]:
    """``default`` and ``develop`` sections of Pipfile.lock with a ``==`` version."""
    out = []
    doc = _json(text)
    for section in ("default", "develop"):
        for name, meta in (doc.get(section) or {}).items():
            version = meta.get("version") if isinstance(meta, dict) else None
            if isinstance(version, str) and version.startswith("=="):
                out.append((str(name), version.lstrip("=")))
    return out


def parse_package_lock(text: str) -> list[Entry]:
    """npm lockfile v2/v3 ``packages`` (path keys; links and the root left out), else v1's nested
    ``dependencies``."""
    doc = _json(text)
    out: list[Entry] = []
    packages = doc.get("packages")
    if isinstance(packages, dict) and packages:
        for key, meta in packages.items():
            if not key or not isinstance(meta, dict) or meta.get("link") or "node_modules/" not in key:
                continue
            name = meta.get("name") or key.rsplit("node_modules/", 1)[1]
            version = meta.get("version")
            if isinstance(name, str) and isinstance(version, str) and version:
                out.append((name, version))
        return out
    stack: list[Any] = [doc.get("dependencies")]
    while stack:  # v1: dependencies nest; iterative, the JSON depth is already bounded
        deps = stack.pop()
        if not isinstance(deps, dict):
            continue
        for name, meta in deps.items():
            if isinstance(meta, dict):
                version = meta.get("version")
                if isinstance(version, str) and version and not version.startswith(("file:", "link:")):
                    out.append((str(name), version))
                stack.append(meta.get("dependencies"))
    return out


_YARN_HEAD = re.compile(r'^"?((?:@[^@/\s"]+/)?[^@\s"]+)@[^\n]*:\s*$')
_YARN_VERSION = re.compile(r'^\s+version:?\s+"?([^"\s]+)"?\s*$')


def parse_yarn_lock(text: str) -> list[Entry]:
    """Entries of yarn.lock, classic (``version "1.2.3"``) and berry (``version: 1.2.3``);
    workspace entries (``0.0.0-use.local``) left out."""
    out: list[Entry] = []
    name = ""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if not line[0].isspace():
            m = _YARN_HEAD.match(line)
            name = m.group(1) if m and not line.startswith("__metadata") else ""
            continue
        if name:
            v = _YARN_VERSION.match(line)
            if v:
                if not v.group(1).endswith("-use.local"):
                    out.append((name, v.group(1)))
                name = ""
    return out


# file name -> (ecosystem, purl type, parser)
PARSERS: dict[str, tuple[str, str, Callable[[str], list[Entry]]]] = {
    "poetry.lock": ("PyPI", "pypi", parse_poetry_lock),
    "Pipfile.lock": ("PyPI", "pypi", parse_pipfile_lock),
    "uv.lock": ("PyPI", "pypi", parse_uv_lock),
    "pylock.toml": ("PyPI", "pypi", parse_pylock),
    "Cargo.lock": ("crates.io", "cargo", parse_cargo_lock),
    "package-lock.json": ("npm", "npm", parse_package_lock),
    "npm-shrinkwrap.json": ("npm", "npm", parse_package_lock),
    "yarn.lock": ("npm", "npm", parse_yarn_lock),
}
_REQUIREMENTS = re.compile(r"^requirements([-_.][\w.-]*)?\.txt$")
_PYLOCK = re.compile(r"^pylock\.[\w-]+\.toml$")


def parser_for(filename: str) -> tuple[str, str, Callable[[str], list[Entry]]] | None:
    """(ecosystem, purl type, parser) for a lockfile name; None for any other file."""
    if filename in PARSERS:
        return PARSERS[filename]
    if _REQUIREMENTS.match(filename):
        return ("PyPI", "pypi", parse_requirements)
    if _PYLOCK.match(filename):
        return PARSERS["pylock.toml"]
    return None


def find_lockfiles(root: Root, tops: tuple[str, ...] = LOCK_TOPS) -> Iterator[str]:
    """Paths of lockfiles below ``tops``, breadth-first, at most ``MAX_LOCKFILE_DEPTH`` levels
    and ``MAX_LOCKFILE_DIRS`` directories listed; dependency and cache trees are not entered."""
    listed = 0
    queue = [(t, 0) for t in tops if root.is_dir(t)]
    seen: set[str] = set()
    while queue:
        d, depth = queue.pop(0)
        if d in seen or listed >= MAX_LOCKFILE_DIRS:
            continue
        seen.add(d)
        listed += 1
        try:
            names = sorted(root.listdir(d))
        except RootError:
            continue
        for name in names:
            path = posixpath.join(d, name)
            if parser_for(name) is not None:
                yield path
            elif depth < MAX_LOCKFILE_DEPTH and name not in _PRUNE and root.is_dir(path):
                queue.append((path, depth + 1))


def read_lockfiles(root: Root, skipped: dict[str, int], max_bytes: int = MAX_LOCKFILE_BYTES) -> list[Package]:
    """Every package pinned by a lockfile in ``root`` (one row per name and version per file);
    a file over ``max_bytes`` is skipped unread."""
    out: list[Package] = []
    for path in find_lockfiles(root):
        spec = parser_for(posixpath.basename(path))
        if spec is None:
            continue
        ecosystem, kind, parse = spec
        try:
            entries = parse(root.read_text(path, limit=max_bytes))
        except (RootError, ValueError, TypeError, AttributeError, UnicodeError):
            skipped["lockfile"] = skipped.get("lockfile", 0) + 1
            continue
        seen: set[Entry] = set()
        for name, version in entries:
            if (name, version) in seen:
                continue
            seen.add((name, version))
            if len(out) >= MAX_PACKAGES:
                raise ReaderFailed(f"more than {MAX_PACKAGES} packages in lockfiles")
            norm = _pypi(name) if ecosystem == "PyPI" else name
            ns, _, base = norm.rpartition("/") if kind == "npm" else ("", "", norm)
            out.append(
                Package(
                    ecosystem=ecosystem,
                    name=norm,
                    version=version,
                    purl=_purl(kind, ns, base, version),
                    path=path,
                    kind=kind,
                )
            )
    return out
