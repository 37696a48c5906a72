# SPDX-License-Identifier: Apache-2.0
"""Decode raw ring-buffer records of the riskguard probes (``probes/*.h``) into events.

Pure functions: tests feed them recorded bytes. ``decode_record`` raises ``DecodeError`` for a
record that is too short or of an unknown type; the source counts and skips those. Timestamps
in records are ``CLOCK_MONOTONIC`` nanoseconds (``bpf_ktime_get_ns``); ``mono_offset`` (wall
clock minus monotonic clock, seconds) turns them into Unix seconds.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import struct
from collections.abc import Mapping
from typing import NamedTuple

from agent.decoders.ebpf_stdio import stdio_name
from agent.events import Event, FileChange, FileOpen, NetConnect, PrivilegeEvent, ProcessExec, ProcessExit
from agent.syscall_table import syscall_name, syscall_number

# Probe ids, as RG_PROBE_* in probes/common.h (they index the kernel's loss counters).
PROBES: tuple[str, ...] = ("syscalls", "exec", "net", "files", "priv")

EV_EXEC, EV_NET, EV_OPEN, EV_PRIV, EV_CHANGE, EV_EXIT = 1, 2, 3, 4, 5, 6
EV_ACT = 7  # a must-act record of the in-kernel response (probes/act.h), never on the bus
PROBE_OF_TYPE: Mapping[int, str] = {
    EV_EXEC: "exec",
    EV_NET: "net",
    EV_OPEN: "files",
    EV_PRIV: "priv",
    EV_CHANGE: "files",
    EV_EXIT: "exec",
}

# struct rg_hdr: u32 type, u32 pid, u64 cgroup_id, u64 ts_ns, u32 tid, u32 uid, char comm[16]
HDR = struct.Struct("<IIQQII16s")
# struct rg_exec_event after the header: u32 ppid, argc, args_size, truncated; char
# parent_comm[16]; char filename[256]; u32 exe_flags, exe_nlink; u64 parent_ino; u32
# parent_dev, pad; char parent_exe[32]; u32 stdio_kind[4]; u64 stdio_ino[3]; char
# exe_name[32]; u32 new_args_size, pad2; char new_args[128]; then args (variable length).
EXEC = struct.Struct("<IIII16s256sIIQII32s4I3Q32sII128s")
NEW_ARGS = 128
EXE_PARENT, EXE_SELF, EXE_STDIO = 1, 2, 4  # exe_flags (probes/exec.h)
# struct rg_net_event after the header.
NET = struct.Struct("<HHHH16s16sBBBBi")
# struct rg_open_event after the header: s32 ret, u32 flags, u32 match, u32 ppid, char path[256].
OPEN = struct.Struct("<iIII256s")
# struct rg_priv_event after the header.
PRIV = struct.Struct("<iiq6Q")
# struct rg_change_event after the header: s32 ret, u32 op, u32 why, s32 dfd, s32 new_dfd,
# u32 ppid, char path[256], char new_path[256].
CHANGE = struct.Struct("<iIIiiI256s256s")
# struct rg_exit_event after the header: s32 exit_code, u32 pad.
EXIT = struct.Struct("<iI")
# struct rg_act_event after the header: u32 rule, s32 nr, u64 arg, s32 signal_ret, u32 pad,
# char path[256].
ACT = struct.Struct("<IiQiI256s")
# RG_RULE_* of probes/act.h: what the kernel stopped a task for.
ACT_RULES: Mapping[int, str] = {1: "open", 2: "namespace", 4: "runtime_socket", 8: "exec"}
RULE_BITS: Mapping[str, int] = {name: bit for bit, name in ACT_RULES.items()}

NET_OPS: Mapping[int, str] = {1: "connect", 2: "accept", 3: "listen"}
OPEN_MATCH: Mapping[int, str] = {
    1: "prefix",
    2: "write",
    4: "proc_mem",
    8: "proc_cmdline",
    16: "proc_environ",
    128: "connect",
    256: "truncate",
}
# rg_open_event.match of a connect record (probes/files.h RG_MATCH_CONNECT): an AF_UNIX connect
# to a runtime socket path, decoded as a NetConnect.
MATCH_CONNECT = 128
CHANGE_OPS: Mapping[int, str] = {1: "unlink", 2: "rename", 3: "utimes"}
# rg_change_event.why (probes/files.h RG_WHY_*)
WHY_PREFIX, WHY_HISTORY, WHY_RELATIVE, WHY_EXPLICIT = 1, 2, 4, 8
AT_FDCWD = -100
# include/net/tcp_states.h
TCP_STATES: Mapping[int, str] = {
    0: "",
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "NEW_SYN_RECV",
}
# The syscalls the priv probe reports and their argument counts: the probe copies six slots,
# those past the arity are not the syscall's.
PRIV_ARITY: Mapping[str, int] = {
    "ptrace": 4,
    "setuid": 1,
    "setgid": 1,
    "setreuid": 2,
    "setregid": 2,
    "setresuid": 3,
    "setresgid": 3,
    "setfsuid": 1,
    "setfsgid": 1,
    "capset": 2,
    "pivot_root": 2,
    "chroot": 1,
    "mount": 5,
    "umount2": 2,
    "init_module": 3,
    "unshare": 1,
    "setns": 2,
    "finit_module": 3,
    "bpf": 3,
}
# x86_64 numbers of the priv syscalls (from the agent's one syscall table).
PRIV_SYSCALLS: Mapping[str, int] = {name: syscall_number(name) for name in PRIV_ARITY}
PRIV_NAMES: Mapping[int, str] = {nr: name for name, nr in PRIV_SYSCALLS.items()}
O_WRITE_MASK = 0o1 | 0o2 | 0o100 | 0o1000  # O_WRONLY | O_RDWR | O_CREAT | O_TRUNC


class DecodeError(ValueError):
    """A raw record that is not one of ours (too short, unknown type)."""


class Header(NamedTuple):
    """``struct rg_hdr`` (a tuple: built once per record, it has to be cheap)."""

    type: int
    pid: int
    cgroup_id: int
    ts_ns: int
    tid: int
    uid: int
    comm: str


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _need(raw: bytes, size: int, what: str) -> None:
    if len(raw) < size:
        raise DecodeError(f"{what} record is {len(raw)} bytes, needs {size}")


def decode_header(raw: bytes) -> Header:
    """Decode the common ``struct rg_hdr`` at the start of every record."""
    _need(raw, HDR.size, "header")
    t, pid, cg, ts, tid, uid, comm = HDR.unpack_from(raw)
    return Header(t, pid, cg, ts, tid, uid, _cstr(comm))


def _op(names: Mapping[int, str], op: int, what: str) -> str:
    """The name of a record's op code; ``DecodeError`` for one the probe never writes."""
    try:
        return names[op]
    except KeyError:
        raise DecodeError(f"{what} record has unknown op {op}") from None


