# SPDX-License-Identifier: Apache-2.0
"""udica-style SELinux CIL policies per container, compile-checked with secilc.

``generate`` turns a container's inspect data (mounts and their access mode, published ports,
capabilities, devices) and its allowlist (egress ports become ``name_connect``) into one block
that inherits the shipped templates (``config/selinux/templates``), as udica does::

    (block rg_web_1a2b3c4d5e6f
        (blockinherit container)
        (blockinherit restricted_net_container)
        (allow process process (capability (chown net_bind_service)))
        (allow process http_port_t (tcp_socket (name_bind)))
        ...)

File and port types come from the host's policy when SELinux is enabled (``selinux.matchpathcon``)
and otherwise from a small table of reference-policy names, which ``config/selinux/base.cil``
declares so that ``secilc`` can compile the policy standalone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.network.allowlist import Allowlist
from agent.resources import data_dir

TEMPLATES_DIR = data_dir("config", "selinux")

# Docker's default capability set (moby oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = [
    "chown",
    "dac_override",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "net_bind_service",
    "net_raw",
    "sys_chroot",
    "mknod",
    "audit_write",
    "setfcap",
]
CAP2 = {
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
}
ALL_CAPS = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    *sorted(CAP2),
]

# Reference-policy port labels (the subset base.cil declares), else reserved/unreserved.
PORT_TYPES: dict[tuple[str, int], str] = {
    ("tcp", 80): "http_port_t",
    ("tcp", 443): "http_port_t",
    ("tcp", 8008): "http_port_t",
    ("tcp", 8009): "http_port_t",
    ("tcp", 8443): "http_port_t",
    ("tcp", 8080): "http_cache_port_t",
    ("tcp", 22): "ssh_port_t",
    ("tcp", 53): "dns_port_t",
    ("udp", 53): "dns_port_t",
    ("tcp", 25): "smtp_port_t",
    ("udp", 123): "ntp_port_t",
    ("tcp", 5432): "postgresql_port_t",
    ("tcp", 3306): "mysqld_port_t",
    ("tcp", 6379): "redis_port_t",
    ("tcp", 27017): "mongod_port_t",
}

# Path prefix → file type when the host has no policy to ask (longest prefix wins).
PATH_TYPES: tuple[tuple[str, str], ...] = (
    ("/var/log", "var_log_t"),
    ("/var/lib", "var_lib_t"),
    ("/var/run", "var_run_t"),
    ("/run", "var_run_t"),
    ("/var", "var_t"),
    ("/etc", "etc_t"),
    ("/usr", "usr_t"),
    ("/tmp", "tmp_t"),
    ("/home", "user_home_t"),
    ("/root", "user_home_t"),
    ("/proc", "proc_t"),
    ("/sys", "sysfs_t"),
    ("/dev/shm", "tmpfs_t"),
)

DEVICE_TYPES: dict[str, str] = {
    "/dev/null": "null_device_t",
    "/dev/zero": "zero_device_t",
    "/dev/random": "random_device_t",
    "/dev/urandom": "urandom_device_t",
    "/dev/net/tun": "tun_tap_device_t",
    "/dev/fuse": "fuse_device_t",
    "/dev/kvm": "kvm_device_t",
    "/dev/tty": "tty_device_t",
}

# Permission sets of udica's generator (udica/policy.py: perms).
RO_DIR = "getattr search open read lock ioctl"
RW_DIR = "open read getattr lock search ioctl add_name remove_name write"
RO_FILE = "getattr read ioctl lock open"
RW_FILE = "getattr read write append ioctl lock map open create"
RO_SOCK = "getattr read open"
RW_SOCK = "append getattr open read write"
DEV_PERMS = "getattr read write open ioctl lock append"


class SelinuxError(Exception):
    """A generated policy did not compile (secilc's message is kept)."""


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    text: str


def block_name(container_name: str, container_id: str) -> str:
    """A CIL identifier for the container: ``rg_<name>_<id12>`` (letters, digits, _)."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", container_name)[:40].strip("_") or "container"
    return f"rg_{base}_{container_id[:12]}"


def _file_type(path: str, lookup: Any = None) -> str:
    if lookup is not None:
        try:
            ctx = str(lookup(path))
            parts = ctx.split(":")
            if len(parts) >= 3 and re.fullmatch(r"[A-Za-z0-9_]+", parts[2]):
                return parts[2]
        except (OSError, ValueError):
            pass
    best = ("", "default_t")
    for prefix, typ in PATH_TYPES:
        if (path == prefix or path.startswith(prefix + "/")) and len(prefix) > len(best[0]):
            best = (prefix, typ)
    return best[1]


def port_type(protocol: str, port: int) -> str:
    known = PORT_TYPES.get((protocol, port))
    if known:
        return known
    return "reserved_port_t" if port < 1024 else "unreserved_port_t"


def capabilities(details: Mapping[str, Any]) -> list[str]:
    """The effective capability names (lower case, no ``cap_``) from cap_add/cap_drop/privileged."""

    def norm(values: Iterable[Any]) -> set[str]:
        out = set()
        for v in values or ():
            s = str(v).lower()
            out.add(s[4:] if s.startswith("cap_") else s)
        return out

    if details.get("privileged"):
        return list(ALL_CAPS)
    add, drop = norm(details.get("cap_add") or ()), norm(details.get("cap_drop") or ())
    caps = set() if "all" in drop else set(DOCKER_DEFAULT_CAPS) - drop
    caps |= set(ALL_CAPS) if "all" in add else (add & set(ALL_CAPS))
    return [c for c in ALL_CAPS if c in caps]


def _published(details: Mapping[str, Any]) -> list[tuple[str, int]]:
    out = set()
    ports = details.get("ports") or {}
    if isinstance(ports, Mapping):
        for spec, bindings in ports.items():
            if not bindings:
                continue
            port, _, proto = str(spec).partition("/")
            if port.isdigit() and proto in ("tcp", "udp", ""):
                out.add((proto or "tcp", int(port)))
    return sorted(out)


def generate(name: str, details: Mapping[str, Any], allow: Allowlist | None = None, lookup: Any = None) -> Policy:
    """The CIL policy for one container; ``lookup(path) -> context`` asks the host's policy
    (``selinux.matchpathcon``-like) when SELinux is enabled."""
    lines = [f"(block {name}", "    (blockinherit container)"]
    egress = [(r.protocol, p) for r in (allow.egress if allow else ()) for p in r.ports if r.protocol in ("tcp", "udp")]
    any_port_egress = allow is not None and any(not r.ports for r in allow.egress)
    lines.append(
        "    (blockinherit net_container)"
        if allow is None or any_port_egress
        else "    (blockinherit restricted_net_container)"
    )
    caps = capabilities(details)
    cap1 = [c for c in caps if c not in CAP2]
    cap2 = [c for c in caps if c in CAP2]
    if cap1:
        lines.append(f"    (allow process process (capability ({' '.join(cap1)})))")
    if cap2:
        lines.append(f"    (allow process process (capability2 ({' '.join(cap2)})))")
    for proto, port in _published(details):
        lines.append(f"    (allow process {port_type(proto, port)} ({proto}_socket (name_bind)))")
    lines += [
        f"    (allow process {port_type(r.protocol, port)} ({r.protocol}_socket (name_bind)))"
        for r in (allow.ingress if allow else ())
        for port in r.ports
        if r.protocol in ("tcp", "udp")
    ]
    for proto, port in sorted(set(egress)):
        if proto == "tcp":
            lines.append(f"    (allow process {port_type(proto, port)} (tcp_socket (name_connect)))")
    for m in details.get("mounts") or ():
        if not isinstance(m, Mapping):
            continue
        src = str(m.get("source") or "")
        if not src.startswith("/"):
            continue
        typ = _file_type(src, lookup)
        rw = bool(m.get("rw"))
        # Paths come from the container's inspect data: keep them on one comment line.
        note = f"{src} -> {m.get('destination', '')}"
        note = "".join(ch if ch.isprintable() else "?" for ch in note)
        lines.append(f"    ; {note} ({'rw' if rw else 'ro'})")
        lines.append(f"    (allow process {typ} (dir ({RW_DIR if rw else RO_DIR})))")
        lines.append(f"    (allow process {typ} (file ({RW_FILE if rw else RO_FILE})))")
        lines.append(f"    (allow process {typ} (lnk_file (getattr read)))")
        lines.append(f"    (allow process {typ} (sock_file ({RW_SOCK if rw else RO_SOCK})))")
    for dev in details.get("devices") or ():
        path = str(dev.get("PathOnHost", "") if isinstance(dev, Mapping) else dev).split(":")[0]
        if path.startswith("/dev/"):
            typ = DEVICE_TYPES.get(path, "device_t")
            lines.append(f"    (allow process {typ} (chr_file ({DEV_PERMS})))")
            lines.append(f"    (allow process {typ} (blk_file ({DEV_PERMS})))")
    lines.append(")")
    # One allow per line, duplicates removed, order kept.
    seen: set[str] = set()
    out: list[str] = []
    for ln in lines:
        if ln.lstrip().startswith(";") or ln not in seen:
            out.append(ln)
            seen.add(ln)
    return Policy(name, "\n".join(out) + "\n")


def template_files(templates: Path = TEMPLATES_DIR) -> list[Path]:
    """The base policy then every template, in a stable order."""
    return [templates / "base.cil", *sorted((templates / "templates").glob("*.cil"))]


def compile_check(policy_file: Path, templates: Path = TEMPLATES_DIR, secilc: str | None = None) -> None:
    """Compile base + templates + the policy with secilc into a scratch dir; raise on error."""
    binary = secilc or shutil.which("secilc")
    if binary is None:
        raise SelinuxError("secilc is not installed")
    with tempfile.TemporaryDirectory(prefix="rg-secilc-") as tmp:
        proc = subprocess.run(
            [
                binary,
                "-o",
                f"{tmp}/policy",
                "-f",
                f"{tmp}/file_contexts",
                *map(str, template_files(templates)),
                str(policy_file),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp,
        )
    if proc.returncode != 0:
        raise SelinuxError((proc.stderr or proc.stdout).strip()[:2000])


def selinux_enabled(sys_root: Path) -> bool:
    """SELinux is enabled when selinuxfs exposes ``enforce`` (permissive or enforcing)."""
    return (sys_root / "fs" / "selinux" / "enforce").exists()


def load(policy_file: Path, templates: Path = TEMPLATES_DIR) -> None:
    """``semodule -i`` the templates and the policy (only on an SELinux host)."""
    tmpl = sorted((templates / "templates").glob("*.cil"))
    proc = subprocess.run(
        ["semodule", "-i", str(policy_file), *map(str, tmpl)], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise SelinuxError(f"semodule: {proc.stderr.strip()}")
