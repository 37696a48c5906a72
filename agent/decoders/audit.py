# SPDX-License-Identifier: Apache-2.0
"""Pure decoding of Linux audit records: raw text or netlink payloads → ``AuditRecord`` →
``AuditEvent`` (records of one serial assembled), with hex-encoded fields decoded.

Nothing here touches the kernel: the audit source feeds these functions what it reads, and tests
feed them records captured from a real host (``tests/fixtures/audit``).

Record text has two shapes:

* netlink (``AUDIT_NLGRP_READLOG`` multicast): the type is in the netlink header, the text is
  ``audit(1700000000.123:456): key=value ...``;
* audit.log: ``type=SYSCALL msg=audit(1700000000.123:456): key=value ...``, and with auditd's
  ``log_format = ENRICHED`` a ``\\x1d`` (GS) byte followed by interpreted upper-case fields
  (``UID="root"``), which we keep apart from the raw fields.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.events import AuditEvent, AuditRecord
from agent.syscall_table import X86_64

try:  # libaudit's tables (python3-audit); the fallback below covers what we assemble.
    import audit as _libaudit
except ImportError:  # pragma: no cover - the venv sees Debian's python3-audit
    _libaudit = None


class MalformedRecord(ValueError):
    """A record that cannot be parsed; the caller counts and skips it."""


# Record types we name without libaudit (linux/audit.h).
_TYPE_NAMES: dict[int, str] = {
    1300: "SYSCALL",
    1302: "PATH",
    1305: "CONFIG_CHANGE",
    1306: "SOCKADDR",
    1307: "CWD",
    1309: "EXECVE",
    1320: "EOE",
    1327: "PROCTITLE",
}
_TYPE_NUMBERS = {v: k for k, v in _TYPE_NAMES.items()}
EOE = 1320

_AUDIT_ARCH_X86_64 = 0xC000003E

# audit(<sec>.<msec>:<serial>): digits bounded (the kernel prints u64 serials and a 3-digit msec):
# a 4,300-digit serial is a malformed record, not an int() conversion error.
_HEADER = re.compile(r"audit\((?P<sec>\d{1,12})\.(?P<msec>\d{1,9}):(?P<serial>\d{1,20})\):\s?")
# The kernel's MAX_AUDIT_MESSAGE_LENGTH is 8970; auditd's enriched fields and user-space records
# stay well below this. A longer line is malformed (a 200 MB hex field must not be decoded).
MAX_RECORD_CHARS = 64 << 10
_INT64_MAX = (1 << 63) - 1
_LOG_LINE = re.compile(r"^type=(?P<type>\S+) msg=(?P<rest>.*)$", re.DOTALL)
# key=value where value is "quoted" (no escapes: the kernel hex-encodes any value with a quote),
# 'single quoted' (user-space msg='...') or a bare token.
_FIELD = re.compile(r"""(?P<key>[A-Za-z0-9_\-\[\]]+)=(?P<value>"[^"]*"|'[^']*'|\S*)""")
_HEX = re.compile(r"^(?:[0-9A-F]{2})+$")

# Fields the kernel writes with audit_log_untrustedstring(): quoted when clean, bare upper-case
# hex when the value holds a space, a quote, a control or non-ASCII byte.
_UNTRUSTED = frozenset({"proctitle", "name", "cwd", "comm", "exe", "key", "data", "path", "old", "new", "dev", "root"})
_EXECVE_ARG = re.compile(r"^a(?P<i>\d+)(?:\[(?P<part>\d+)\])?$")
UNSET_ID = 4294967295  # (uid_t)-1: "unset" auid / ses


def type_name(number: int) -> str:
    """The record type's name (``1300`` → ``SYSCALL``); ``UNKNOWN[n]`` when nobody knows it."""
    if _libaudit is not None:
        name = _libaudit.audit_msg_type_to_name(number)
        if name:
            return str(name)
    return _TYPE_NAMES.get(number, f"UNKNOWN[{number}]")


def type_number(name: str) -> int:
    if _libaudit is not None:
        n = int(_libaudit.audit_name_to_msg_type(name))
        if n > 0:
            return n
    return _TYPE_NUMBERS.get(name, 0)