def _addr(family: int, raw: bytes) -> str:
    # IPv4 through inet_ntoa (the same text, a fifth of the cost); IPv6 through ipaddress, whose
    # text (an IPv4-mapped address as "::ffff:7f00:1") baselines and allowances already hold.
    if family == socket.AF_INET:
        return socket.inet_ntoa(raw[:4])
    if family == socket.AF_INET6:
        return _v6_text(raw[:16])
    return ""


@functools.lru_cache(maxsize=1024)  # a host's peers repeat ("::", ::ffff: mapped clients): 0.1 us, not 7
def _v6_text(packed: bytes) -> str:
    return str(ipaddress.IPv6Address(packed))


def decode_exec(h: Header, raw: bytes, ts: float) -> ProcessExec:
    base = HDR.size
    _need(raw, base + EXEC.size, "exec")
    f = EXEC.unpack_from(raw, base)
    ppid, argc, args_size, truncated, pcomm, filename, exe_flags, nlink = f[:8]
    pino, pdev, _pad, pexe = f[8:12]
    (k0, k1, k2), (i0, i1, i2) = f[12:15], f[16:19]  # stdio_kind[0..2] (f[15]: padding), stdio_ino
    exe, nsize, _pad2, new = f[19:]
    args_raw = raw[base + EXEC.size : base + EXEC.size + args_size]
    argv = tuple(a.decode("utf-8", "replace") for a in args_raw.split(b"\0")[:argc])
    if truncated:
        argv = (*argv, "...")
    exe_name = exe_origin = parent_exe = ""
    parent_dev = 0
    if exe_flags & EXE_SELF:
        exe_name = _cstr(exe)
        if exe_name.startswith("memfd:"):
            exe_origin = "memfd"
        elif nlink == 0:
            exe_origin = "deleted"
    if exe_flags & EXE_PARENT:
        # The kernel's dev_t is major << 20 | minor; stat() reports os.makedev's encoding.
        parent_exe, parent_dev = _cstr(pexe), os.makedev(pdev >> 20, pdev & 0xFFFFF)
    else:
        pino = 0
    stdio: tuple[str, ...] = ()
    if exe_flags & EXE_STDIO and (k0 or k1 or k2):
        stdio = (stdio_name(k0, i0), stdio_name(k1, i1), stdio_name(k2, i2))
    return ProcessExec(
        ts=ts,
        cgroup_id=h.cgroup_id,
        pid=h.pid,
        ppid=ppid,
        uid=h.uid,
        comm=h.comm,
        filename=_cstr(filename),
        argv=argv,
        parent_comm=_cstr(pcomm),
        exe_origin=exe_origin,
        stdio=stdio,
        exe_name=exe_name,
        exec_argv=_new_argv(new, nsize),
        parent_exe=parent_exe,
        parent_exe_ino=pino,
        parent_exe_dev=parent_dev,
    )


