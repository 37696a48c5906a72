# SPDX-License-Identifier: Apache-2.0
"""The transition-window scorer (live windows of kernel-counted syscall transitions)."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

import pytest
from test_seq_models import attack_of, markov_trace

from agent.behavior.seqlm import UNK, KneserNeyModel
from agent.behavior.seqwindow import TransitionWindowModel, WindowModelError


def window(seqs: list[list[int]]) -> dict[tuple[int, int], int]:
    """What the kernel would count for these threads: previous -> next syscall, per thread."""
    c: Counter[tuple[int, int]] = Counter()
    for s in seqs:
        c.update(itertools.pairwise(s))
    return dict(c)


def normal_window(rng: random.Random) -> dict[tuple[int, int], int]:
    return window([markov_trace(rng, 20, 80) for _ in range(rng.randint(1, 4))])


def test_kn_from_counted_bigrams_is_a_distribution_and_scores_by_count() -> None:
    counts = {(1, 2): 5, (2, 3): 3, (3, 1): 2, (2, 1): 1, (4, 2): 1}
    lm = KneserNeyModel(2).fit_counts(counts)
    vocab = sorted(lm.vocab)
    assert {1, 2, 3, 4, UNK} <= set(vocab)
    for ctx in ([1], [2], [4], [99]):
        assert sum(lm.prob(ctx, w) for w in vocab) == pytest.approx(1.0)
    w = {(1, 2): 3, (2, 9): 1}
    expected = (3 * -math.log(lm.prob([1], 2)) + -math.log(lm.prob([2], 9))) / 4
    assert lm.score_counts(w) == pytest.approx(expected)
    assert lm.score_counts({}) == 0.0
    with pytest.raises(ValueError, match="expected 2-grams"):
        KneserNeyModel(2).fit_counts({(1, 2, 3): 1})


@pytest.mark.parametrize("target", [0.02, 0.05])
def test_window_fpr_on_held_back_normal_windows_is_within_a_factor_of_two(target: float) -> None:
    rng = random.Random(1)
    model = TransitionWindowModel.fit([normal_window(rng) for _ in range(400)], target_fpr=target)
    held_back = [model.score(normal_window(rng)) for _ in range(1000)]
    fpr = sum(r.anomalous for r in held_back) / len(held_back)
    assert target / 2 <= fpr <= target * 2, fpr
    attacks = [model.score(window([attack_of(rng), markov_trace(rng)])) for _ in range(30)]
    assert sum(r.anomalous for r in attacks) / len(attacks) >= 0.9
    assert set(attacks[0].views) == {"kn", "bag", "novel"}
    reasons = model.explain(window([[43, 33, 59, 101, 101]] * 3 + [markov_trace(rng)]), top=3)
    # ptrace (101) and accept (43) never occur in training: their transitions lead, by surprisal x count.
    assert [r["chain"] for r in reasons] == ["execve->ptrace", "ptrace->ptrace", "accept->dup2"]
    assert all(not r["seen"] and r["count"] == 3 and r["surprisal"] > 3 for r in reasons)


def test_window_model_round_trips_and_rejects_bad_input() -> None:
    rng = random.Random(4)
    model = TransitionWindowModel.fit([normal_window(rng) for _ in range(30)] + [{}])
    assert model.meta["windows"] == 30  # the empty window is ignored
    again = TransitionWindowModel.from_bytes(model.to_bytes())
    for w in (normal_window(rng), window([attack_of(rng)]), {(1, 2): 0}):
        assert again.score(w) == model.score(w)
    two = TransitionWindowModel.fit([normal_window(rng) for _ in range(30)], views=("kn", "bag"))
    assert TransitionWindowModel.from_bytes(two.to_bytes()).calibration.views == ("kn", "bag")
    with pytest.raises(WindowModelError, match="views must be"):
        TransitionWindowModel.fit([normal_window(rng) for _ in range(30)], views=("gru",))
    with pytest.raises(WindowModelError, match="at least 5 non-empty windows"):
        TransitionWindowModel.fit([{(1, 2): 1}, {}])
    with pytest.raises(WindowModelError, match="target FPR"):
        TransitionWindowModel.fit([normal_window(rng) for _ in range(10)], target_fpr=0.7)
    with pytest.raises(WindowModelError, match="unreadable transition-window model"):
        TransitionWindowModel.from_bytes(b"not a model")
