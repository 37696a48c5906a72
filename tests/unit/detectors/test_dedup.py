# SPDX-License-Identifier: Apache-2.0
"""The detectors' dedup table: one held object per distinct string or string tuple, equal to what
it was given, and bounded whatever stream of distinct values comes (issue 18)."""

from __future__ import annotations

from agent.detectors.activity import activity
from agent.detectors.dedup import Dedup
from agent.detectors.spec import DetectorState
from agent.events import ProcessExit
from tests.unit.detectors.sequence_cases import C, exe


def fresh(text: str) -> str:
    """An equal string that is not the same object (as a decoder makes one per event)."""
    return text.encode().decode()


def test_equal_values_come_back_as_one_object() -> None:
    d = Dedup()
    a, b = fresh("http://web:8080/"), fresh("http://web:8080/")
    assert a is not b
    assert d.string(a) is a
    assert d.string(b) is a
    t1 = (fresh("wget"), fresh("-q"), fresh("http://web:8080/"))
    t2 = (fresh("wget"), fresh("-q"), fresh("http://web:8080/"))
    h1, h2 = d.strings(t1), d.strings(t2)
    assert h1 == t1 == t2 and h2 is h1
    assert h1[2] is a  # the strings inside a held tuple are the held strings
    assert d.string("") == "" and d.strings(()) == ()
    argv_list = ["sh", "-c", "id"]
    assert d.strings(argv_list) is argv_list  # type: ignore[arg-type]  # not a tuple: left alone


def test_bounded_by_count_and_still_equal_after_a_reset() -> None:
    d = Dedup(max_strings=64, max_tuples=16)
    for i in range(1000):
        s = fresh(f"pipe:[{i}]")
        assert d.string(s) == s
        t = (fresh("/dev/null"), s, fresh(f"socket:[{i}]"))
        assert d.strings(t) == t
        assert len(d._strs) <= 64 and len(d._tuples) <= 16
    assert d.resets > 0
    held = d.string(fresh("after"))
    assert d.string(fresh("after")) is held


def test_lineage_and_activity_records_share_one_copy_and_keep_the_values() -> None:
    st = DetectorState()
    act = activity(st)
    assert act.dedup is st.lineage.dedup
    recs, infos = [], []
    for pid in (501, 502, 503):
        argv = (fresh("wget"), fresh("-q"), fresh("-O"), fresh("/dev/null"), fresh("http://web:8080/"))
        ev = exe(pid, 100, *argv, ts=1000.0 + pid, stdio=(fresh("/dev/null"), fresh("pipe:[7]"), fresh("/dev/null")))
        infos.append(st.remember_exec(ev))
        recs.append(act.observe_exec(ev))
        assert infos[-1].argv == ev.argv and recs[-1].argv == ev.argv and recs[-1].stdio == ev.stdio
        assert recs[-1].args == ev.argv[1:] and recs[-1].program == "wget"
        act.keep_exited(C.id, st.lineage.get(C.id, pid))
        st.lineage.on_exit(ProcessExit(ts=1000.5 + pid, cgroup_id=7, pid=pid, container=C, comm="wget"))
    assert recs[0].argv is recs[1].argv is recs[2].argv is infos[0].argv is infos[2].argv
    assert recs[0].stdio is recs[2].stdio and recs[0].args is recs[1].args
    assert recs[0].program is recs[2].program and infos[0].program is infos[1].program
    kept = act.exec_of(C.id, 502)
    assert kept is not None and kept.info is infos[1]  # what lineage knew, kept past the exit
