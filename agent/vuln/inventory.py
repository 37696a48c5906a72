# SPDX-License-Identifier: Apache-2.0
"""Installed-package inventory of a container or image root.

Readers: ``/etc/os-release``, dpkg (``/var/lib/dpkg/status`` and ``status.d/``), apk
(``/lib/apk/db/installed``), rpm (the sqlite rpmdb), Python (``*.dist-info/METADATA``,
``*.egg-info``), npm (``node_modules/**/package.json``), application lockfiles
(``agent.vuln.lockfiles``: PyPI, crates.io, npm). Every read goes through a ``Root``,
so nothing is ever resolved outside the container. Malformed entries are counted and skipped.
"""

from __future__ import annotations

import email.parser
import posixpath
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import structlog

from agent.vuln.limits import (
    MAX_METADATA_BYTES,
    MAX_PACKAGE_JSON_BYTES,
    MAX_PACKAGES,
    JsonLimitError,
    ReaderFailed,
    loads_bounded,
)
from agent.vuln.lockfiles import read_lockfiles
from agent.vuln.pkgmodel import Inventory, OsRelease, Package
from agent.vuln.pkgmodel import purl as _purl
from agent.vuln.rootfs import Root, RootError, walk
from agent.vuln.rpmdb import RPMDB_PATHS, read_rpm

if TYPE_CHECKING:
    from debian.deb822 import Deb822

__all__ = [
    "APK_INSTALLED",
    "DPKG_STATUS",
    "RPMDB_PATHS",
    "Inventory",
    "OsRelease",
    "Package",
    "read_inventory",
]

log = structlog.get_logger("agent.vuln")


# --- os-release ----------------------------------------------------------------------------
_OS_LINE = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$")


def read_os_release(root: Root) -> OsRelease:
    """``/etc/os-release`` (or ``/usr/lib/os-release``) of the root; empty if neither exists."""
    text = root.try_read_text("/etc/os-release") or root.try_read_text("/usr/lib/os-release") or ""
    values: dict[str, str] = {}
    for line in text.splitlines():
        m = _OS_LINE.match(line.strip())
        if m:
            values[m.group(1)] = m.group(2).strip().strip("\"'")
    return OsRelease(
        id=values.get("ID", "").lower(),
        version_id=values.get("VERSION_ID", ""),
        version_codename=values.get("VERSION_CODENAME", ""),
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        pretty_name=values.get("PRETTY_NAME", ""),
    )


# --- dpkg ----------------------------------------------------------------------------------
DPKG_STATUS = "/var/lib/dpkg/status"
DPKG_STATUS_D = "/var/lib/dpkg/status.d"
_SOURCE = re.compile(r"^(\S+)(?:\s+\((\S+)\))?$")


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _deb822_paragraphs(text: str, skipped: dict[str, int]) -> Iterator[Deb822]:
    """The paragraphs of a deb822 file, each parsed on its own: a paragraph python-debian refuses
    (a blank continuation line, a lone surrogate) is counted and skipped, the rest go on.

    python-debian's deb822 (with charset_normalizer: 2 MiB resident) is imported here, not with
    the module: the daemon only matches inventories, the package databases are read by the scan's
    child process (``scanner.read_inventory_isolated``)."""
    from debian.deb822 import Deb822

    for block in _PARAGRAPH_BREAK.split(text):
        if not block.strip():
            continue
        try:
            yield Deb822(block.encode("utf-8", "replace").decode("utf-8").splitlines(keepends=True))
        except (ValueError, UnicodeError):
            skipped["dpkg"] = skipped.get("dpkg", 0) + 1


def parse_dpkg_status(text: str, os_rel: OsRelease, path: str, skipped: dict[str, int]) -> list[Package]:
    """Installed packages from dpkg status text, with their source package and source version."""
    eco = os_rel.osv_ecosystem or "Debian"
    distro = f"{os_rel.id or 'debian'}-{os_rel.version_id}" if os_rel.version_id else ""
    out: list[Package] = []
    for para in _deb822_paragraphs(text, skipped):
        name, version = para.get("Package", ""), para.get("Version", "")
        status = para.get("Status", "install ok installed")
        if not name or not version:
            skipped["dpkg"] = skipped.get("dpkg", 0) + 1
            continue
        if not status.endswith(" installed"):
            continue  # removed, config-files only, half-installed: nothing to patch
        if len(out) >= MAX_PACKAGES:
            raise ReaderFailed(f"{path}: more than {MAX_PACKAGES} packages")
        src_name, src_version = name, version
        if source := para.get("Source", "").strip():
            m = _SOURCE.match(source)
            if m:
                src_name, src_version = m.group(1), m.group(2) or version
        out.append(
            Package(
                ecosystem=eco,
                name=name,
                version=version,
                source_name=src_name,
                source_version=src_version,
                purl=_purl(
                    "deb",
                    os_rel.id or "debian",
                    name,
                    version,
                    arch=para.get("Architecture", ""),
                    distro=distro,
                ),
                path=path,
                kind="deb",
            )
        )
    return out


