# SPDX-License-Identifier: Apache-2.0
"""What an inventory is made of: the distribution (``OsRelease``), installed ``Package`` rows and
the ``Inventory`` of one root with its skip counts and reader failures, plus package URLs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote


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
        return cls(**{k: str(d.get(k, "")) for k in cls.__slots__})


@dataclass
class Inventory:
    """Everything read from one root, with per-reader counts of skipped entries."""

    os: OsRelease
    packages: list[Package] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    readers: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # reader -> why it gave up (a limit, a crash)

    def to_dict(self) -> dict[str, Any]:
        return {
            "os": self.os.to_dict(),
            "packages": [p.to_dict() for p in self.packages],
            "skipped": dict(self.skipped),
            "readers": list(self.readers),
            "failures": dict(self.failures),
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
            failures={str(k): str(v) for k, v in (d.get("failures") or {}).items()},
        )


def purl(kind: str, namespace: str, name: str, version: str, **qualifiers: str) -> str:
    ns = f"{quote(namespace, safe='')}/" if namespace else ""
    q = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(qualifiers.items()) if v)
    return f"pkg:{kind}/{ns}{quote(name, safe='')}@{quote(version, safe='')}" + (f"?{q}" if q else "")
