# SPDX-License-Identifier: Apache-2.0
"""``riskguard-agent scan rootfs|image|container`` and ``riskguard-agent vulndb import|status|update``.

``scan --format``: ``table`` (default), ``json`` (a list of ``{"package", "version",
"ecosystem", "source_package", "vulnerability", "aliases", "severity", "fixed_version", "path"}``),
``sarif`` (SARIF 2.1.0) or ``cyclonedx`` (CycloneDX 1.5 JSON), on stdout only; logs, progress and
warnings go to stderr. ``--severity CRITICAL,HIGH`` keeps those severities (as Trivy;
``UNKNOWN`` is a severity of its own). Exit codes: 0 done, ``--exit-code N`` when a
vulnerability of the kept severities was found, 2 bad input (missing path, unknown container,
unreadable or empty database), 3 ``vulndb update`` without network. A database older than
``vuln.db.stale_after_seconds`` gives a warning on stderr.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Any

import structlog

from agent.console import print_json, print_table
from agent.hostfs import HostPaths
from agent.vuln.db import VulnDB
from agent.vuln.report import LEVELS, cyclonedx, db_health, keep, parse_severities, sarif, stale_warning
from agent.vuln.rootfs import DirRoot, RootError
from agent.vuln.scanner import ScanError, ScanResult, scan_container, scan_image, scan_root

log = structlog.get_logger("agent.vuln")


def _config(args: argparse.Namespace) -> Any:
    """The agent config from ``--config`` / ``RISKGUARD_CONFIG`` / the default path."""
    from agent.config import ConfigError, config_path_from_env, load_config

    try:
        config, _source = load_config(config_path_from_env(getattr(args, "config", None)))
    except ConfigError as exc:
        print(f"error: config {exc.source}: {'; '.join(exc.problems)}", file=sys.stderr)
        raise SystemExit(2) from None
    return config


def _state_path(config: Any, key: str) -> Path:
    """``vuln.db.<key>`` resolved like the daemon does (a relative path is under ``state.dir``)."""
    return HostPaths().with_state(config.state.dir).in_state(getattr(config.vuln.db, key))


def _runtime(args: argparse.Namespace) -> tuple[HostPaths, str]:
    """The host's paths under the config's ``host.root`` (``/host`` in the agent's image) and its
    ``runtime.docker_url``, so an image or container scan asks the daemon's dockerd and reads
    ``/proc`` and the overlay2 layers where the daemon does; the real host and the default URL
    when no config loads (``--db`` given)."""
    from agent.config import ConfigError, config_path_from_env, load_config
    from agent.settings.core import RuntimeSettings

    try:
        config, _source = load_config(config_path_from_env(getattr(args, "config", None)))
    except ConfigError:
        return HostPaths(), RuntimeSettings().docker_url
    return HostPaths.under(config.host.root), config.runtime.docker_url


def _open_db(args: argparse.Namespace, must_exist: bool) -> VulnDB | None:
    path = Path(args.db) if args.db else _state_path(_config(args), "path")
    if must_exist and not path.exists():
        print(f"error: no vulnerability database at {path} (run `riskguard-agent vulndb import`)", file=sys.stderr)
        return None
    try:
        return VulnDB(path)
    except Exception as exc:  # sqlite3.DatabaseError, PermissionError: a clear line, no traceback
        print(f"error: cannot open vulnerability database {path}: {exc}", file=sys.stderr)
        return None


def emit(result: ScanResult, fmt: str, severities: frozenset[str] = frozenset(LEVELS)) -> int:
    """Print the report in ``fmt``; return how many vulnerabilities of ``severities`` it holds."""
    matches = keep(result.matches, severities)
    rows = [{**m.report_row(), "severity": m.severity or "unknown"} for m in matches]
    if fmt == "json":
        print_json(rows)
    elif fmt == "sarif":
        print_json(sarif(result, matches))
    elif fmt == "cyclonedx":
        print_json(cyclonedx(result, matches))
    else:
        table = [{**r, "aliases": ",".join(r["aliases"][:3]) + ("…" if len(r["aliases"]) > 3 else "")} for r in rows]
        print_table(table, ["package", "version", "vulnerability", "severity", ("fixed_version", "fixed"), "aliases"])
        s = result.summary()
        shown = (
            "" if len(matches) == len(result.matches) else f" ({len(matches)} of them {','.join(sorted(severities))})"
        )
        print(
            f"\n{s['target']}: {s['os'] or 'unknown OS'}, {s['packages']} packages, "
            f"{s['vulnerabilities']} vulnerabilities {s['by_severity']}{shown}",
            file=sys.stderr,
        )
    return len(matches)


def _stale_after(args: argparse.Namespace) -> float:
    """``vuln.db.stale_after_seconds`` from the config; with ``--db`` and a config that does not
    load, the default (the scan needs no config then)."""
    if not args.db:
        return float(_config(args).vuln.db.stale_after_seconds)
    from agent.config import ConfigError, config_path_from_env, load_config
    from agent.settings.vuln import VulnDbSettings

    try:
        config, _source = load_config(config_path_from_env(getattr(args, "config", None)))
    except ConfigError:
        return float(VulnDbSettings().stale_after_seconds)
    return float(config.vuln.db.stale_after_seconds)


def check_db(db: VulnDB, args: argparse.Namespace) -> bool:
    """Refuse an empty database (a scan against it would say "0 vulnerabilities"); warn on
    stderr when it is older than ``vuln.db.stale_after_seconds``."""
    stale_after = _stale_after(args)
    records, age = db_health(db)
    if records == 0:
        print(
            f"error: the vulnerability database {db.path} holds no records: a scan would report "
            "0 vulnerabilities whatever is installed (run `riskguard-agent vulndb import` or `vulndb update`)",
            file=sys.stderr,
        )
        return False
    if warning := stale_warning(age, stale_after):
        print(warning, file=sys.stderr)
    return True


def cmd_scan(args: argparse.Namespace) -> int:
    try:
        severities = parse_severities(args.severity)
    except ValueError as exc:
        print(f"error: --severity: {exc}", file=sys.stderr)
        return 2
    db = _open_db(args, must_exist=True)
    if db is None:
        return 2
    try:
        if not check_db(db, args):
            return 2
        if args.kind == "rootfs":
            if not Path(args.target).is_dir():
                print(f"error: {args.target} is not a directory", file=sys.stderr)
                return 2
            root = DirRoot(args.target)
            try:
                result = scan_root(root, db, target=args.target)
            finally:
                root.close()
        elif args.kind == "image":
            result = scan_image(args.target, db, _runtime(args)[1])
        else:
            paths, docker_url = _runtime(args)
            result = scan_container(args.target, db, docker_url, paths)
    except (ScanError, RootError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    found = emit(result, args.format, severities)
    return int(args.exit_code) if found else 0


def cmd_import(args: argparse.Namespace) -> int:
    db = _open_db(args, must_exist=False)
    if db is None:
        return 2
    try:
        summary = db.import_paths(args.paths, progress=not args.quiet)
    except (sqlite3.Error, OSError) as exc:  # the database itself failed: nothing was half-written
        print(f"error: import into {db.path} failed and was rolled back: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    d = summary.to_dict()
    if args.json or args.format == "json":
        print_json(d)
    else:
        print(
            f"imported {d['records']} records from {d['sources']} sources in {d['seconds']}s: "
            f"{d['added']} added, {d['updated']} updated, {d['unchanged']} unchanged, "
            f"{d['withdrawn']} withdrawn, {d['malformed']} malformed skipped, "
            f"{d['sources_skipped']} sources unchanged",
            file=sys.stderr,
        )
    for e in summary.errors:
        print(f"error: {e}", file=sys.stderr)
    return 2 if summary.errors and not summary.records else 0


def cmd_status(args: argparse.Namespace) -> int:
    db = _open_db(args, must_exist=True)
    if db is None:
        return 2
    try:
        st = db.status()
    finally:
        db.close()
    if args.json or args.format == "json":
        print_json(st)
        return 0
    age = st["age_seconds"]
    print(f"database   {st['path']} ({st['size_bytes'] // 1024} KiB, generation {st['generation']})")
    print(f"records    {st['vulnerabilities']} OSV, {st['nvd_cves']} NVD CVEs, {st['withdrawn']} withdrawn")
    print(f"age        last import {'never' if age is None else f'{age}s ago'}, newest record {st['newest_modified']}")
    print_table(
        [{"ecosystem": k, "vulnerabilities": v} for k, v in st["ecosystems"].items()], ["ecosystem", "vulnerabilities"]
    )
    print()
    print_table(st["sources"], ["path", "kind", "records", "age_seconds"])
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from agent.vuln.update import UpdateError, update

    cfg = _config(args).vuln.db
    db = _open_db(args, must_exist=False)
    if db is None:
        return 2
    try:
        downloads = _state_path(_config(args), "download_dir")
        summary = update(db, cfg.sources, downloads, cfg.update_timeout_seconds, progress=not args.quiet)
    except UpdateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        db.close()
    print_json(summary.to_dict())
    return 0


def register(subparsers: Any) -> None:
    """Add ``scan rootfs|image|container`` and ``vulndb import|status|update``."""
    scan = subparsers.add_parser("scan", help="scan a rootfs, image or container for vulnerable packages")
    kinds = scan.add_subparsers(dest="kind", required=True)
    for kind, helptext in (
        ("rootfs", "a directory holding an unpacked root filesystem"),
        ("image", "a local Docker image (name or id) or a `docker save` tarball"),
        ("container", "a Docker container (id or name); read through /proc/<pid>/root below host.root"),
    ):
        p = kinds.add_parser(kind, help=helptext)
        p.add_argument("target", metavar="PATH" if kind == "rootfs" else "REF", help=helptext)
        p.add_argument("--db", help="vulnerability database (default: vuln.db.path from config)")
        p.add_argument(
            "--config", help="agent.yaml (vuln.db.path; host.root and runtime.docker_url for image and container)"
        )
        p.add_argument(
            "--format",
            choices=("table", "json", "sarif", "cyclonedx"),
            default="table",
            help="table (default), json rows, SARIF 2.1.0 or CycloneDX 1.5 JSON on stdout",
        )
        p.add_argument(
            "--severity",
            default=",".join(s.upper() for s in LEVELS),
            help="comma-separated severities to report (default all: UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL)",
        )
        p.add_argument(
            "--exit-code",
            type=int,
            default=0,
            help="exit with this code when a vulnerability of the reported severities is found (default 0)",
        )
        p.set_defaults(func=cmd_scan)

    vdb = subparsers.add_parser("vulndb", help="the local vulnerability database")
    sub = vdb.add_subparsers(dest="vulndb_command", required=True)
    p = sub.add_parser("import", help="import OSV JSON (zip, folder, file) and NVD CVE JSON 2.0 files")
    p.add_argument("paths", nargs="+", metavar="PATH", help="OSV zip exports, folders or JSON files; NVD feeds")
    p.add_argument("--db", help="vulnerability database (default: vuln.db.path from config)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--format", choices=("table", "json"), default="table", help="json: the summary on stdout")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--config", help="agent.yaml (for the vuln.db section)")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("status", help="sources, counts and age of the database")
    p.add_argument("--db", help="vulnerability database (default: vuln.db.path from config)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--config", help="agent.yaml (for the vuln.db section)")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("update", help="fetch the configured public OSV exports (needs network) and import")
    p.add_argument("--db", help="vulnerability database (default: vuln.db.path from config)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--config", help="agent.yaml (for the vuln.db section)")
    p.set_defaults(func=cmd_update)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m agent.vuln.cli``) until the top-level CLI wires ``register``."""
    from agent.logsetup import configure_logging

    configure_logging("warning", "json", stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="riskguard-agent")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
