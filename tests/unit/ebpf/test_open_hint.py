# SPDX-License-Identifier: Apache-2.0
"""The loader's half of the read-only open filter (probes/files.bpf.c ``rg_open_hint``)."""

from __future__ import annotations

from agent.settings.response import KernelStopSettings
from agent.settings.sources import EbpfSettings
from agent.sources.ebpf.loader import HINT_BITS, HINT_MUL, open_hint_slots, sensitive_entries


def _slot(path: str) -> int:
    word = int.from_bytes(path.encode()[:8], "little")
    return ((word * HINT_MUL) % 2**64) >> (64 - HINT_BITS)


def _defaults() -> dict[str, int]:
    s, k = EbpfSettings(), KernelStopSettings()
    return sensitive_entries(s.sensitive_paths, s.sensitive_write_prefixes, k.open_paths, k.connect_paths,
                             k.connect_paths, ("/var/log/",))  # fmt: skip


def test_default_prefixes_leave_common_reads_out() -> None:
    slots = open_hint_slots(_defaults())
    assert slots is not None, "every default any-open prefix is at least 8 bytes"
    assert _slot("/etc/shadow") in slots and _slot("/root/.ssh/id_rsa") in slots
    # What programs open all the time leaves the kernel after 8 bytes.
    for path in ("/etc/passwd", "/etc/ld.so.cache", "/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/locale", "/dev/null"):
        assert _slot(path) not in slots, path


def test_write_only_and_connect_prefixes_do_not_count() -> None:
    # "/etc/" (writes) and "/var/log/" (truncations) are short, but read-only opens never match them.
    entries = sensitive_entries(("/etc/shadow",), ("/etc/",), truncate=("/var/log/",), connect=("/run/x.sock",))
    slots = open_hint_slots(entries)
    assert slots == {_slot("/etc/shadow")}


def test_a_short_any_open_prefix_turns_the_filter_off() -> None:
    assert open_hint_slots(sensitive_entries(("/etc/shadow", "/srv/"), ())) is None
