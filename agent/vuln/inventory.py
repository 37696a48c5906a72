# SPDX-License-Identifier: Apache-2.0
"""Installed-package inventory of a container or image root.

Readers: ``/etc/os-release``, dpkg (``/var/lib/dpkg/status`` and ``status.d/``), apk
(``/lib/apk/db/installed``), rpm (the sqlite rpmdb), Python (``*.dist-info/METADATA``,
``*.egg-info``), npm (``node_modules/**/package.json``). Every read goes through a ``Root``,
so nothing is ever resolved outside the container. Malformed entries are counted and skipped.
"""

from __future__ import annotations

import email.parser
import json
import posixpath
import re
import sqlite3
import struct
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

import structlog
from debian.deb822 import Deb822

from agent.vuln.rootfs import Root, RootError, walk

log = structlog.get_logger("agent.vuln")


@dataclass(frozen=True, slots=True)
class OsRelease:
    """The distribution the root claims to be (``/etc/os-release``)."""

    id: str = ""
    version_id: str = ""
    version_codename: str = ""
    id_like: tuple[str, ...] = ()
    pretty_name: str = ""

    @property
    def osv_ecosystem(self) -> str:
        """The OSV ecosystem of this distribution's packages (``Debian:12``, ``Alpine:v3.19``)."""
        ident = self.id
        if ident == "debian" or (not ident and "debian" in self.id_like):
            major = self.version_id.split(".")[0]
            return f"Debian:{major}" if major else "Debian"
        if ident == "ubuntu":
            return f"Ubuntu:{self.version_id}" if self.version_id else "Ubuntu"
        if ident == "alpine":
            major_minor = ".".join(self.version_id.split(".")[:2])
            return f"Alpine:v{major_minor}" if major_minor else "Alpine"
        if ident in ("wolfi", "chainguard"):
            return ident.capitalize()
        rpm = {"rhel": "Red Hat", "almalinux": "AlmaLinux", "rocky": "Rocky Linux", "mageia": "Mageia"}
        if ident in rpm:
            major = self.version_id.split(".")[0]
            return f"{rpm[ident]}:{major}" if major else rpm[ident]
        if ident.startswith("opensuse"):
            return f"openSUSE:Leap {self.version_id}" if "leap" in ident else "openSUSE:Tumbleweed"
        if ident in ("sles", "suse"):
            return f"SUSE:Linux Enterprise Server {self.version_id}"
        return ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id_like": list(self.id_like), "ecosystem": self.osv_ecosystem}


@dataclass(frozen=True, slots=True)
class Package:
    """One installed package: what the matcher needs and what a report shows."""

    ecosystem: str  # OSV ecosystem: Debian:12, Alpine:v3.19, PyPI, npm, Rocky Linux:9 …
    name: str
    version: str
    source_name: str = ""  # dpkg Source / apk origin / rpm source rpm name
    source_version: str = ""
    purl: str = ""
    path: str = ""  # the database or metadata file it was read from, inside the root
    kind: str = ""  # deb | apk | rpm | pypi | npm

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Package:
        return cls(**{k: str(d.get(k, "")) for k in cls.__slots__})  # type: ignore[attr-defined]


@dataclass
class Inventory:
    """Everything read from one root, with per-reader counts of skipped entries."""

    os: OsRelease
    packages: list[Package] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    readers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "os": self.os.to_dict(),
            "packages": [p.to_dict() for p in self.packages],
            "skipped": dict(self.skipped),
            "readers": list(self.readers),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Inventory:
        o = d.get("os") or {}
        os_rel = OsRelease(
            id=str(o.get("id", "")),
            version_id=str(o.get("version_id", "")),
            version_codename=str(o.get("version_codename", "")),
            id_like=tuple(o.get("id_like") or ()),
            pretty_name=str(o.get("pretty_name", "")),
        )
        return cls(
            os=os_rel,
            packages=[Package.from_dict(p) for p in d.get("packages") or []],
            skipped={str(k): int(v) for k, v in (d.get("skipped") or {}).items()},
            readers=[str(r) for r in d.get("readers") or []],
        )


def _purl(kind: str, namespace: str, name: str, version: str, **qualifiers: str) -> str:
    ns = f"{quote(namespace, safe='')}/" if namespace else ""
    q = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(qualifiers.items()) if v)
    return f"pkg:{kind}/{ns}{quote(name, safe='')}@{quote(version, safe='')}" + (f"?{q}" if q else "")


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


def parse_dpkg_status(text: str, os_rel: OsRelease, path: str, skipped: dict[str, int]) -> list[Package]:
    """Installed packages from dpkg status text, with their source package and source version."""
    eco = os_rel.osv_ecosystem or "Debian"
    distro = f"{os_rel.id or 'debian'}-{os_rel.version_id}" if os_rel.version_id else ""
    out = []
    for para in Deb822.iter_paragraphs(text.splitlines(keepends=True)):
        name, version = para.get("Package", ""), para.get("Version", "")
        status = para.get("Status", "install ok installed")
        if not name or not version:
            skipped["dpkg"] = skipped.get("dpkg", 0) + 1
            continue
        if not status.endswith(" installed"):
            continue  # removed, config-files only, half-installed: nothing to patch
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
    out = []
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


