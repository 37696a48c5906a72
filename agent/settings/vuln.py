# SPDX-License-Identifier: Apache-2.0
"""Config section ``vuln``: scans of containers (with ``vuln.gmp``) and the database (``vuln.db``).

Before 0.3 these were two sections, ``scan`` and ``vulndb``; ``agent.config`` still accepts them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from agent.settings.base import Section


class GmpSettings(Section):
    """Greenbone/OpenVAS over GMP (python-gvm): off unless a site runs a gvmd."""

    enabled: bool = False
    # Either a Unix socket (gvmd's default) or a TLS host:port; the socket wins when both are set.
    socket_path: Path = Path("/run/gvmd/gvmd.sock")
    # gvmd's TLS host when not using socket_path; '' = use the Unix socket.
    host: str = ""
    # gvmd's TLS port.
    port: int = Field(default=9390, gt=0, lt=65536)
    # The GMP user the agent authenticates as.
    username: str = "admin"
    # The password is read from this file (mode 0600), never written in agent.yaml.
    password_file: Path = Path("/etc/riskguard/gmp.password")
    # The scan config of the tasks the agent creates (default: Full and fast).
    scan_config_id: str = "daba56c8-73ec-11df-a475-002264764cea"  # "Full and fast"
    # The scanner of those tasks (default: OpenVAS Default).
    scanner_id: str = "08b69003-5fc2-4037-a479-93b440211c73"  # "OpenVAS Default"
    # The port list of the targets (default: All IANA assigned TCP).
    port_list_id: str = "33d0cd82-57c6-11e1-8ed1-406186ea4fc5"  # "All IANA assigned TCP"
    # Seconds between polls of a running task.
    poll_seconds: float = Field(default=30.0, gt=0)
    # A task running longer than this is stopped and reported as failed.
    timeout_seconds: float = Field(default=7200.0, gt=0)
    # Results below this CVSS score are not reported as findings.
    min_score: float = Field(default=4.0, ge=0, le=10)


class VulnDbSettings(Section):
    """The local OSV/NVD vulnerability database."""

    # The local vulnerability database (sqlite), filled by riskguard-agent vulndb import|update;
    # a relative path is under state.dir.
    path: Path = Path("vulndb.sqlite")
    # Public OSV ecosystem exports fetched by ``riskguard-agent vulndb update`` (never by tests).
    sources: tuple[str, ...] = (
        "https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip",
        "https://osv-vulnerabilities.storage.googleapis.com/Alpine/all.zip",
        "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip",
        "https://osv-vulnerabilities.storage.googleapis.com/npm/all.zip",
        "https://osv-vulnerabilities.storage.googleapis.com/crates.io/all.zip",
    )
    # Where downloaded exports are kept between updates (conditional GET by Last-Modified); a
    # relative path is under state.dir.
    download_dir: Path = Path("vulndb-sources")
    # Longest time one vulndb update may take.
    update_timeout_seconds: float = Field(default=600.0, gt=0)
    # A database last imported longer ago than this makes scans warn that newer
    # vulnerabilities are missing (riskguard-agent scan on stderr, the agent in its log).
    stale_after_seconds: float = Field(default=7 * 86400.0, gt=0)


class VulnSettings(Section):
    """Vulnerability scans of running containers, on start and on a schedule; optional OpenVAS (GMP)."""

    enabled: bool = True
    # Every running container is rescanned this often (cached by image id; a database change
    # rematches without rereading files).
    interval_seconds: float = Field(default=21600.0, gt=0)
    # Scan a container as soon as the runtime registry reports it started.
    on_start: bool = True
    # An image's cached inventory is re-read from the filesystem after this age; in between,
    # interval scans only re-match the cached inventory (cheap) when the database changed.
    inventory_max_age_seconds: float = Field(default=86400.0, gt=0)
    # Findings are reported for vulnerabilities at or above this rating.
    report_min_severity: str = Field(default="medium", pattern="^(low|medium|high|critical|unknown)$")
    # List each container's listening sockets from its netns on every scan.
    list_services: bool = True
    gmp: GmpSettings = GmpSettings()
    db: VulnDbSettings = VulnDbSettings()
