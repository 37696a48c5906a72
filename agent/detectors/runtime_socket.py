# SPDX-License-Identifier: Apache-2.0
"""RG-0011: a container opens or connects to a container-runtime API socket (docker.sock …).

Whoever talks to docker.sock/containerd.sock controls every container and, through a
privileged one, the host. Sources: ``FileOpen`` of a path whose basename is a runtime socket,
a ``NetConnect`` on an AF_UNIX socket whose peer path is one (whatever the client: curl
--unix-socket, socat, nc -U, a static binary), and audit events naming the path (PATH records,
or the hex ``saddr`` of a SOCKADDR record). An ``always`` rule: no learned per-image allowance
lowers it; images that use the socket on purpose are exempted by the operator.
"""

from __future__ import annotations

import socket

from agent.detectors.spec import Detector, DetectorState, basename
from agent.events import AuditEvent, FileOpen, NetConnect
from agent.findings import Finding, Severity


def unix_path_from_saddr(saddr_hex: str) -> str:
    """The path of a hex-encoded ``struct sockaddr_un`` (audit SOCKADDR ``saddr``), or ""."""
    try:
        raw = bytes.fromhex(saddr_hex)
    except ValueError:
        return ""
    if len(raw) < 3 or int.from_bytes(raw[:2], "little") != socket.AF_UNIX:
        return ""
    path = raw[2:]
    if path[:1] == b"\0":  # abstract namespace: not a filesystem socket
        return ""
    return path.split(b"\0", 1)[0].decode("utf-8", "replace")


def _candidates(ev: FileOpen | NetConnect | AuditEvent) -> tuple[str, str, list[str]]:
    if isinstance(ev, FileOpen):
        return ev.comm, "open", [ev.path]
    if isinstance(ev, NetConnect):
        if ev.family != socket.AF_UNIX:
            return ev.comm, ev.op, []
        return ev.comm, ev.op, [ev.daddr]
    paths = list(ev.paths)
    sock = unix_path_from_saddr(ev.fields.get("saddr", ""))
    if sock:
        paths.append(sock)
    return ev.comm, ev.syscall or "audit", paths


def evaluate(ev: FileOpen | NetConnect | AuditEvent, state: DetectorState) -> Finding | None:
    # The common cases first, without building the candidates: an open whose basename is no
    # runtime socket, a connect that is not AF_UNIX.
    if isinstance(ev, FileOpen):
        if basename(ev.path) not in state.settings.runtime_sockets:
            return None
    elif isinstance(ev, NetConnect) and ev.family != socket.AF_UNIX:
        return None
    comm, how, paths = _candidates(ev)
    for path in paths:
        name = basename(path)
        if name and name in state.settings.runtime_sockets:
            return SPEC.finding(
                ev,
                f"{comm or 'process'} accessed the container runtime socket {path} ({how})",
                {
                    "comm": comm,
                    "path": path,
                    "how": how,
                    "source": ev.source if hasattr(ev, "source") else "audit",
                },
                subject=path,
            )
    return None


SPEC = Detector(
    id="RG-0011",
    name="runtime_socket_access",
    events=(FileOpen, NetConnect, AuditEvent),
    severity=Severity.CRITICAL,
    mitre="T1609",
    description="A containerised process opens or connects to docker.sock, containerd.sock, "
    "crio.sock or podman.sock: control of the runtime, i.e. of every container and the host.",
    false_positives="Allowed by default: nothing (an `always` rule: learned allowances never lower "
    "it). CI runners (docker-in-docker clients), Portainer, Traefik/watchtower and other tools "
    "mounted with the Docker socket on purpose: disable RG-0011 for them, or exempt their "
    "containers (response.allow_images). Connects on AF_UNIX come from the eBPF files probe "
    "(response.kernel_stop.connect_paths and ebpf.sensitive_paths) or an audit `connect` rule.",
    evaluate=evaluate,
    always=True,
)