# --- rpm -----------------------------------------------------------------------------------
RPMDB_PATHS = ("/var/lib/rpm/rpmdb.sqlite", "/usr/lib/sysimage/rpm/rpmdb.sqlite")
RPMTAG_NAME, RPMTAG_VERSION, RPMTAG_RELEASE, RPMTAG_EPOCH = 1000, 1001, 1002, 1003
RPMTAG_ARCH, RPMTAG_SOURCERPM = 1022, 1044
_RPM_STRING, _RPM_INT32, _RPM_I18NSTRING = 6, 4, 9
_SRPM = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<release>[^-]+)\.(?:src|nosrc)\.rpm$")


def parse_rpm_header(blob: bytes) -> dict[int, str | int]:
    """The scalar tags of one rpm header blob as stored in rpmdb.sqlite's ``Packages.blob``.

    Layout (rpm's ``headerExport`` without the 8-byte magic): big-endian ``il`` (index count),
    ``dl`` (data length), ``il`` 16-byte entries ``(tag, type, offset, count)``, then the data.
    """
    if len(blob) < 8:
        raise ValueError("header shorter than its preamble")
    il, dl = struct.unpack_from(">II", blob, 0)
    data_start = 8 + 16 * il
    if il > 100_000 or data_start + dl > len(blob):
        raise ValueError("header index/data lengths exceed the blob")
    data = blob[data_start : data_start + dl]
    tags: dict[int, str | int] = {}
    for i in range(il):
        tag, typ, off, count = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
        if off < 0 or off >= max(dl, 1):
            continue
        if typ in (_RPM_STRING, _RPM_I18NSTRING):
            end = data.find(b"\0", off)
            tags[tag] = data[off : end if end >= 0 else len(data)].decode("utf-8", errors="replace")
        elif typ == _RPM_INT32 and count >= 1 and off + 4 <= len(data):
            tags[tag] = struct.unpack_from(">i", data, off)[0]
    return tags


def read_rpm(root: Root, os_rel: OsRelease, skipped: dict[str, int]) -> list[Package]:
    """Packages from the sqlite rpmdb (rpm ≥ 4.16). BerkeleyDB and ndb databases are not read."""
    eco = os_rel.osv_ecosystem
    for path in RPMDB_PATHS:
        try:
            raw = root.read_bytes(path, limit=512 << 20)
        except RootError:
            continue
        out = []
        # sqlite needs a real file: copy the bytes (read inside the root) to a private temp file.
        with tempfile.NamedTemporaryFile(suffix=".sqlite") as tmp:
            tmp.write(raw)
            tmp.flush()
            try:
                conn = sqlite3.connect(f"file:{tmp.name}?mode=ro&immutable=1", uri=True)
                rows = conn.execute("SELECT blob FROM Packages").fetchall()
                conn.close()
            except sqlite3.Error as exc:
                log.warning("rpmdb_unreadable", path=path, error=str(exc))
                skipped["rpm"] = skipped.get("rpm", 0) + 1
                continue
        for (blob,) in rows:
            try:
                tags = parse_rpm_header(bytes(blob))
            except (ValueError, struct.error):
                skipped["rpm"] = skipped.get("rpm", 0) + 1
                continue
            name, ver, rel = tags.get(RPMTAG_NAME), tags.get(RPMTAG_VERSION), tags.get(RPMTAG_RELEASE)
            if not (isinstance(name, str) and isinstance(ver, str) and isinstance(rel, str)):
                skipped["rpm"] = skipped.get("rpm", 0) + 1
                continue
            if name == "gpg-pubkey":
                continue
            epoch = tags.get(RPMTAG_EPOCH)
            evr = f"{epoch}:{ver}-{rel}" if isinstance(epoch, int) and epoch > 0 else f"{ver}-{rel}"
            srpm = str(tags.get(RPMTAG_SOURCERPM, ""))
            m = _SRPM.match(srpm)
            out.append(
                Package(
                    ecosystem=eco or "rpm",
                    name=name,
                    version=evr,
                    source_name=m.group("name") if m else name,
                    source_version=evr,
                    purl=_purl(
                        "rpm",
                        os_rel.id,
                        name,
                        f"{ver}-{rel}",
                        arch=str(tags.get(RPMTAG_ARCH, "")),
                        epoch=str(epoch) if isinstance(epoch, int) and epoch > 0 else "",
                        distro=f"{os_rel.id}-{os_rel.version_id}" if os_rel.version_id else "",
                    ),
                    path=path,
                    kind="rpm",
                )
            )
        return out
    return []


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
    out = []
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
            text = root.try_read_text(meta)
            if text is None:
                skipped["pypi"] = skipped.get("pypi", 0) + 1
                continue
            msg = parser.parsestr(text)
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
                meta = json.loads(root.read_bytes(path, limit=4 << 20))
                name, version = meta["name"], meta["version"]
                if not (isinstance(name, str) and isinstance(version, str) and name and version):
                    raise TypeError("name/version are not strings")
            except (RootError, ValueError, KeyError, TypeError):
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
    ]
    for label, reader in readers:
        try:
            found = reader()
        except RootError as exc:
            log.warning("inventory_reader_failed", reader=label, root=root.label, error=str(exc))
            continue
        except Exception as exc:  # a hostile file must cost its reader, never the whole scan
            inv.skipped[label] = inv.skipped.get(label, 0) + 1
            log.error("inventory_reader_crashed", reader=label, root=root.label, error=repr(exc))
            continue
        if found:
            inv.readers.append(label)
            inv.packages.extend(found)
    return inv