def syscall_name(number: int, arch: int = _AUDIT_ARCH_X86_64) -> str:
    """The syscall's name for an audit ``arch`` (x86_64 by default); the number as text if unknown."""
    if not (0 <= number < 1 << 31 and 0 <= arch < 1 << 32):
        return str(number)  # libaudit takes C ints: a huge number is nobody's syscall
    if _libaudit is not None:
        machine = _libaudit.audit_elf_to_machine(arch)
        if machine >= 0:
            name = _libaudit.audit_syscall_to_name(number, machine)
            if name:
                return str(name)
    # Without libaudit: the agent's own x86_64 table.
    return X86_64.get(number, str(number)) if arch == _AUDIT_ARCH_X86_64 else str(number)


def decode_hex(value: str) -> str:
    """Decode a hex-encoded untrusted string (NULs become spaces, as in proctitle argv)."""
    raw = bytes.fromhex(value)
    return raw.rstrip(b"\x00").replace(b"\x00", b" ").decode("utf-8", "backslashreplace")


def field_value(key: str, value: str, record_type: str = "") -> str:
    """The decoded value of one field: quotes stripped, hex-encoded untrusted strings decoded,
    ``(null)`` / ``(none)`` as ``""``."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    if key not in _UNTRUSTED and record_type != "EXECVE":
        return "" if value in ("(null)", "(none)") else value
    if value in ("(null)", "(none)"):
        return ""
    untrusted = key in _UNTRUSTED or (record_type == "EXECVE" and _EXECVE_ARG.match(key) is not None)
    if untrusted and _HEX.match(value):
        return decode_hex(value)
    return value


def parse_fields(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Split ``key=value`` text into (raw fields, enriched fields after ``\\x1d``)."""
    raw_part, _, enriched_part = text.partition("\x1d")
    raw = dict(_FIELD.findall(raw_part))
    enriched = {k: v.strip('"') for k, v in _FIELD.findall(enriched_part)} if enriched_part else {}
    return raw, enriched


def parse_body(type_: str, body: str, raw: str = "") -> AuditRecord:
    """Parse ``audit(<ts>:<serial>): fields`` of a record of type ``type_``."""
    if len(body) > MAX_RECORD_CHARS:
        raise MalformedRecord(f"record of {len(body)} characters is longer than {MAX_RECORD_CHARS}")
    m = _HEADER.match(body)
    if m is None:
        raise MalformedRecord(f"no audit(<ts>:<serial>) header in {body[:60]!r}")
    fields, _enriched = parse_fields(body[m.end() :])
    ts = int(m.group("sec")) + int(m.group("msec")) / 1000.0
    return AuditRecord(type=type_, serial=int(m.group("serial")), ts=ts, fields=fields, raw=raw or body)


def parse_log_line(line: str) -> AuditRecord:
    """Parse one audit.log line (``type=X msg=audit(...): ...``)."""
    line = line.rstrip("\n")
    if len(line) > MAX_RECORD_CHARS:
        raise MalformedRecord(f"line of {len(line)} characters is longer than {MAX_RECORD_CHARS}")
    m = _LOG_LINE.match(line)
    if m is None:
        raise MalformedRecord(f"not an audit.log line: {line[:60]!r}")
    return parse_body(m.group("type"), m.group("rest"), raw=line)


def parse_netlink_payload(msg_type: int, payload: bytes) -> AuditRecord:
    """Parse the text of one netlink audit message of numeric type ``msg_type``."""
    text = payload.rstrip(b"\x00").decode("utf-8", "backslashreplace")
    return parse_body(type_name(msg_type), text)


_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid


def split_netlink(datagram: bytes) -> list[tuple[int, bytes]]:
    """Split a NETLINK_AUDIT datagram into (type, payload) messages.

    Kernel quirk (kernel/audit.c, ``audit_log_end``): the ``nlmsg_len`` of audit records does not
    count the 16-byte header, unlike every other netlink family, and auditd relies on that. We
    accept both readings: a message whose length fits the datagram as header-exclusive, else as
    header-inclusive. Raises ``MalformedRecord`` on a datagram shorter than a header.
    """
    out: list[tuple[int, bytes]] = []
    off = 0
    hdr = _NLMSGHDR.size
    while off + hdr <= len(datagram):
        length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(datagram, off)
        rest = len(datagram) - off - hdr
        body_len = length if length <= rest else max(0, length - hdr)
        if body_len > rest:
            raise MalformedRecord(f"netlink length {length} beyond datagram of {len(datagram)}")
        out.append((mtype, bytes(datagram[off + hdr : off + hdr + body_len])))
        # Messages are NLMSG_ALIGN'ed (4 bytes); one audit record per datagram in practice.
        off += hdr + ((body_len + 3) & ~3)
    if not out:
        raise MalformedRecord(f"datagram of {len(datagram)} bytes holds no netlink header")
    return out


