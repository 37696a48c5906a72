# SPDX-License-Identifier: Apache-2.0
"""Match an inventory against the vulnerability database.

For each installed package: look up the OSV entries of its ecosystem family and name (Debian and
Ubuntu by *source* package, compared with the source version), keep only entries of the same
release (``Debian:12`` never matches Debian 11 or Alpine), evaluate the OSV ``affected`` ranges
with the ecosystem's version order (or the explicit ``versions`` list), drop withdrawn records,
then merge records that alias each other (DSA/DLA/GHSA/CVE) so one vulnerability is reported once
per package, with the strongest severity known for any of its names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.vuln.db import AffectedRow, VulnDB, split_ecosystem
from agent.vuln.inventory import Inventory, Package
from agent.vuln.severity import normalize_rating, rank
from agent.vuln.versions import VersionError, key, scheme_of

_EVENT_ORDER = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}


@dataclass(frozen=True, slots=True)
class Match:
    """One vulnerability of one installed package (the JSON report row)."""

    package: str
    version: str
    ecosystem: str
    source_package: str
    vulnerability: str
    aliases: list[str] = field(default_factory=list)
    severity: str = ""
    fixed_version: str = ""
    path: str = ""
    score: float | None = None
    summary: str = ""
    purl: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def report_row(self) -> dict[str, Any]:
        """The stable CLI JSON shape."""
        keys = (
            "package",
            "version",
            "ecosystem",
            "source_package",
            "vulnerability",
            "aliases",
            "severity",
            "fixed_version",
            "path",
        )
        d = self.to_dict()
        return {k: d[k] for k in keys}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Match:
        return cls(**{k: d[k] for k in cls.__slots__ if k in d})


def in_range(scheme: str, version: str, rng: dict[str, Any]) -> tuple[bool, str]:
    """(affected, fixed version) of ``version`` for one OSV range, following the OSV evaluation
    algorithm: events sorted by version (``introduced: 0`` first, ties introduced → last_affected
    → fixed → limit), walked in order; ``limit`` caps the whole range."""
    typ = rng.get("type", "")
    if typ == "GIT":
        return False, ""
    if typ == "SEMVER":
        scheme = "semver"
    v = key(scheme, version)
    events: list[tuple[int, Any, str, str]] = []
    for e in rng.get("events") or []:
        for kind, ver in e.items():
            if kind == "introduced" and ver == "0":
                events.append((0, None, kind, ver))
                continue
            # An unparsable bound raises VersionError: the whole range is skipped (dropping only a
            # bad "fixed" would turn the range into "affected forever", a false positive).
            events.append((1, key(scheme, ver), kind, ver))
    affected = False
    fixed = ""
    for _, k, kind, ver in _sorted(events):
        if kind == "introduced":
            if k is None or not v < k:
                affected, fixed = True, ""
        elif kind == "fixed":
            if not v < k:
                affected = False
            elif affected and not fixed:
                fixed = ver
        elif kind == "last_affected":
            if k < v:
                affected = False
        elif kind == "limit" and not v < k:
            return False, ""
    return affected, fixed if affected else ""


def _sorted(events: list[tuple[int, Any, str, str]]) -> list[tuple[int, Any, str, str]]:
    """Sort events by version with a comparison that works on any scheme's key object."""
    import functools

    def cmp(a: tuple[int, Any, str, str], b: tuple[int, Any, str, str]) -> int:
        if a[0] != b[0]:
            return a[0] - b[0]
        if a[1] is not None and b[1] is not None and a[1] != b[1]:
            return -1 if a[1] < b[1] else 1
        return _EVENT_ORDER.get(a[2], 9) - _EVENT_ORDER.get(b[2], 9)

    return sorted(events, key=functools.cmp_to_key(cmp))


def evaluate(scheme: str, version: str, row: AffectedRow) -> tuple[bool, str]:
    """(affected, fixed version) of ``version`` against one OSV ``affected`` entry."""
    if version in row.versions:
        return True, ""
    if not scheme:
        return False, ""
    best_fixed = ""
    hit = False
    for rng in row.ranges:
        try:
            ok, fixed = in_range(scheme, version, rng)
        except VersionError:
            continue
        if ok:
            hit = True
            best_fixed = best_fixed or fixed
    return hit, best_fixed