def read_dpkg(root: Root, os_rel: OsRelease, skipped: dict[str, int]) -> list[Package]:
    pkgs: list[Package] = []
    text = root.try_read_text(DPKG_STATUS)
    if text is not None:
        pkgs.extend(parse_dpkg_status(text, os_rel, DPKG_STATUS, skipped))
    # Distroless images keep one status file per package here instead.
    if root.is_dir(DPKG_STATUS_D):
        for name in root.listdir(DPKG_STATUS_D):
            path = posixpath.join(DPKG_STATUS_D, name)
            if name.endswith(".md5sums"):
                continue
            t = root.try_read_text(path)
            if t is not None:
                pkgs.extend(parse_dpkg_status(t, os_rel, path, skipped))
    return pkgs


# --- apk -----------------------------------------------------------------------------------
APK_INSTALLED = "/lib/apk/db/installed"


def parse_apk_installed(text: str, os_rel: OsRelease, path: str, skipped: dict[str, int]) -> list[Package]:
    """Packages from apk's installed database (``P:`` name, ``V:`` version, ``o:`` origin)."""
    eco = os_rel.osv_ecosystem or "Alpine"
    out: list[Package] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if len(line) > 2 and line[1] == ":":
                fields.setdefault(line[0], line[2:].strip())
        if not fields:
            continue
        name, version = fields.get("P", ""), fields.get("V", "")
        if not name or not version:
            skipped["apk"] = skipped.get("apk", 0) + 1
            continue
        if len(out) >= MAX_PACKAGES:
            raise ReaderFailed(f"{path}: more than {MAX_PACKAGES} packages")
        origin = fields.get("o", name)
        out.append(
            Package(
                ecosystem=eco,
                name=name,
                version=version,
                source_name=origin,
                source_version=version,
                purl=_purl(
                    "apk",
                    os_rel.id or "alpine",
                    name,
                    version,
                    arch=fields.get("A", ""),
                    distro=os_rel.version_id,
                ),
                path=path,
                kind="apk",
            )
        )
    return out


# --- Python --------------------------------------------------------------------------------
PY_PREFIXES = ("/usr/lib", "/usr/local/lib", "/usr/lib64", "/usr/local/lib64")
APP_DIRS = ("/opt", "/app", "/srv", "/home", "/root", "/usr/src/app", "/var/www")
_PEP503 = re.compile(r"[-_.]+")


def _site_dirs(root: Root) -> list[str]:
    found: list[str] = []
    for prefix in PY_PREFIXES:
        try:
            names = root.listdir(prefix)
        except RootError:
            continue
        for name in names:
            if name.startswith("python"):
                for sub in ("site-packages", "dist-packages"):
                    d = posixpath.join(prefix, name, sub)
                    if root.is_dir(d):
                        found.append(d)
    for top in APP_DIRS:
        if not root.is_dir(top):
            continue
        for d, names in walk(root, top, max_depth=7):
            if posixpath.basename(d) in ("site-packages", "dist-packages"):
                found.append(d)
            del names
    return sorted(set(found))


