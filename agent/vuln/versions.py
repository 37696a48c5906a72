# SPDX-License-Identifier: Apache-2.0
"""Ecosystem-correct version ordering: one ``key(ecosystem, version)`` for every comparison.

dpkg versions go through python-debian (epochs, ``~`` sorting before everything, ``+debNuM``),
PEP 440 through ``packaging``, rpm and semver through ``univers``, apk by apk-tools' rules
(``apk_key``). A version the ecosystem's
parser rejects raises ``VersionError``; the matcher then falls back to exact string equality.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Protocol

from debian.debian_support import Version as DebVersion
from packaging.version import InvalidVersion
from packaging.version import Version as PepVersion
from univers.versions import RpmVersion, SemverVersion


class VersionError(ValueError):
    """The version string is not valid in its ecosystem."""


class Comparable(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...

    def __eq__(self, other: object, /) -> bool: ...


# OSV ecosystem name (before any ":release") -> comparison scheme.
SCHEMES: dict[str, str] = {
    "Debian": "deb",
    "Ubuntu": "deb",
    "Alpine": "apk",
    "Wolfi": "apk",
    "Chainguard": "apk",
    "Red Hat": "rpm",
    "AlmaLinux": "rpm",
    "Rocky Linux": "rpm",
    "openSUSE": "rpm",
    "SUSE": "rpm",
    "Mageia": "rpm",
    "Photon OS": "rpm",
    "PyPI": "pep440",
    "npm": "semver",
    "crates.io": "semver",
    "SEMVER": "semver",
}


def scheme_of(ecosystem: str) -> str:
    """The comparison scheme for an OSV ecosystem (``Debian:12`` → ``deb``); ``""`` if unknown."""
    return SCHEMES.get(ecosystem.split(":", 1)[0], "")


class _Deb:
    """python-debian's ``Version`` compares by parsing on each call; pre-parse once instead."""

    __slots__ = ("v",)

    def __init__(self, text: str) -> None:
        try:
            self.v = DebVersion(text)
        except ValueError as exc:
            raise VersionError(str(exc)) from None

    def __lt__(self, other: _Deb) -> bool:
        return bool(self.v < other.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Deb) and bool(self.v == other.v)

    def __hash__(self) -> int:
        return hash(str(self.v))


_APK = re.compile(
    r"^(?P<nums>\d+(?:\.\d+)*)(?P<letter>[a-z]?)"
    r"(?P<suffixes>(?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)(?:-r(?P<rev>\d+))?$"
)
_APK_SUFFIX = re.compile(r"_(alpha|beta|pre|rc|cvs|svn|git|hg|p)(\d*)")
# apk-tools' suffix order; "no suffix" sorts between _rc and _cvs (1.0_rc1 < 1.0 < 1.0_p1).
_APK_RANK = {"alpha": 0, "beta": 1, "pre": 2, "rc": 3, "": 4, "cvs": 5, "svn": 6, "git": 7, "hg": 8, "p": 9}


def apk_key(text: str) -> tuple[Any, ...]:
    """apk-tools version order. univers' AlpineLinuxVersion rejects valid apk versions such as
    ``1.2.4_git20230717-r4`` (its gentoo grammar lacks ``_git``/``_hg``), so apk is parsed here."""
    m = _APK.match(text)
    if not m:
        raise VersionError(f"{text!r} is not a valid apk version")
    nums = tuple(int(n) for n in m.group("nums").split("."))
    suffixes = [(_APK_RANK[s], int(n or 0)) for s, n in _APK_SUFFIX.findall(m.group("suffixes"))]
    suffixes.append((_APK_RANK[""], 0))
    return (nums, m.group("letter"), tuple(suffixes), int(m.group("rev") or 0))


@functools.lru_cache(maxsize=65536)
def key(scheme: str, version: str) -> Comparable:
    """A sortable key for ``version`` under ``scheme`` (``deb``, ``apk``, ``rpm``, ``pep440``, ``semver``)."""
    text = version.strip()
    if not text:
        raise VersionError("empty version")
    try:
        if scheme == "deb":
            return _Deb(text)
        if scheme == "pep440":
            return PepVersion(text)
        if scheme == "apk":
            return apk_key(text)
        if scheme == "rpm":
            return RpmVersion(text)
        if scheme == "semver":
            return SemverVersion(text.lstrip("v"))
    except (InvalidVersion, ValueError, TypeError) as exc:
        raise VersionError(f"{version!r} is not a valid {scheme} version: {exc}") from None
    raise VersionError(f"no version scheme {scheme!r}")


def compare(scheme: str, a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to or after ``b``."""
    ka, kb = key(scheme, a), key(scheme, b)
    if ka == kb:
        return 0
    return -1 if ka < kb else 1