# --- assembly -------------------------------------------------------------------------------
def _standalone(type_: str) -> bool:
    """Records that never belong to a multi-record kernel event: user-space messages
    (1100-1299, 2100-2999) and daemon records (1200s)."""
    n = type_number(type_)
    return 1100 <= n < 1300 or 2100 <= n < 3000


def execve_argv(fields: Mapping[str, str]) -> tuple[str, ...]:
    """``argv`` of an EXECVE record: ``argc`` args ``a0..``; args longer than the kernel's
    MAX_EXECVE_AUDIT_LEN come as ``aN_len=`` plus hex chunks ``aN[0]``, ``aN[1]`` …"""
    try:
        argc = int(fields.get("argc", "0"))
    except ValueError:
        raise MalformedRecord(f"argc is not a number: {fields.get('argc', '')[:40]!r}") from None
    args: list[str] = []
    for i in range(argc):
        whole = fields.get(f"a{i}")
        if whole is not None:
            args.append(field_value(f"a{i}", whole, "EXECVE"))
            continue
        parts: list[str] = []
        j = 0
        while (chunk := fields.get(f"a{i}[{j}]")) is not None:
            parts.append(chunk.strip('"'))
            j += 1
        if not parts:
            break  # the rest of argv is in a following EXECVE record (very long argv)
        joined = "".join(parts)
        args.append(decode_hex(joined) if _HEX.match(joined) else joined)
    return tuple(args)


def _int(fields: Mapping[str, str], key: str, default: int) -> int:
    v = fields.get(key)
    if v is None:
        return default
    try:
        n = int(v, 0) if v.startswith("0x") else int(v)
    except ValueError:
        return default
    if not -_INT64_MAX <= n <= _INT64_MAX:
        return default
    return -1 if n == UNSET_ID else n


def assemble(records: Iterable[AuditRecord]) -> AuditEvent:
    """Fold the records of one serial into an ``AuditEvent``."""
    recs = [r for r in records if r.type != "EOE"]
    if not recs:
        raise MalformedRecord("an event needs at least one record besides EOE")
    serial = recs[0].serial
    ts = recs[0].ts
    types = tuple(r.type for r in recs)
    sysc = next((r for r in recs if r.type == "SYSCALL"), None)
    main = sysc or recs[0]
    f = main.fields
    # The main record's fields decoded, then the others' under "<type>.<key>" (first of a type
    # wins; PATH items are in ``paths``).
    merged: dict[str, str] = {k: field_value(k, v, main.type) for k, v in f.items()}
    for r in recs:
        if r is main or r.type in ("EXECVE", "PATH", "PROCTITLE"):
            continue
        prefix = r.type.lower()
        for k, v in r.fields.items():
            merged.setdefault(f"{prefix}.{k}", field_value(k, v, r.type))
    # A long argv spans several EXECVE records (argc in the first): join their fields first.
    execve_fields: dict[str, str] = {}
    for r in recs:
        if r.type == "EXECVE":
            execve_fields.update(r.fields)
    argv = execve_argv(execve_fields) if execve_fields else ()
    proctitle = ""
    pt = next((r for r in recs if r.type == "PROCTITLE"), None)
    if pt is not None:
        proctitle = field_value("proctitle", pt.fields.get("proctitle", ""), "PROCTITLE")
    paths_items: list[tuple[int, str]] = []
    for r in recs:
        if r.type == "PATH":
            paths_items.append(
                (_int(r.fields, "item", len(paths_items)), field_value("name", r.fields.get("name", "")))
            )
    cwd_rec = next((r for r in recs if r.type == "CWD"), None)
    syscall = ""
    if sysc is not None and "syscall" in f:
        try:
            arch = int(f.get("arch", "c000003e"), 16)
            syscall = syscall_name(int(f["syscall"]), arch)
        except ValueError:
            syscall = f["syscall"]
    success = {"yes": True, "no": False}.get(f.get("success", ""))
    exit_v = _int(f, "exit", 0) if "exit" in f else None
    return AuditEvent(
        ts=ts,
        pid=max(0, _int(f, "pid", 0)),
        serial=serial,
        record_types=types,
        syscall=syscall,
        success=success,
        exit=exit_v,
        exe=field_value("exe", f.get("exe", "")),
        comm=field_value("comm", f.get("comm", "")),
        ppid=max(0, _int(f, "ppid", 0)),
        uid=_int(f, "uid", -1),
        auid=_int(f, "auid", -1),
        key=field_value("key", f.get("key", "")).replace("\x01", ","),
        argv=argv or (tuple(proctitle.split(" ")) if proctitle else ()),
        paths=tuple(p for _, p in sorted(paths_items)),
        cwd=field_value("cwd", cwd_rec.fields.get("cwd", "")) if cwd_rec is not None else "",
        proctitle=proctitle,
        fields=merged,
    )