def read_python(root: Root, skipped: dict[str, int]) -> list[Package]:
    """Distributions with ``*.dist-info/METADATA`` or ``*.egg-info`` in any site-packages dir."""
    out: list[Package] = []
    parser = email.parser.HeaderParser()
    for site in _site_dirs(root):
        try:
            names = root.listdir(site)
        except RootError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                meta = posixpath.join(site, name, "METADATA")
            elif name.endswith(".egg-info"):
                meta = posixpath.join(site, name)
                if root.is_dir(meta):
                    meta = posixpath.join(meta, "PKG-INFO")
            else:
                continue
            try:  # only the header is needed: a 56 MB METADATA must not cost gigabytes
                text = root.read_text(meta, limit=MAX_METADATA_BYTES)
            except RootError:
                skipped["pypi"] = skipped.get("pypi", 0) + 1
                continue
            if len(out) >= MAX_PACKAGES:
                raise ReaderFailed(f"more than {MAX_PACKAGES} Python distributions")
            msg = parser.parsestr(text.split("\n\n", 1)[0], headersonly=True)
            pname, version = (msg.get("Name") or "").strip(), (msg.get("Version") or "").strip()
            if not pname or not version:
                skipped["pypi"] = skipped.get("pypi", 0) + 1
                continue
            norm = _PEP503.sub("-", pname).lower()
            out.append(
                Package(
                    ecosystem="PyPI",
                    name=norm,
                    version=version,
                    purl=_purl("pypi", "", norm, version),
                    path=meta,
                    kind="pypi",
                )
            )
    return out


# --- npm -----------------------------------------------------------------------------------
NPM_TOPS = ("/usr/lib/node_modules", "/usr/local/lib/node_modules", *APP_DIRS)


def read_npm(root: Root, skipped: dict[str, int], max_packages: int = 50_000) -> list[Package]:
    """Packages from every ``node_modules/<pkg>/package.json`` (scoped and nested included)."""
    out: list[Package] = []
    seen: set[str] = set()
    for top in NPM_TOPS:
        if not root.is_dir(top):
            continue
        for d, names in walk(root, top, max_depth=14):
            if posixpath.basename(posixpath.dirname(d)) != "node_modules" and not (
                posixpath.basename(posixpath.dirname(posixpath.dirname(d))) == "node_modules"
                and posixpath.basename(posixpath.dirname(d)).startswith("@")
            ):
                continue
            if "package.json" not in names:
                continue
            path = posixpath.join(d, "package.json")
            if path in seen or len(out) >= max_packages:
                continue
            seen.add(path)
            try:
                meta = loads_bounded(root.read_bytes(path, limit=MAX_PACKAGE_JSON_BYTES))
                if not isinstance(meta, dict):
                    raise TypeError("package.json is not an object")
                name, version = meta["name"], meta["version"]
                if not (isinstance(name, str) and isinstance(version, str) and name and version):
                    raise TypeError("name/version are not strings")
            except (RootError, ValueError, KeyError, TypeError, JsonLimitError):
                skipped["npm"] = skipped.get("npm", 0) + 1
                continue
            ns, _, base = name.rpartition("/")
            out.append(
                Package(
                    ecosystem="npm",
                    name=name,
                    version=version,
                    purl=_purl("npm", ns, base, version),
                    path=path,
                    kind="npm",
                )
            )
    return out


def read_inventory(root: Root) -> Inventory:
    """Read every supported package database in ``root``."""
    os_rel = read_os_release(root)
    inv = Inventory(os=os_rel)

    def apk() -> list[Package]:
        text = root.try_read_text(APK_INSTALLED)
        return parse_apk_installed(text, os_rel, APK_INSTALLED, inv.skipped) if text else []

    readers: list[tuple[str, Callable[[], list[Package]]]] = [
        ("dpkg", lambda: read_dpkg(root, os_rel, inv.skipped)),
        ("apk", apk),
        ("rpm", lambda: read_rpm(root, os_rel, inv.skipped)),
        ("pypi", lambda: read_python(root, inv.skipped)),
        ("npm", lambda: read_npm(root, inv.skipped)),
        ("lockfile", lambda: read_lockfiles(root, inv.skipped)),
    ]
    for label, reader in readers:
        try:
            found = reader()
        except RootError as exc:
            log.warning("inventory_reader_failed", reader=label, root=root.label, error=str(exc))
            continue
        except ReaderFailed as exc:  # a limit was hit: the reader's reason is kept for the report
            inv.skipped[label] = inv.skipped.get(label, 0) + 1
            inv.failures[label] = str(exc)[:300]
            log.warning("inventory_reader_gave_up", reader=label, root=root.label, reason=str(exc)[:300])
            continue
        except Exception as exc:  # a hostile file must cost its reader, never the whole scan
            inv.skipped[label] = inv.skipped.get(label, 0) + 1
            inv.failures[label] = f"{type(exc).__name__}: {str(exc)[:200]}"
            log.error("inventory_reader_crashed", reader=label, root=root.label, error=repr(exc))
            continue
        if found:
            inv.readers.append(label)
            inv.packages.extend(found)
    return inv
