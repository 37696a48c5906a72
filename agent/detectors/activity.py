# SPDX-License-Identifier: Apache-2.0
"""Short-term memory of what the processes of each container just did, for sequence rules.

The pipe rules (RG-0014, RG-0015) pair a shell with the process at the other end of its stdin,
which ash and bash fork from the same parent within milliseconds: they need the recent execs of
a container by parent pid and which of those processes connected. The process-discovery rule
(RG-0018) counts the other processes' /proc files one process read. Everything here is bounded
by count and by a time horizon (event time), so an exec-heavy container cannot grow it.

``DetectorState`` belongs to the component; ``activity(state)`` hands every detector the one
``Activity`` kept for that state (looked up by identity, dropped with the state).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.detectors.dedup import Dedup
from agent.detectors.lineage import ProcInfo, role_of
from agent.detectors.spec import DetectorState, container_key, program_names
from agent.events import Event, NetConnect, ProcessExec

# How long (seconds of event time) an exec or a connect stays known.
HORIZON = 120.0
MAX_EXECS = 16384
MAX_CONNECTED = 4096
MAX_READERS = 1024
MAX_TARGETS = 256
MAX_REPORTED = 4096
MAX_PENDING = 1024
# Exec events of one parent may arrive slightly out of time order (per-CPU buffers).
ORDER_SLACK = 0.25
# How long (seconds) an event of a process not yet seen exec'ing waits for its exec.
PENDING_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class RecentExec:
    """One exec as the pipe rules need it."""

    container: str
    pid: int
    ppid: int
    ts: float
    program: str
    args: tuple[str, ...]
    argv: tuple[str, ...]
    stdio: tuple[str, ...]
    parent_comm: str = ""
    # What lineage knew of this exec (its script's interpreter, role) when the process exited:
    # a file record from another kernel buffer may be judged after the exit record.
    info: ProcInfo | None = None


class Activity:
    """Recent execs by pid and by parent, connected pids, and /proc reads by reader."""

    def __init__(self, horizon: float = HORIZON, max_execs: int = MAX_EXECS, dedup: Dedup | None = None) -> None:
        self.horizon = horizon
        self.max_execs = max_execs
        # One copy of each program, argv, stdio … the records hold (the lineage's, when shared).
        self.dedup = Dedup() if dedup is None else dedup
        self.execs: OrderedDict[tuple[str, int], RecentExec] = OrderedDict()
        # (container, parent pid) -> its children's pids in exec order (oldest first; plain
        # dicts keep insertion order, and a pid exec'd again is unlinked before it is re-added)
        self.children: dict[tuple[str, int], dict[int, None]] = {}
        # The same children split by whether ``reader_siblings``'s test said they read their
        # stdin (each asked once): those not asked yet, and the readers, in exec order.
        self._unasked: dict[tuple[str, int], dict[int, None]] = {}
        self._readers: dict[tuple[str, int], dict[int, None]] = {}
        # Stats: sibling records looked at, and children the reader test was asked about.
        self.sibling_visits = 0
        self.reader_tests = 0
        # (container, pid) -> (ts, "connect"/"accept", peer)
        self.connected: OrderedDict[tuple[str, int], tuple[float, str, str]] = OrderedDict()
        # (container, reader pid) -> {(target pid, file): ts}
        self.proc_reads: OrderedDict[tuple[str, int], dict[tuple[str, str], float]] = OrderedDict()
        # Pairs already reported (rule, container, shell pid, partner pid): one finding per pair.
        self.reported: OrderedDict[tuple[str, str, int, int], None] = OrderedDict()
        # (rule, container, pid) -> events of a process whose exec was not seen yet (the exec
        # and file records travel in different kernel buffers, so either may come first).
        self.pending: OrderedDict[tuple[str, str, int], list[Event]] = OrderedDict()
        # (rule, container, pid) -> events a rule judges once that pid's exec arrives or their
        # deadline passes (unlike ``pending``, never dropped: overflow and expiry hand them back).
        self.deferred: OrderedDict[tuple[str, str, int], list[Event]] = OrderedDict()
        # The last exec recorded and its record (several rules record the same exec in a row).
        self._last: tuple[object, tuple[str, int], RecentExec | None] = (None, ("", 0), None)

    # --- execs ---------------------------------------------------------------------------
    def observe_exec(self, ev: ProcessExec) -> RecentExec:
        """Record ``ev`` (idempotent: several rules see the same exec) and return its record."""
        last, key, rec = self._last
        if last is ev and rec is not None and self.execs.get(key) is rec:
            return rec
        key = (container_key(ev), ev.pid)
        known = self.execs.get(key)
        if known is not None and known.ts == ev.ts and known.argv == ev.argv:
            self._last = (ev, key, known)
            return known
        prog, args = program_names(ev)
        d = self.dedup
        rec = RecentExec(
            key[0],
            ev.pid,
            ev.ppid,
            ev.ts,
            d.string(prog),
            d.strings(tuple(args)),
            d.strings(ev.argv),
            d.strings(ev.stdio),
            d.string(ev.parent_comm),
        )
        if known is not None:
            self._unlink(known)
        self.execs[key] = rec
        self.execs.move_to_end(key)
        kids = self.children.get((key[0], ev.ppid))
        if kids is None:
            kids = self.children[(key[0], ev.ppid)] = {}
        kids[ev.pid] = None
        self._unasked.setdefault((key[0], ev.ppid), {})[ev.pid] = None
        self._expire(ev.ts)
        self._last = (ev, key, rec)
        return rec

    def exec_of(self, container: str, pid: int) -> RecentExec | None:
        return self.execs.get((container, pid))

    def keep_exited(self, container: str, info: ProcInfo | None) -> None:
        """Attach lineage's ``info`` of an exited process to its exec record (same exec only)."""
        key = (container, info.pid if info is not None else 0)
        rec = self.execs.get(key)
        if info is not None and rec is not None and info.source == "exec" and info.start_ts == rec.ts:
            self.execs[key] = replace(rec, info=info)

    def siblings(self, rec: RecentExec, within: float) -> list[RecentExec]:
        """Other processes exec'd by ``rec``'s parent within ``within`` seconds of ``rec``."""
        return self._near(rec, within, self.children.get((rec.container, rec.ppid), {}))

    def reader_siblings(
        self, rec: RecentExec, within: float, is_reader: Callable[[RecentExec], bool]
    ) -> list[RecentExec]:
        """``siblings(rec, within)`` that ``is_reader``: each child is tested once, when the
        first question about its parent's children after its exec comes, and the readers are
        kept apart, so a loop exec'ing hundreds of non-readers a second costs nothing per
        question. ``is_reader`` must answer the same for a record every time (the pipe rules'
        test depends on the program, its arguments and the settings of this state only). The
        walk stops at the first reader older than the window (``siblings`` at the first child):
        they differ only when exec records arrive out of time order by more than
        ``ORDER_SLACK``, and then this finds the reader ``siblings`` would have missed."""
        parent = (rec.container, rec.ppid)
        unasked = self._unasked.pop(parent, None)
        readers = self._readers.get(parent)
        if unasked:
            for pid in unasked:
                other = self.execs.get((rec.container, pid))
                self.reader_tests += 1
                if other is not None and is_reader(other):
                    if readers is None:
                        readers = self._readers[parent] = {}
                    readers[pid] = None
        return self._near(rec, within, readers or {})

    def _near(self, rec: RecentExec, within: float, kids: dict[int, None]) -> list[RecentExec]:
        out = []
        # Newest first, stopping well before the window: a script's loop can have thousands of
        # recent children, and only the few around ``rec`` matter (exec order is nearly ts order).
        for pid in reversed(kids):
            self.sibling_visits += 1
            other = self.execs.get((rec.container, pid))
            if other is None or pid == rec.pid:
                continue
            if other.ts < rec.ts - within - ORDER_SLACK:
                break
            if abs(other.ts - rec.ts) <= within:
                out.append(other)
        return sorted(out, key=lambda r: r.ts)

    def may_have_siblings(self, rec: RecentExec, within: float) -> bool:
        """False when ``siblings(rec, within)`` is surely empty: ``rec`` is its parent's newest
        child and the one before it was exec'd too long before (most execs: decided without
        asking whether either could be half of a pipeline)."""
        kids = self.children.get((rec.container, rec.ppid))
        if not kids:
            return False
        newest = reversed(kids)
        if next(newest) != rec.pid:
            return True
        before = next(newest, None)
        if before is None:
            return False
        other = self.execs.get((rec.container, before))
        return other is None or other.ts >= rec.ts - within - ORDER_SLACK

    def _unlink(self, rec: RecentExec) -> None:
        parent = (rec.container, rec.ppid)
        for table in (self.children, self._unasked, self._readers):
            kids = table.get(parent)
            if kids is not None:
                kids.pop(rec.pid, None)
                if not kids:
                    del table[parent]

    def _expire(self, now: float) -> None:
        while self.execs:
            key, oldest = next(iter(self.execs.items()))
            if len(self.execs) <= self.max_execs and oldest.ts >= now - self.horizon:
                break
            del self.execs[key]
            self._unlink(oldest)

    # --- connects ------------------------------------------------------------------------
    def observe_connect(self, ev: NetConnect) -> bool:
        """Record a completed outbound connect or an accept of ``ev``'s process; True if it was one."""
        if ev.op == "connect" and ev.state not in ("", "ESTABLISHED"):
            return False  # a failed attempt (SYN_SENT -> CLOSE)
        if ev.op not in ("connect", "accept"):
            return False
        key = (container_key(ev), ev.pid)
        peer = f"{ev.daddr}:{ev.dport}" if ev.op == "connect" else f"{ev.saddr}:{ev.sport}"
        self.connected[key] = (ev.ts, ev.op, self.dedup.string(peer))
        self.connected.move_to_end(key)
        while self.connected and (
            len(self.connected) > MAX_CONNECTED or next(iter(self.connected.values()))[0] < ev.ts - self.horizon
        ):
            self.connected.popitem(last=False)
        return True

    def connection_of(self, container: str, pid: int) -> tuple[float, str, str] | None:
        return self.connected.get((container, pid))

    # --- /proc reads ---------------------------------------------------------------------
    def observe_proc_read(self, container: str, reader: int, target: str, file: str, ts: float, window: float) -> int:
        """Record that ``reader`` read /proc/``target``/``file``; return how many distinct
        targets it read that file of within the last ``window`` seconds."""
        key = (container, reader)
        seen = self.proc_reads.get(key)
        if seen is None:
            seen = self.proc_reads[key] = {}
            while len(self.proc_reads) > MAX_READERS:
                self.proc_reads.popitem(last=False)
        self.proc_reads.move_to_end(key)
        for k in [k for k, t in seen.items() if t < ts - window]:
            del seen[k]
        if len(seen) < MAX_TARGETS or (target, file) in seen:
            seen[(target, file)] = ts
        return sum(1 for (_t, f) in seen if f == file)

    # --- one finding per pair ------------------------------------------------------------
    def first_report(self, rule: str, container: str, shell_pid: int, partner_pid: int) -> bool:
        """True the first time a (rule, container, shell, partner) pair is reported."""
        key = (rule, container, shell_pid, partner_pid)
        if key in self.reported:
            return False
        self.reported[key] = None
        while len(self.reported) > MAX_REPORTED:
            self.reported.popitem(last=False)
        return True

    # --- events waiting for their process's exec ----------------------------------------
    def park(self, rule: str, ev: Event) -> None:
        """Keep ``ev`` until the exec of its process is seen (``take_parked``)."""
        key = (rule, container_key(ev), ev.pid)
        waiting = self.pending.setdefault(key, [])
        if len(waiting) < 16:
            waiting.append(ev)
        self.pending.move_to_end(key)
        while self.pending and (
            len(self.pending) > MAX_PENDING or next(iter(self.pending.values()))[0].ts < ev.ts - PENDING_SECONDS
        ):
            self.pending.popitem(last=False)

    def take_parked(self, rule: str, ev: ProcessExec) -> list[Event]:
        """The events parked by ``rule`` for ``ev``'s process (removed), recent ones only."""
        if not self.pending:
            return []
        waiting = self.pending.pop((rule, container_key(ev), ev.pid), [])
        return [w for w in waiting if abs(ev.ts - w.ts) <= PENDING_SECONDS]

    # --- events judged once a missing ancestor is known -----------------------------------
    def defer(self, rule: str, ev: Event, wait_pid: int) -> list[Event]:
        """Keep ``ev`` until the exec of ``wait_pid`` (``release``) or its deadline
        (``overdue``); returns the events pushed out by the bound, to be judged now."""
        key = (rule, container_key(ev), wait_pid)
        waiting = self.deferred.setdefault(key, [])
        waiting.append(ev)
        out: list[Event] = []
        if len(waiting) > 16:
            out.append(waiting.pop(0))
        while len(self.deferred) > MAX_PENDING:
            out += self.deferred.popitem(last=False)[1]
        return out

    def release(self, rule: str, ev: ProcessExec) -> list[Event]:
        """The events ``rule`` deferred for ``ev``'s process (removed)."""
        if not self.deferred:
            return []
        return self.deferred.pop((rule, container_key(ev), ev.pid), [])

    def overdue(self, rule: str, now: float, wait: float) -> list[Event]:
        """The events ``rule`` deferred more than ``wait`` seconds before ``now`` (removed)."""
        if not self.deferred:
            return []
        out: list[Event] = []
        for key in [k for k, evs in self.deferred.items() if k[0] == rule and evs[0].ts < now - wait]:
            out += self.deferred.pop(key)
        return out


