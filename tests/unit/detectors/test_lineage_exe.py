# SPDX-License-Identifier: Apache-2.0
"""A parent that exited before /proc could be read, known by the executable the kernel read
(ProcessExec.parent_exe*): RG-0001 on captured /proc trees where the fork-only parent is gone."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from agent.detectors.registry import BY_ID
from agent.detectors.spec import DetectorState
from agent.events import ProcessExec
from agent.findings import Finding, Severity
from agent.hostfs import HostPaths
from tests.unit.detectors.test_lineage import INIT, Proc, capture, exec_ev


def _state(paths: HostPaths) -> DetectorState:
    st = DetectorState()
    st.lineage.paths = paths
    st.init_pid = st.lineage.init_pid = lambda _c: INIT
    return st


def _lab(tmp_path: Path) -> tuple[HostPaths, os.stat_result]:
    paths = capture(tmp_path, [Proc(INIT, 5, "/bin/busybox", ("httpd", "-f"))])
    (tmp_path / "rootfs" / "bin" / "httpd").symlink_to("busybox")  # busybox's applet link
    return paths, (tmp_path / "rootfs" / "bin" / "busybox").stat()


def _shell(pid: int, ppid: int, parent_comm: str, exe: str, ino: int, dev: int) -> ProcessExec:
    ev = exec_ev(pid, ppid, "sh", ("sh",), parent_comm=parent_comm)
    return dataclasses.replace(ev, parent_exe=exe, parent_exe_ino=ino, parent_exe_dev=dev)


def test_httpd_fork_gone_is_known_by_its_executable_and_the_web_shell_is_high(tmp_path: Path) -> None:
    paths, bb = _lab(tmp_path)
    # The CGI "sh" of httpd's per-request fork 4000, which exited before the exec was handled.
    f = BY_ID["RG-0001"].evaluate(_shell(4001, 4000, "httpd", "busybox", bb.st_ino, bb.st_dev), _state(paths))
    assert isinstance(f, Finding)
    assert (f.evidence["parent"], f.evidence["parent_known_by"], f.severity) == ("httpd", "kernel", Severity.HIGH)
    assert f.evidence["parent_process"]["exe"] == "/bin/httpd"


def test_a_script_name_or_another_file_is_not_taken_for_the_executable(tmp_path: Path) -> None:
    paths, bb = _lab(tmp_path)
    rule = BY_ID["RG-0001"]
    # Benign twin: a hook script's subshell (comm = the script's name, exe busybox) is gone:
    # no file on PATH is that executable, busybox runs scripts: not decided by the kernel.
    hook = rule.evaluate(_shell(4011, 4010, "20-check.sh", "busybox", bb.st_ino, bb.st_dev), _state(paths))
    assert hook is None or (hook.evidence["parent_known_by"] != "kernel" and hook.severity is Severity.LOW)
    # The same comm but another executable (inode) than /bin/httpd's: not httpd by the kernel.
    other = rule.evaluate(_shell(4021, 4020, "httpd", "busybox", bb.st_ino + 1, bb.st_dev), _state(paths))
    assert other is not None and other.evidence["parent_known_by"] == "event" and other.severity is Severity.LOW
    # A shell's fork (a dash script's subshell) starting a shell: a shell, trusted.
    dash = rule.evaluate(_shell(4031, 4030, "20-check.sh", "dash", 99, 1), _state(paths))
    assert dash is None


def test_a_compiled_parent_is_its_executable(tmp_path: Path) -> None:
    paths, _bb = _lab(tmp_path)
    f = BY_ID["RG-0001"].evaluate(_shell(4041, 4040, "nginx: worker", "nginx", 1234, 5), _state(paths))
    assert isinstance(f, Finding) and (f.evidence["parent"], f.severity) == ("nginx", Severity.HIGH)
    # An interpreter's fork is not judged by the interpreter: the script decides (supervisord is
    # a python script), so a gone python fork named "app.py" stays a guess from its comm.
    py = BY_ID["RG-0001"].evaluate(_shell(4051, 4050, "app.py", "python3.11", 77, 5), _state(paths))
    assert py is not None and py.evidence["parent_known_by"] == "event" and py.severity is Severity.LOW


def test_a_relative_cgi_script_gone_within_milliseconds_is_a_shell_by_the_kernels_argv(tmp_path: Path) -> None:
    # httpd execs "status.cgi" after chdir; the script and httpd's fork are gone when the exec
    # is judged (no cwd, no cmdline, no fork in /proc): the kernel's rewritten argv names the
    # interpreter, the parent's executable names httpd.
    paths, bb = _lab(tmp_path)
    ev = dataclasses.replace(
        exec_ev(4061, 4060, "status.cgi", ("status.cgi",), parent_comm="httpd"),
        exec_argv=("/bin/sh", "status.cgi"),
        parent_exe="busybox",
        parent_exe_ino=bb.st_ino,
        parent_exe_dev=bb.st_dev,
    )
    f = BY_ID["RG-0001"].evaluate(ev, _state(paths))
    assert isinstance(f, Finding) and f.severity is Severity.HIGH
    assert f.evidence["process"]["interpreter"] == "/bin/sh" and f.evidence["parent_known_by"] == "kernel"
