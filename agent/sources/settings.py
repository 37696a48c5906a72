# SPDX-License-Identifier: Apache-2.0
"""Config sections of the privileged sources: ``ebpf``, ``audit``, ``procfs``, ``capture``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from agent.settings_base import Section


class EbpfSettings(Section):
    enabled: bool = True
    # Path prefixes whose opens travel to user space (filtered in the kernel).
    sensitive_paths: tuple[str, ...] = (
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/sudoers",
        "/root/.ssh",
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/containerd/containerd.sock",
    )
    # Opens for writing below these prefixes are reported too.
    sensitive_write_prefixes: tuple[str, ...] = ("/etc/",)
    ring_buffer_pages: int = Field(default=64, ge=8, le=4096)
    max_events_per_second_per_container: int = Field(default=2000, ge=10)


class AuditSettings(Section):
    enabled: bool = True
    mode: str = Field(default="netlink", pattern="^(netlink|file)$")
    log_file: Path = Path("/var/log/audit/audit.log")
    manage_rules: bool = False
    rule_key: str = "riskguard"


class ProcfsSettings(Section):
    enabled: bool = True


class CaptureSettings(Section):
    enabled: bool = False
    pcap_evidence: bool = False
    pcap_dir: Path = Path("/var/lib/riskguard/pcap")
    pcap_file_mb: int = Field(default=8, ge=1)
    pcap_files: int = Field(default=4, ge=1)