class Matcher:
    """Matches inventories against one ``VulnDB``; caches per-package lookups for one generation."""

    def __init__(self, db: VulnDB) -> None:
        self.db = db
        self._cache: dict[tuple[str, str, str | None], list[AffectedRow]] = {}
        self._generation = -1

    def _rows(self, base: str, name: str, release: str | None) -> list[AffectedRow]:
        gen = self.db.generation()
        if gen != self._generation:
            self._cache.clear()
            self._generation = gen
        k = (base, name, release)
        if k not in self._cache:
            self._cache[k] = self.db.affected_for(base, name, release)
        return self._cache[k]

    def match_package(self, pkg: Package) -> list[tuple[str, str, str]]:
        """(vuln id, fixed version, entry severity) for every record that affects ``pkg``."""
        base, release = split_ecosystem(pkg.ecosystem)
        scheme = scheme_of(pkg.ecosystem)
        distro = scheme in ("deb", "apk", "rpm")
        # Debian/Ubuntu advisories name source packages at source versions; apk/rpm likewise name
        # the origin/source rpm. The binary name is also tried, for entries that use it.
        candidates = [(pkg.name, pkg.version)]
        if distro and pkg.source_name and pkg.source_name != pkg.name:
            candidates.insert(0, (pkg.source_name, pkg.source_version or pkg.version))
        elif distro and pkg.source_version and scheme == "deb":
            candidates = [(pkg.name, pkg.source_version)]
        if distro and not release:
            return []  # unknown release (no os-release): refuse to guess which advisories apply
        out: dict[str, tuple[str, str, str]] = {}
        for name, version in candidates:
            for row in self._rows(base, name, release if distro else None):
                if distro and row.eco_release and row.eco_release != release:
                    continue  # release scoping: Debian:11 entries never match a Debian 12 root
                ok, fixed = evaluate(scheme, version, row)
                if ok and row.vuln_id not in out:
                    out[row.vuln_id] = (row.vuln_id, fixed, row.severity)
        return list(out.values())

    def match(self, inventory: Inventory) -> list[Match]:
        """Every vulnerability of every package, aliases merged, sorted by severity."""
        per_pkg: list[tuple[Package, list[tuple[str, str, str]]]] = []
        ids: set[str] = set()
        for pkg in inventory.packages:
            hits = self.match_package(pkg)
            if hits:
                per_pkg.append((pkg, hits))
                ids.update(h[0] for h in hits)
        if not per_pkg:
            return []
        records = {r.id: r for r in self.db.records(ids) if r.origin == "osv"}
        alias_ids = set(ids)
        for r in records.values():
            alias_ids.update(r.aliases)
        reverse = self.db.aliases_of(alias_ids)
        nvd = {r.id: r for r in self.db.records(alias_ids) if r.origin == "nvd" and not r.withdrawn}
        out: list[Match] = []
        for pkg, hits in per_pkg:
            out.extend(self._merge(pkg, hits, records, reverse, nvd))
        out.sort(key=lambda m: (-rank(m.severity), m.package, m.vulnerability))
        return out

    def _merge(
        self,
        pkg: Package,
        hits: list[tuple[str, str, str]],
        records: dict[str, Any],
        reverse: dict[str, set[str]],
        nvd: dict[str, Any],
    ) -> Iterable[Match]:
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def union(a: str, b: str) -> None:
            parent[find(a)] = find(b)

        umbrellas: list[str] = []
        for vid in {h[0] for h in hits}:
            find(vid)
            rec = records.get(vid)
            for a in rec.aliases if rec else []:
                union(vid, a)  # two matched records naming the same CVE meet at that node
            for other in reverse.get(vid, ()):
                union(vid, other)  # a record elsewhere that names this one as its alias
            upstream = rec.upstream if rec else []
            if len(upstream) == 1:
                union(vid, upstream[0])  # DEBIAN-CVE-X → upstream CVE-X: the same vulnerability
            elif upstream:
                umbrellas.append(vid)  # a DSA/DLA covering several CVEs
        groups: dict[str, list[tuple[str, str, str]]] = {}
        for h in hits:
            groups.setdefault(find(h[0]), []).append(h)
        # An advisory covering several CVEs is folded into the per-CVE rows it covers (as an alias,
        # its fix counting too) instead of being reported a second time on its own.
        extra: dict[str, set[str]] = {}
        for u in umbrellas:
            home = find(u)
            targets = {find(c) for c in records[u].upstream} & (set(groups) - {home})
            if not targets or len(groups[home]) != 1:
                continue
            hit = groups.pop(home)[0]
            for t in targets:
                groups[t].append(hit)
                extra.setdefault(t, set()).update(x for x in parent if find(x) == home)
        for root in groups:
            members = {x for x in parent if find(x) == root} | extra.get(root, set())
            canonical = _canonical(members)
            candidates: list[tuple[str, float | None]] = []
            fixed_versions: list[str] = []
            summary = ""
            scheme = scheme_of(pkg.ecosystem)
            for vid, fixed, entry_sev in groups[root]:
                rec = records.get(vid)
                if fixed:
                    fixed_versions.append(fixed)
                if rec is not None:
                    candidates.append((rec.severity, rec.score))
                    summary = summary or rec.summary
                candidates.append((normalize_rating(entry_sev), None))
            candidates.extend((n.severity, n.score) for m in members if (n := nvd.get(m)) is not None)
            best_sev, best_score = _strongest(candidates)
            yield Match(
                package=pkg.name,
                version=pkg.version,
                ecosystem=pkg.ecosystem,
                source_package=pkg.source_name,
                vulnerability=canonical,
                aliases=sorted(members - {canonical}),
                severity=best_sev or "unknown",
                fixed_version=_highest(scheme, fixed_versions),
                path=pkg.path,
                score=best_score,
                summary=summary,
                purl=pkg.purl,
            )


def _strongest(candidates: list[tuple[str, float | None]]) -> tuple[str, float | None]:
    """A CVSS-scored rating beats a stated one (the highest score wins); else the highest rating."""
    scored = [c for c in candidates if c[1] is not None and c[0]]
    if scored:
        return max(scored, key=lambda c: c[1] or 0.0)
    rated = [c for c in candidates if c[0]]
    return (max(rated, key=lambda c: rank(c[0]))[0], None) if rated else ("", None)


def _canonical(ids: set[str]) -> str:
    """The name a merged vulnerability is reported under: its CVE, else GHSA, else the first id."""
    for prefix in ("CVE-", "GHSA-"):
        named = sorted(i for i in ids if i.startswith(prefix))
        if named:
            return named[0]
    return sorted(ids)[0]


def _highest(scheme: str, versions: list[str]) -> str:
    """The highest fixed version (every merged advisory is satisfied by it)."""
    best = ""
    for v in versions:
        if not best:
            best = v
            continue
        try:
            if key(scheme, best) < key(scheme, v):
                best = v
        except VersionError:
            continue
    return best
