# SPDX-License-Identifier: Apache-2.0
"""Network-facing scans through Greenbone/OpenVAS (GMP via python-gvm).

For one container address: create a target (the configured port list), a task (the configured
scan config and scanner), start it, poll the task until it is done, and import the report's
results (NVT, port, CVSS score, CVE references). The task and target are deleted afterwards so
repeated scans do not pile up in gvmd.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from gvm.connections import GvmConnection, TLSConnection, UnixSocketConnection
from gvm.errors import GvmError
from gvm.protocols.gmp import Gmp
from gvm.transforms import EtreeCheckCommandTransform

from agent.settings.vuln import GmpSettings

log = structlog.get_logger("agent.vuln")

DONE = "Done"
FAILED = ("Stopped", "Interrupted", "Stop Requested", "Delete Requested")


class GmpScanError(Exception):
    """The GMP scan could not run or finish (connection, authentication, task failure, timeout)."""


@dataclass(frozen=True, slots=True)
class GmpResult:
    """One result of a GMP report."""

    name: str
    host: str
    port: str
    oid: str
    score: float
    threat: str
    cves: list[str] = field(default_factory=list)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _connection(settings: GmpSettings, timeout: float) -> GvmConnection:
    if settings.host and not settings.socket_path.exists():
        return TLSConnection(hostname=settings.host, port=settings.port, timeout=timeout)
    return UnixSocketConnection(path=str(settings.socket_path), timeout=timeout)


def parse_results(report: Any) -> list[GmpResult]:
    """Results of a ``get_reports`` response (an lxml element)."""
    out = []
    for r in report.iterfind(".//report/report/results/result"):
        nvt = r.find("nvt")
        try:
            score = float(r.findtext("severity") or 0.0)
        except ValueError:
            score = 0.0
        cves = sorted(
            {
                ref.get("id", "")
                for ref in (nvt.iterfind("refs/ref") if nvt is not None else [])
                if ref.get("type") == "cve"
            }
        )
        out.append(
            GmpResult(
                name=(r.findtext("name") or "").strip(),
                host=(r.findtext("host") or "").strip(),
                port=(r.findtext("port") or "").strip(),
                oid=nvt.get("oid", "") if nvt is not None else "",
                score=score,
                threat=(r.findtext("threat") or "").strip(),
                cves=[c for c in cves if c],
                description=(r.findtext("description") or "").strip()[:500],
            )
        )
    return out


class GmpScanner:
    """Runs one GMP scan per call; the password comes from ``settings.password_file``."""

    def __init__(
        self,
        settings: GmpSettings,
        password: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        connection_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self._password = password
        self._sleep = sleep
        self._timeout = connection_timeout

    def _secret(self) -> str:
        if self._password is not None:
            return self._password
        try:
            return self.settings.password_file.read_text().strip()
        except OSError as exc:
            raise GmpScanError(f"cannot read GMP password file {self.settings.password_file}: {exc.strerror}") from None

    def scan(self, name: str, address: str) -> list[GmpResult]:
        """Scan ``address`` and return the report's results (raises ``GmpScanError``)."""
        s = self.settings
        label = f"riskguard {name} {address} {int(time.time())}"
        secret = self._secret()
        try:
            transform = EtreeCheckCommandTransform()  # type: ignore[no-untyped-call]
            with Gmp(_connection(s, self._timeout), transform=transform) as gmp:
                gmp.authenticate(s.username, secret)
                target_id = gmp.create_target(name=label, hosts=[address], port_list_id=s.port_list_id).get("id")
                task_id = gmp.create_task(
                    name=label, config_id=s.scan_config_id, target_id=target_id, scanner_id=s.scanner_id
                ).get("id")
                try:
                    report_id = gmp.start_task(task_id).findtext("report_id")
                    log.info("gmp_scan_started", container=name, address=address, task_id=task_id, report_id=report_id)
                    deadline = time.monotonic() + s.timeout_seconds
                    while True:
                        task = gmp.get_task(task_id).find("task")
                        status = task.findtext("status") if task is not None else ""
                        if status == DONE:
                            break
                        if status in FAILED:
                            raise GmpScanError(f"GMP task {task_id} ended {status}")
                        if time.monotonic() > deadline:
                            gmp.stop_task(task_id)
                            raise GmpScanError(f"GMP task {task_id} did not finish in {s.timeout_seconds}s")
                        self._sleep(s.poll_seconds)
                    report = gmp.get_report(report_id, ignore_pagination=True, details=True, filter_string="rows=-1")
                    results = parse_results(report)
                finally:
                    # Best effort: a failed delete leaves a task in gvmd's trash, not a broken scan.
                    try:
                        gmp.delete_task(task_id, ultimate=True)
                        gmp.delete_target(target_id, ultimate=True)
                    except GvmError as exc:
                        log.warning("gmp_cleanup_failed", task_id=task_id, error=str(exc))
        except GvmError as exc:
            raise GmpScanError(f"GMP: {exc}") from None
        except OSError as exc:
            raise GmpScanError(f"cannot reach gvmd: {exc}") from None
        log.info("gmp_scan_finished", container=name, address=address, results=len(results))
        return results