@dataclass
class _Pending:
    records: list[AuditRecord]
    first_seen: float


@dataclass
class AssemblerStats:
    records: int = 0
    events: int = 0
    malformed: int = 0
    timed_out: int = 0
    evicted: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class EventAssembler:
    """Groups records by serial; an event is complete at its EOE record, or ``timeout`` seconds
    after its first record (events without EOE, or an EOE lost in a full backlog).

    auditd does not write EOE records to audit.log; with ``ordered=True`` (reading a log file) an
    event also completes when a record of another serial follows it, as libauparse does.

    Not thread-safe: one reader thread owns it. ``max_pending`` bounds memory when EOEs never come.
    """

    def __init__(self, timeout: float = 2.0, max_pending: int = 4096, ordered: bool = False) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self.ordered = ordered
        self._last_serial = -1
        self.stats = AssemblerStats()
        self._pending: dict[int, _Pending] = {}

    def add(self, record: AuditRecord, now: float) -> list[AuditEvent]:
        """Add one record; return the events it completes (possibly an evicted oldest one)."""
        self.stats.records += 1
        self.stats.by_type[record.type] = self.stats.by_type.get(record.type, 0) + 1
        out: list[AuditEvent] = []
        if self.ordered and record.serial != self._last_serial:
            prev = self._pending.pop(self._last_serial, None)
            if prev is not None:
                self._emit(prev.records, out)
        self._last_serial = record.serial
        if record.type == "EOE":
            p = self._pending.pop(record.serial, None)
            if p is not None:
                self._emit(p.records, out)
            return out
        if _standalone(record.type):
            self._emit([record], out)
            return out
        p = self._pending.get(record.serial)
        if p is None:
            if len(self._pending) >= self.max_pending:
                oldest = min(self._pending, key=lambda s: self._pending[s].first_seen)
                self.stats.evicted += 1
                self._emit(self._pending.pop(oldest).records, out)
            self._pending[record.serial] = _Pending([record], now)
        else:
            p.records.append(record)
        return out

    def pending_serials(self) -> list[int]:
        return list(self._pending)

    def pending_records(self, serial: int) -> list[AuditRecord]:
        p = self._pending.get(serial)
        return list(p.records) if p is not None else []

    def expire(self, now: float) -> list[AuditEvent]:
        """Complete the events whose first record is older than ``timeout``."""
        out: list[AuditEvent] = []
        for serial in [s for s, p in self._pending.items() if now - p.first_seen >= self.timeout]:
            self.stats.timed_out += 1
            self._emit(self._pending.pop(serial).records, out)
        return out

    def flush(self) -> list[AuditEvent]:
        """Complete everything pending (at shutdown)."""
        out: list[AuditEvent] = []
        for serial in list(self._pending):
            self._emit(self._pending.pop(serial).records, out)
        return out

    def _emit(self, records: list[AuditRecord], out: list[AuditEvent]) -> None:
        try:
            out.append(assemble(records))
            self.stats.events += 1
        except (MalformedRecord, ValueError, OverflowError):  # counted and skipped, never raised
            self.stats.malformed += 1
