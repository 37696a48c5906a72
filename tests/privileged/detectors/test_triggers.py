# SPDX-License-Identifier: Apache-2.0
"""Each rule detector triggered for real inside a container, seen through the eBPF source.

One container and one agent chain (eBPF source → enrichment → detectors → findings) per module:
bcc compiles the probes once, which costs seconds of CPU. Every test runs its behaviour with
``docker exec`` and waits for the finding of its detector about that container.

The container runs with ``seccomp=unconfined``: Docker's default seccomp profile rejects
mount/unshare/setns/bpf/init_module before the kernel's syscall tracepoints run, so such
attempts are invisible to tracepoint probes (they are also already blocked). Without the
profile the kernel itself refuses them (no capabilities), the tracepoints fire, and the
detectors report the failed attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.context import AgentContext
from agent.findings import Finding, Severity, Source
from agent.settings.detectors import DetectorsSettings
from tests.privileged.harness import DetectorChain, detector_chain, docker_exec, register, run_container
from tests.support import need_root, wait_for

HERE = Path(__file__).resolve().parent


@dataclass
class Chain:
    ctx: AgentContext
    container: Any  # docker Container
    chain: DetectorChain

    @property
    def findings(self) -> list[Finding]:
        return self.chain.findings

    @property
    def lock(self) -> threading.Lock:
        return self.chain.lock

    def exec(self, *cmd: str, user: str = "", stdin: str | None = None, timeout: float = 20) -> str:
        """Run ``cmd`` in the container (``docker exec``), return its combined output."""
        return docker_exec(self.container, *cmd, user=user, stdin=stdin, timeout=timeout)

    def wait(self, detector: str, pred: Callable[[Finding], bool] = lambda f: True, timeout: float = 15) -> Finding:
        def hit() -> Finding | None:
            return next((f for f in self.chain.of(detector, self.container.id) if pred(f)), None)

        found = wait_for(hit, timeout=timeout, what=f"a {detector} finding; got {self.summaries()}")
        assert isinstance(found, Finding)
        return found

    def summaries(self) -> list[str]:
        return self.chain.summaries()


@pytest.fixture(scope="module")
def chain(docker_client: Any, trigger_binary: Path) -> Iterator[Chain]:
    need_root()
    c = run_container(
        docker_client,
        "rgtest-det",
        ["sleep", "900"],
        security_opt=["seccomp=unconfined"],
        volumes={str(trigger_binary): {"bind": "/opt/rg", "mode": "ro"}},
    )
    try:
        # Learned allowances off: a fresh store means every image is learning, which caps
        # process-exec rule findings at MEDIUM (tests/unit/detectors/test_allowances.py).
        settings = DetectorsSettings(repeat_suppress_seconds=0, learned_allowances=False)
        with detector_chain("rg-detectors-", settings, before=lambda ch: register(ch.ctx, c)) as ch:
            yield Chain(ch.ctx, c, ch)
    finally:
        c.remove(force=True)


def _rule(f: Finding) -> None:
    assert f.source is Source.RULE and f.container is not None and f.mitre


def test_rg0001_web_shell_through_httpd_cgi(chain: Chain) -> None:
    # busybox httpd runs cgi-bin/sh (a link to busybox) with the POST body on stdin: a web
    # shell; the shell's parent is the web server.
    chain.exec("sh", "-c", "mkdir -p /var/www/cgi-bin && ln -sf /bin/busybox /var/www/cgi-bin/sh")
    chain.exec("httpd", "-p", "127.0.0.1:8080", "-h", "/var/www")
    out = chain.exec(
        "sh",
        "-c",
        "sleep 0.3; wget -q -O- --post-data 'echo Content-Type: text/plain; echo; id' http://127.0.0.1:8080/cgi-bin/sh",
    )
    assert "uid=0" in out, out
    f = chain.wait("RG-0001", lambda f: f.evidence["parent"] == "httpd")
    _rule(f)
    assert f.evidence["comm"] == "sh" and f.severity is Severity.HIGH
    # the docker exec shells above (parent containerd-shim) were not reported
    with chain.lock:
        assert all(x.evidence.get("parent") == "httpd" for x in chain.findings if x.detector_id == "RG-0001")


def test_rg0002_reading_shadow_and_writing_etc(chain: Chain) -> None:
    assert "root:" in chain.exec("cat", "/etc/shadow")
    f = chain.wait("RG-0002", lambda f: f.evidence["path"] == "/etc/shadow")
    _rule(f)
    assert f.evidence["write"] is False and f.evidence["comm"] == "cat" and f.mitre == "T1003.008"
    chain.exec("sh", "-c", "echo evil > /etc/rg-dropped.conf")
    w = chain.wait("RG-0002", lambda f: f.evidence["path"] == "/etc/rg-dropped.conf")
    assert w.evidence["write"] is True


def test_rg0003_package_manager(chain: Chain) -> None:
    chain.exec("dpkg", "-l")
    f = chain.wait("RG-0003")
    _rule(f)
    assert f.evidence["tool"] == "dpkg" and f.evidence["argv"][:2] == ["dpkg", "-l"]


def test_rg0004_exec_from_tmp_and_memfd(chain: Chain) -> None:
    chain.exec("sh", "-c", "cp /bin/busybox /tmp/true && /tmp/true")
    f = chain.wait("RG-0004", lambda f: f.evidence["filename"] == "/tmp/true")
    _rule(f)
    assert f.evidence["why"] == "writable_dir"
    out = chain.exec("/opt/rg/rgtrigger", "memfd", "/bin/busybox")
    assert "fexecve" not in out, out
    # The payload exits at once: the source may not read /proc/<pid>/exe in time, so the rule
    # sees either the memfd origin or the fexecve filename (/dev/fd/N).
    m = chain.wait("RG-0004", lambda f: f.evidence["why"] in ("memfd", "fd_exec"))
    assert m.mitre == "T1620"
    # A payload that keeps running is seen as memfd-backed (/proc/<pid>/exe is "/memfd:…").
    chain.exec("/opt/rg/rgtrigger", "memfd", "/bin/busybox", "sleep", "2")
    chain.wait("RG-0004", lambda f: f.evidence["why"] == "memfd" and f.evidence["argv"][:1] == ["sleep"])


def test_rg0005_netcat_exec_shell(chain: Chain) -> None:
    out = chain.exec(
        "sh", "-c", "nc -l -p 9001 -e sh & sleep 0.3; echo 'echo pwned-$((6*7)); sleep 1' | nc -w 3 127.0.0.1 9001"
    )
    assert "pwned-42" in out, out
    f = chain.wait("RG-0005", lambda f: f.evidence.get("how") == "-e sh")
    _rule(f)
    assert f.evidence["program"] == "nc"
    # nc then execs the shell with the accepted connection as its stdin/stdout
    s = chain.wait("RG-0005", lambda f: "stdio" in f.evidence)
    assert s.severity is Severity.CRITICAL and s.evidence["stdio"][0].startswith("socket:[")


def test_rg0006_setuid_root_from_non_root(chain: Chain) -> None:
    out = chain.exec("/opt/rg/rgtrigger", "setuid0", user="1000:1000")
    assert "setuid=-1" in out, out
    f = chain.wait("RG-0006", lambda f: f.evidence["syscall"] == "setuid")
    _rule(f)
    assert f.evidence["uid"] == 1000 and f.evidence["succeeded"] is False


def test_rg0007_ptrace_attach(chain: Chain) -> None:
    out = chain.exec("/opt/rg/rgtrigger", "ptrace")
    assert "ptrace=" in out, out
    f = chain.wait("RG-0007")
    _rule(f)
    assert f.evidence["request"] == "PTRACE_ATTACH" and f.evidence["comm"] == "rgtrigger"


def test_rg0008_namespace_escape_attempts(chain: Chain) -> None:
    chain.exec("mount", "-t", "tmpfs", "none", "/mnt")
    f = chain.wait("RG-0008", lambda f: f.evidence["syscall"] == "mount")
    _rule(f)
    assert f.evidence["succeeded"] is False  # no CAP_SYS_ADMIN
    chain.exec("nsenter", "-t", "1", "-m", "true")
    chain.wait("RG-0008", lambda f: f.evidence["syscall"] == "setns")
    chain.exec("unshare", "-n", "true")
    chain.wait("RG-0008", lambda f: f.evidence["syscall"] == "unshare")


def test_rg0009_kernel_module(chain: Chain) -> None:
    # Run directly: busybox ash may run some applets forked but without exec (NOEXEC applets).
    chain.exec("sh", "-c", "echo not-a-module > /root/rg.ko")
    out = chain.exec("insmod", "/root/rg.ko")
    assert "can't insert" in out, out
    f = chain.wait("RG-0009", lambda f: f.evidence.get("program") == "insmod")
    _rule(f)
    assert f.evidence["argv"] == ["insmod", "/root/rg.ko"] and f.severity is Severity.MEDIUM
    # Where the kernel has module support the syscall itself is seen too (EPERM: no
    # CAP_SYS_MODULE); this lab's kernel has neither modules nor their tracepoints.
    if (Path("/sys/kernel/tracing/events/syscalls") / "sys_enter_finit_module").exists():
        s = chain.wait("RG-0009", lambda f: f.evidence.get("syscall") in ("init_module", "finit_module"))
        assert s.evidence["succeeded"] is False


def test_rg0010_bpf(chain: Chain) -> None:
    out = chain.exec("/opt/rg/rgtrigger", "bpf")
    assert "bpf=-1" in out, out  # no CAP_BPF in the container
    f = chain.wait("RG-0010")
    _rule(f)
    assert f.evidence["cmd"] == "BPF_MAP_CREATE"


def test_rg0011_runtime_socket(chain: Chain) -> None:
    # A file at the socket's path: the open is what the rule sees (no real dockerd socket is
    # ever given to the container).
    chain.exec("sh", "-c", "mkdir -p /var/run && touch /var/run/docker.sock && cat /var/run/docker.sock")
    f = chain.wait("RG-0011")
    _rule(f)
    assert f.evidence["path"] == "/var/run/docker.sock" and f.severity is Severity.CRITICAL


def test_rg0012_pool_port_and_stratum_argv(chain: Chain) -> None:
    out = chain.exec("sh", "-c", "nc -l -p 3333 >/dev/null & sleep 0.3; echo hello | nc -w 1 127.0.0.1 3333; echo done")
    assert "done" in out
    f = chain.wait("RG-0012", lambda f: f.evidence.get("dport") == 3333)
    _rule(f)
    assert f.evidence["daddr"] == "127.0.0.1" and f.severity is Severity.MEDIUM
    chain.exec("/bin/true", "-o", "stratum+tcp://127.0.0.1:3333", "--donate-level", "1")
    s = chain.wait("RG-0012", lambda f: "stratum+tcp://" in f.evidence.get("matched", []))
    assert s.severity is Severity.HIGH


def test_rg0013_port_scan(chain: Chain) -> None:
    # A connect scan of 30 closed ports on the container's own loopback (no other host is touched).
    out = chain.exec("sh", "-c", "for p in $(seq 2001 2030); do nc -w 1 127.0.0.1 $p </dev/null; done; echo done")
    assert "done" in out
    f = chain.wait("RG-0013", lambda f: f.evidence.get("kind") == "port_scan")
    _rule(f)
    assert f.evidence["target"] == "127.0.0.1" and f.evidence["count"] == 20
    # earlier tests' loopback connects may still be inside the window and count too
    assert len(set(f.evidence["ports"]) & set(range(2001, 2031))) >= 15 and f.severity is Severity.HIGH


def test_ordinary_commands_raise_nothing_and_findings_name_only_this_container(chain: Chain) -> None:
    with chain.lock:
        before = len(chain.findings)
    # What an operator or an entrypoint does every day: docker exec shells and pipelines,
    # reading ordinary files, a shell script calling applets, a loopback connect to a normal port.
    chain.exec("ls", "/")
    chain.exec("sh", "-c", "cat /etc/hostname /etc/passwd | wc -l; ls /var/www | grep -c html; id")
    chain.exec("sh", "-c", "for i in 1 2 3; do sh -c 'echo $i' >/dev/null; done")
    chain.exec("sh", "-c", "nc -l -p 8081 >/dev/null & sleep 0.3; echo hi | nc -w 1 127.0.0.1 8081")
    # A marker the rules do report, so every earlier event has gone through the chain.
    chain.exec("cat", "/etc/gshadow")
    chain.wait("RG-0002", lambda f: f.evidence["path"] == "/etc/gshadow")
    with chain.lock:
        new = chain.findings[before:]
        everything = list(chain.findings)
    assert [f.evidence["path"] for f in new] == ["/etc/gshadow"], [f.summary for f in new]
    assert {f.container_id for f in everything} == {chain.container.id}