def _new_argv(raw: bytes, size: int) -> tuple[str, ...]:
    """The complete strings of the new program's first argv bytes (a cut last one dropped)."""
    if not size:
        return ()
    parts = raw[: min(size, NEW_ARGS)].split(b"\0")
    parts.pop()  # after the last NUL: "" or a string the 128 bytes cut
    return tuple(a.decode("utf-8", "replace") for a in parts)


def decode_net(h: Header, raw: bytes, ts: float) -> NetConnect:
    _need(raw, HDR.size + NET.size, "net")
    family, proto, sport, dport, saddr, daddr, op, old, new, _pad, fd = NET.unpack_from(raw, HDR.size)
    return NetConnect(
        ts=ts,
        cgroup_id=h.cgroup_id,
        pid=h.pid,
        op=_op(NET_OPS, op, "net"),
        comm=h.comm,
        family=family,
        protocol="tcp" if proto == socket.IPPROTO_TCP else str(proto),
        saddr=_addr(family, saddr),
        sport=sport,
        daddr=_addr(family, daddr),
        dport=dport,
        state=TCP_STATES.get(new, str(new)),
        old_state=TCP_STATES.get(old, str(old)),
        fd=fd,
    )


def decode_open(h: Header, raw: bytes, ts: float) -> FileOpen | NetConnect:
    _need(raw, HDR.size + OPEN.size, "open")
    ret, flags, match, ppid, path = OPEN.unpack_from(raw, HDR.size)
    if match & MATCH_CONNECT:
        return _unix_connect(ts, h.cgroup_id, h.pid, h.comm, _cstr(path), ret)
    return FileOpen(
        ts=ts,
        cgroup_id=h.cgroup_id,
        pid=h.pid,
        comm=h.comm,
        path=_cstr(path),
        flags=flags,
        write=bool(flags & O_WRITE_MASK),
        ret=ret,
        ppid=ppid,
    )