def lineage_of(state: DetectorState, container: str, pid: int, ppid: int = 0, comm: str = "") -> list[ProcInfo]:
    """``pid`` and its ancestors, self first; [] when the process is unknown. The process
    itself may have exited (its exec is remembered here for ``HORIZON`` seconds); its
    ancestors come from the lineage, which reads /proc for those it missed. A process never
    seen exec'ing (busybox ash runs rm, mv, touch in its fork) is named by ``comm`` (busybox
    sets it to the applet) and placed under ``ppid`` when the event carries it."""
    tree = state.lineage
    me = tree.get(container, pid)
    if me is None:
        rec = activity(state).exec_of(container, pid)
        if rec is None:
            me = tree.lookup(container, pid)
            if me is None and ppid > 0:
                me = ProcInfo(pid, ppid, "", "", comm, (), role_of(comm, state.settings), source="event")
            if me is None:
                return []
        elif rec.info is not None:
            me = rec.info  # exited: as lineage knew it (a hook script is its shell, not its name)
        else:
            role = role_of(rec.program, state.settings)
            me = ProcInfo(pid, rec.ppid, "", "", rec.program, rec.argv, role, rec.stdio, rec.ts)
    if me.source == "proc" and not me.script and comm and comm != "exe" and comm != me.program[:15]:
        # A fork that never exec'd (busybox ash running the rm applet) still shows its parent's
        # cmdline in /proc; its comm names what it runs.
        me = ProcInfo(pid, me.ppid, me.exe, "", comm, (), role_of(comm, state.settings), source="proc")
    out = [me]
    seen = {pid}
    ppid = me.ppid
    while ppid > 0 and ppid not in seen and len(out) < 32:
        seen.add(ppid)
        info = tree.lookup(container, ppid)
        if info is None:
            rec = activity(state).exec_of(container, ppid)
            if rec is None:
                # Gone before anyone looked: the comm the last exec below it named it by (the
                # runtime's "runc:[1:CHILD]" above a docker exec), as lineage names a parent.
                child = activity(state).exec_of(container, out[-1].pid)
                if child is not None and child.ppid == ppid and child.parent_comm not in ("", "exe"):
                    comm = child.parent_comm
                    out.append(ProcInfo(ppid, 0, "", "", comm, (), role_of(comm, state.settings), source="event"))
                break
            info = rec.info or ProcInfo(
                ppid, rec.ppid, "", "", rec.program, rec.argv, role_of(rec.program, state.settings)
            )
        out.append(info)
        if info.role == "runtime":
            break
        ppid = info.ppid
    return out


_BY_STATE: dict[int, Activity] = {}


def activity(state: DetectorState) -> Activity:
    """The ``Activity`` kept for ``state`` (created on first use, forgotten with the state)."""
    key = id(state)
    found = _BY_STATE.get(key)
    if found is None:
        found = _BY_STATE[key] = Activity(dedup=state.lineage.dedup)
        weakref.finalize(state, _BY_STATE.pop, key, None)
    return found
