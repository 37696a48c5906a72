# SPDX-License-Identifier: Apache-2.0
"""Every rule detector, in id order. Ids are stable and never reused: retire, don't renumber."""

from __future__ import annotations

from collections.abc import Iterable

from agent.detectors import (
    bpf_syscall,
    decode_exec,
    exec_from_writable,
    kernel_module,
    log_tamper,
    miner_stratum,
    namespace_escape,
    network_scan,
    package_manager,
    pipe_shell,
    privilege_change,
    proc_discovery,
    ptrace_attach,
    reverse_shell,
    runtime_socket,
    sensitive_file,
    shell_from_service,
    timestomp,
)
from agent.detectors.spec import Detector

DETECTORS: tuple[Detector, ...] = (
    shell_from_service.SPEC,
    sensitive_file.SPEC,
    package_manager.SPEC,
    exec_from_writable.SPEC,
    reverse_shell.SPEC,
    privilege_change.SPEC,
    ptrace_attach.SPEC,
    namespace_escape.SPEC,
    kernel_module.SPEC,
    bpf_syscall.SPEC,
    runtime_socket.SPEC,
    miner_stratum.SPEC,
    network_scan.SPEC,
    pipe_shell.SPEC,
    decode_exec.SPEC,
    log_tamper.SPEC,
    timestomp.SPEC,
    proc_discovery.SPEC,
)

# Ids that existed once and were retired: never hand them out again.
RETIRED_IDS: frozenset[str] = frozenset()

BY_ID: dict[str, Detector] = {d.id: d for d in DETECTORS}


def enabled(disabled: Iterable[str]) -> tuple[Detector, ...]:
    """The detectors not listed in ``disabled``."""
    off = set(disabled)
    return tuple(d for d in DETECTORS if d.id not in off)