def _unix_connect(ts: float, cgroup_id: int, pid: int, comm: str, path: str, ret: int) -> NetConnect:
    """An AF_UNIX connect to ``path`` (a runtime socket); a failed one has state "FAILED"."""
    return NetConnect(
        ts=ts,
        cgroup_id=cgroup_id,
        pid=pid,
        op="connect",
        comm=comm,
        family=socket.AF_UNIX,
        protocol="unix",
        saddr="",
        sport=0,
        daddr=path,
        dport=0,
        state="" if ret >= 0 else "FAILED",
    )


def decode_priv(h: Header, raw: bytes, ts: float) -> PrivilegeEvent:
    _need(raw, HDR.size + PRIV.size, "priv")
    nr, _pad, ret, *args = PRIV.unpack_from(raw, HDR.size)
    name = PRIV_NAMES.get(nr, f"syscall_{nr}")
    return PrivilegeEvent(
        ts=ts,
        cgroup_id=h.cgroup_id,
        pid=h.pid,
        comm=h.comm,
        syscall=name,
        args=tuple(args[: PRIV_ARITY.get(name, 6)]),
        ret=ret,
        uid=h.uid,
    )


def _at_path(pid: int, dfd: int, path: str) -> str:
    """A path relative to a directory fd, written as the /proc path that names it
    (``/proc/<pid>/fd/<dfd>/<path>``); ``path`` unchanged when absolute or relative to the cwd."""
    if path.startswith("/") or dfd == AT_FDCWD:
        return path
    return f"/proc/{pid}/fd/{dfd}/{path}" if path else f"/proc/{pid}/fd/{dfd}"


def decode_change(h: Header, raw: bytes, ts: float) -> FileChange:
    """``struct rg_change_event`` -> ``FileChange``. A path relative to a directory fd becomes
    ``/proc/<pid>/fd/<dfd>/<path>`` (futimens: ``/proc/<pid>/fd/<fd>``); one relative to the cwd
    stays relative: the source resolves both while the process lives."""
    _need(raw, HDR.size + CHANGE.size, "change")
    ret, op, why, dfd, new_dfd, ppid, path, new_path = CHANGE.unpack_from(raw, HDR.size)
    new = _cstr(new_path)
    return FileChange(
        ts=ts,
        cgroup_id=h.cgroup_id,
        pid=h.pid,
        op=_op(CHANGE_OPS, op, "change"),
        comm=h.comm,
        path=_at_path(h.pid, dfd, _cstr(path)),
        new_path=_at_path(h.pid, new_dfd, new) if new else "",
        explicit_times=bool(why & WHY_EXPLICIT),
        ret=ret,
        ppid=ppid,
    )


def decode_exit(h: Header, raw: bytes, ts: float) -> ProcessExit:
    """``struct rg_exit_event`` -> ``ProcessExit`` (``exit_code`` -1: no exit call was seen)."""
    _need(raw, HDR.size + EXIT.size, "exit")
    code, _pad = EXIT.unpack_from(raw, HDR.size)
    return ProcessExit(ts=ts, cgroup_id=h.cgroup_id, pid=h.pid, comm=h.comm, exit_code=code)


class KernelStop(NamedTuple):
    """A must-act record: the kernel stopped task ``pid`` (SIGSTOP pending or taken) at a syscall
    that rule ``rule`` forbids in its container (``probes/act.h``)."""

    rule: str  # open | namespace | runtime_socket | exec
    pid: int  # tgid (host pid namespace)
    tid: int
    cgroup_id: int
    ts_ns: int  # the syscall's entry, CLOCK_MONOTONIC ns
    ts: float  # the same, Unix seconds
    comm: str
    uid: int
    syscall: str  # the syscall's name ("execve" for an exec)
    arg: int  # open flags, unshare flags, mount flags
    path: str
    stopped: bool  # bpf_send_signal succeeded: the task stops before its next user instruction


