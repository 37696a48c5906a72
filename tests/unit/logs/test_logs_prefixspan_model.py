# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import itertools
import random

from agent.logs.model import ModelParams, SequenceModel
from agent.logs.prefixspan import contains, frequent_patterns


def brute_force(seqs: list[list[str]], min_sup: int, max_len: int) -> dict[tuple[str, ...], int]:
    alphabet = sorted({s for seq in seqs for s in seq})
    out = {}
    for n in range(1, max_len + 1):
        for pat in itertools.product(alphabet, repeat=n):
            sup = sum(contains(seq, pat) for seq in seqs)
            if sup >= min_sup:
                out[pat] = sup
    return out


def test_prefixspan_equals_brute_force() -> None:
    rnd = random.Random(3)
    seqs = [[rnd.choice("abcd") for _ in range(rnd.randrange(1, 7))] for _ in range(40)]
    got = dict(frequent_patterns(seqs, min_support=8, max_len=3))
    assert got == brute_force(seqs, 8, 3)


def test_prefixspan_textbook_example() -> None:
    seqs = [list("abcb"), list("abbca"), list("cab"), list("bca")]
    got = dict(frequent_patterns(seqs, min_support=3, max_len=3))
    assert got[("a", "b")] == 3 and got[("b", "c")] == 3 and ("c", "b") not in got


def normal_sessions(n: int, rnd: random.Random) -> list[list[str]]:
    out = []
    for _ in range(n):
        s = ["login/2xx"] + [rnd.choice(["list/2xx", "get/2xx", "put/2xx"]) for _ in range(rnd.randrange(1, 5))]
        out.append([*s, "logout/2xx"])
    return out


def test_model_flags_unseen_and_missing_patterns() -> None:
    rnd = random.Random(1)
    model = SequenceModel(ModelParams()).fit(normal_sessions(300, rnd))
    for s in normal_sessions(50, rnd):
        score, anomalous, _ = model.score(s)
        assert not anomalous, (s, score)
    score, anomalous, why = model.score(["login/4xx"] * 8 + ["login/2xx", "admin/2xx"])
    assert anomalous and score >= 0.5
    kinds = {w["kind"] for w in why}
    assert {"unseen_transition", "next_event_not_in_top_k", "missing_pattern"} <= kinds
    again = SequenceModel.from_dict(model.to_dict())
    assert again.score(["login/2xx", "admin/2xx"])[0] == model.score(["login/2xx", "admin/2xx"])[0]
