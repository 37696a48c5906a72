# SPDX-License-Identifier: Apache-2.0
"""Config sections of the privileged sources: ``ebpf``, ``audit``, ``procfs``, ``capture``.

A source with a section of its own declares its model here and adds one field to
``SourceSections`` (the last class of this module): ``AgentConfig`` includes it, so the section is
parsed, checked (unknown keys are dotted-path errors) and documented by ``make config`` with no
edit to ``agent/config.py``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from agent.settings.base import Section


class EbpfSettings(Section):
    """eBPF probes (bcc): in-kernel syscall counts per container; exec, network, sensitive-open and
    privilege events."""

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
    # Unlinks and renames below these prefixes are reported (FileChange), as are those of files
    # named *_history / *.history anywhere; /tmp is deliberately not watched.
    change_watch_prefixes: tuple[str, ...] = ("/var/log/", "/root/", "/home/")
    # Pages per probe output buffer (ring buffer, or perf buffer per CPU); a power of two.
    ring_buffer_pages: int = Field(default=64, ge=8, le=4096)
    # Events per second one container may send to user space, all probes together; above it
    # events are dropped in the kernel and counted (status: ebpf.rate_limited).
    max_events_per_second_per_container: int = Field(default=2000, ge=10)
    # Which probes of probes/ to load (syscalls, exec, net, files, priv).
    probes: tuple[str, ...] = ("syscalls", "exec", "net", "files", "priv")
    # Size of the monitored-cgroup map (and of the per-container rate-limit maps).
    max_cgroups: int = Field(default=4096, ge=16, le=65536)
    # Arguments copied per exec event (each up to 128 bytes; more are marked "...").
    argv_max: int = Field(default=16, ge=1, le=16)
    # The reader is woken by the first record after a quiet gap of this many ms and drains the
    # records of a burst once per gap (a busy container does not pay a wakeup per record; an idle
    # reader sleeps); 0: the kernel's default wakeups (when the reader has caught up).
    poll_interval_ms: int = Field(default=5, ge=0, le=1000)

    @field_validator("ring_buffer_pages")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v & (v - 1):
            raise ValueError("must be a power of two (the kernel's ring and perf buffers need one)")
        return v

    @field_validator("probes")
    @classmethod
    def _known_probes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        known = ("syscalls", "exec", "net", "files", "priv")
        bad = [p for p in v if p not in known]
        if bad:
            raise ValueError(f"unknown probe(s) {bad}; known: {list(known)}")
        return v


class AuditSettings(Section):
    """Audit records: a read-only NETLINK_AUDIT multicast listener, or audit.log."""

    enabled: bool = True
    # netlink: read-only multicast listener (AUDIT_NLGRP_READLOG); file: tail log_file.
    mode: str = Field(default="netlink", pattern="^(netlink|file)$")
    # audit.log to tail when mode is file (rotation is followed).
    log_file: Path = Path("/var/log/audit/audit.log")
    # Install `rules` (tagged -k rule_key) at start, remove them at stop. Every armed syscall
    # rule slows every syscall on the host: see docs/bench/sources.md.
    manage_rules: bool = False
    # The key (-k) that tags every audit rule the agent installs; rules with it are removed at start and exit.
    rule_key: str = Field(default="riskguard", pattern=r"^[A-Za-z0-9_.:-]{1,31}$")
    # auditctl rule lines the agent installs when manage_rules is true (each armed rule slows
    # every syscall: see docs/sources.md).
    rules: tuple[str, ...] = ("-a always,exit -F arch=b64 -S execve,execveat",)
    # An event without EOE is complete this long after its first record.
    event_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # Audit events accepted per container per second; the rest are counted as dropped.
    max_events_per_second_per_container: int = Field(default=500, ge=1)
    # SO_RCVBUF of the netlink listener (bursts beyond it are counted as lost by the kernel).
    receive_buffer_bytes: int = Field(default=8 * 1024 * 1024, ge=65536)


class ProcfsSettings(Section):
    """Per-container /proc snapshots: process tree, fds, CPU, memory, listening sockets, suspicious executables."""

    enabled: bool = True
    # Snapshot period; 0 follows behavior.window_seconds.
    interval_seconds: float = Field(default=0.0, ge=0)
    # Bound the work per container per snapshot (tree, fds).
    max_processes_per_container: int = Field(default=2000, ge=1)


class CaptureSettings(Section):
    """Per-container packet capture in the container's netns: flow features per window, optional pcap evidence."""

    enabled: bool = False
    # Kernel BPF filter (tcpdump syntax) applied to each container's capture socket.
    bpf_filter: str = "ip or ip6"
    # Window period; 0 follows behavior.window_seconds.
    interval_seconds: float = Field(default=0.0, ge=0)
    # Bytes kept of each captured packet (headers and DNS questions fit in the default).
    snaplen: int = Field(default=512, ge=64, le=65535)
    # Packets decoded per container per second; the rest are counted as dropped.
    max_packets_per_second_per_container: int = Field(default=20000, ge=1)
    # Keep a rolling pcap per container with tcpdump (-C/-W) as evidence.
    pcap_evidence: bool = False
    # Where pcap rings go; a relative path is under state.dir.
    pcap_dir: Path = Path("pcap")
    # Size of one pcap file, MB (tcpdump -C).
    pcap_file_mb: int = Field(default=8, ge=1)
    # pcap files kept per container (tcpdump -W): the ring's bound is pcap_file_mb x pcap_files.
    pcap_files: int = Field(default=4, ge=1)


class SourceSections(Section):
    """The sources' sections, after the agent's own in ``agent.yaml`` (``AgentConfig`` includes
    them). A new source's section is one more field here, in the order it should be documented."""

    ebpf: EbpfSettings = EbpfSettings()
    audit: AuditSettings = AuditSettings()
    procfs: ProcfsSettings = ProcfsSettings()
    capture: CaptureSettings = CaptureSettings()