def decode_act(raw: bytes, mono_offset: float = 0.0) -> KernelStop:
    """``struct rg_act_event`` -> ``KernelStop``; ``DecodeError`` for a short or foreign record."""
    h = decode_header(raw)
    if h.type != EV_ACT:
        raise DecodeError(f"not a must-act record (type {h.type})")
    _need(raw, HDR.size + ACT.size, "act")
    rule, nr, arg, signal_ret, _pad, path = ACT.unpack_from(raw, HDR.size)
    return KernelStop(
        rule=_op(ACT_RULES, rule, "act"),
        pid=h.pid,
        tid=h.tid,
        cgroup_id=h.cgroup_id,
        ts_ns=h.ts_ns,
        ts=h.ts_ns / 1e9 + mono_offset,
        comm=h.comm,
        uid=h.uid,
        syscall="execve" if nr < 0 else syscall_name(nr),
        arg=arg,
        path=_cstr(path),
        stopped=signal_ret == 0,
    )


_DECODERS = {
    EV_EXEC: decode_exec,
    EV_NET: decode_net,
    EV_OPEN: decode_open,
    EV_PRIV: decode_priv,
    EV_CHANGE: decode_change,
    EV_EXIT: decode_exit,
}


# Sensitive opens are the one record type that can arrive at tens of thousands per second:
# header and body in one unpack, no intermediate Header.
_OPEN_FULL = struct.Struct(HDR.format + OPEN.format.lstrip("<"))


def _decode_open_fast(raw: bytes, mono_offset: float) -> FileOpen | NetConnect:
    try:
        _t, pid, cg, ts, _tid, _uid, comm, ret, flags, match, ppid, path = _OPEN_FULL.unpack_from(raw)
    except struct.error:
        raise DecodeError(f"open record is {len(raw)} bytes, needs {_OPEN_FULL.size}") from None
    if match & MATCH_CONNECT:
        name = comm.split(b"\0", 1)[0].decode("utf-8", "replace")
        where = path.split(b"\0", 1)[0].decode("utf-8", "replace")
        return _unix_connect(ts / 1e9 + mono_offset, cg, pid, name, where, ret)
    return FileOpen(
        ts=ts / 1e9 + mono_offset,
        cgroup_id=cg,
        pid=pid,
        comm=comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
        path=path.split(b"\0", 1)[0].decode("utf-8", "replace"),
        flags=flags,
        write=bool(flags & O_WRITE_MASK),
        ret=ret,
        ppid=ppid,
    )


def decode_record(raw: bytes, mono_offset: float = 0.0) -> Event:
    """Decode one raw record into its event; raise ``DecodeError`` when it is malformed."""
    if raw[:4] == b"\x03\x00\x00\x00":  # EV_OPEN, little-endian
        return _decode_open_fast(raw, mono_offset)
    h = decode_header(raw)
    fn = _DECODERS.get(h.type)
    if fn is None:
        raise DecodeError(f"unknown record type {h.type}")
    return fn(h, raw, h.ts_ns / 1e9 + mono_offset)


def syscall_window_rows(
    counts: Mapping[tuple[int, int], int], transitions: Mapping[tuple[int, int, int], int]
) -> dict[int, tuple[dict[int, int], dict[tuple[int, int], int]]]:
    """Group ``{(cgroup, nr): n}`` and ``{(cgroup, prev, cur): n}`` by cgroup id."""
    out: dict[int, tuple[dict[int, int], dict[tuple[int, int], int]]] = {}
    for (cg, nr), n in counts.items():
        crow = out.setdefault(cg, ({}, {}))[0]
        crow[nr] = crow.get(nr, 0) + n
    for (cg, prev, cur), n in transitions.items():
        row = out.setdefault(cg, ({}, {}))[1]
        row[(prev, cur)] = row.get((prev, cur), 0) + n
    return out
