# SPDX-License-Identifier: Apache-2.0
"""The syscall-sequence views (Kneser-Ney, suffix automaton, TF-IDF) and the calibrated combination."""

from __future__ import annotations

import gzip
import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.behavior.seqbag import TfidfNeighbours, ngram_counts
from agent.behavior.seqcalib import cross_fit
from agent.behavior.seqcover import SuffixAutomaton
from agent.behavior.seqlm import BOS, EOS, UNK, KneserNeyModel
from agent.behavior.seqmodel import SequenceModel, SequenceModelError, SequenceSettings

# A small Markov chain over syscall-like ids: normal traces are exchangeable draws from it.
_STATES = [0, 1, 3, 9, 12, 13, 17, 39, 57, 59, 61, 202, 232, 257, 262]


def _chain(seed: int) -> dict[int, tuple[list[int], list[float]]]:
    rng = random.Random(seed)
    out = {}
    for s in _STATES:
        nxt = rng.sample(_STATES, 4)
        out[s] = (nxt, [rng.random() + 0.1 for _ in nxt])
    return out


CHAIN = _chain(7)


def markov_trace(rng: random.Random, lo: int = 30, hi: int = 200) -> list[int]:
    seq = [rng.choice(_STATES[:3])]
    for _ in range(rng.randint(lo, hi) - 1):
        nxt, w = CHAIN[seq[-1]]
        seq.append(rng.choices(nxt, w)[0])
    return seq


def attack_of(rng: random.Random) -> list[int]:
    seq = markov_trace(rng, 60, 120)
    shell = [43, 33, 33, 33, 59, 12, 257, 0, 101]  # accept, dup2 x3, execve, brk, openat, read, ptrace
    cut = len(seq) // 2
    return seq[:cut] + shell * 2 + seq[cut:]


# --- Kneser-Ney ---------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [2, 3, 7])
def test_kn_probabilities_sum_to_one_over_the_vocabulary(order: int) -> None:
    rng = random.Random(order)
    lm = KneserNeyModel(order).fit([markov_trace(rng) for _ in range(40)])
    vocab = sorted(lm.vocab)
    assert EOS in vocab and UNK in vocab and BOS not in vocab
    train = markov_trace(rng)
    contexts = [
        [],  # start of a trace
        train[:1],
        train[:order],
        train[5 : 5 + order - 1],
        [999, 998, 997],  # unknown syscalls: unseen contexts at every order
        [train[0], 500, train[1]],
    ]
    for ctx in contexts:
        total = sum(lm.prob(ctx, w) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-9), (ctx, total)
        assert all(lm.prob(ctx, w) > 0 for w in vocab)


def test_kn_surprisal_matches_prob_and_unknown_syscalls_are_expensive() -> None:
    rng = random.Random(2)
    lm = KneserNeyModel(4).fit([markov_trace(rng) for _ in range(60)])
    seq = markov_trace(rng, 20, 20)
    s = lm.surprisal(seq)
    assert len(s) == len(seq) + 1  # every call plus the end marker
    for i, w in enumerate([*seq, EOS]):
        assert s[i] == pytest.approx(-math.log(lm.prob(seq[:i], w)))
    weird = [*seq[:10], 311, *seq[10:]]  # process_vm_writev never seen
    assert lm.score(weird) > lm.score(seq)
    assert max(lm.surprisal(weird)) > -math.log(1.0 / len(lm.vocab))  # below the uniform floor


def test_kn_scores_attacks_above_normal_and_survives_serialisation() -> None:
    rng = random.Random(3)
    lm = KneserNeyModel(6).fit([markov_trace(rng) for _ in range(80)])
    normal = [lm.score(markov_trace(rng)) for _ in range(30)]
    attacks = [lm.score(attack_of(rng)) for _ in range(30)]
    assert min(attacks) > sorted(normal)[-2]
    again = KneserNeyModel.from_arrays(lm.arrays())
    probe = attack_of(rng)
    assert again.surprisal(probe) == pytest.approx(lm.surprisal(probe))
    with pytest.raises(ValueError, match="order"):
        KneserNeyModel(1)


# --- suffix automaton ---------------------------------------------------------------------------
def _brute_longest(train: list[list[int]], query: list[int], end: int) -> int:
    best = 0
    for length in range(1, end + 2):
        sub = query[end - length + 1 : end + 1]
        if any(sub == t[i : i + length] for t in train for i in range(len(t) - length + 1)):
            best = length
        else:
            break
    return best


def test_suffix_automaton_longest_match_equals_brute_force() -> None:
    rng = random.Random(11)
    for _ in range(60):
        alphabet = rng.randint(2, 4)
        train = [[rng.randrange(alphabet) for _ in range(rng.randint(1, 25))] for _ in range(rng.randint(1, 4))]
        sam = SuffixAutomaton(train)
        assert sam.states <= 2 * sum(len(t) + 1 for t in train)
        query = [rng.randrange(alphabet + 1) for _ in range(rng.randint(0, 30))]
        assert sam.match_lengths(query) == [_brute_longest(train, query, e) for e in range(len(query))]


def test_suffix_automaton_matches_never_cross_two_traces() -> None:
    sam = SuffixAutomaton([[1, 2, 3], [4, 5, 6]])
    assert sam.match_lengths([2, 3, 4, 5]) == [1, 2, 1, 2]
    assert sam.score([1, 2, 3]) == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert sam.score([7, 7]) == 1.0 and sam.score([]) == 1.0


# --- TF-IDF neighbours --------------------------------------------------------------------------
def test_tfidf_distance_is_zero_for_a_training_trace_and_one_for_a_disjoint_one() -> None:
    rng = random.Random(5)
    train = [markov_trace(rng) for _ in range(30)]
    bag = TfidfNeighbours(3).fit(train)
    for t in train[:10]:
        assert bag.score(t) == pytest.approx(0.0, abs=1e-5)
    assert bag.score([700, 701, 702, 703]) == pytest.approx(1.0)
    fresh = markov_trace(rng)
    assert 0.0 < bag.score(fresh) < bag.score(attack_of(rng)) + 0.5
    assert bag.score(fresh + [311] * 5) > bag.score(fresh)  # unseen n-grams lengthen the vector
    assert bag.score([]) == 1.0


# --- the combined, calibrated model -------------------------------------------------------------
@pytest.mark.parametrize("target", [0.02, 0.05])
def test_calibrated_fpr_on_held_back_normal_traces_is_within_a_factor_of_two(target: float) -> None:
    # The threshold is a quantile estimated from 400 traces: the check allows for that sampling
    # error (factor of two), not for a biased calibration.
    rng = random.Random(1)
    model = SequenceModel.fit(
        [markov_trace(rng, 30, 120) for _ in range(400)], SequenceSettings(order=5, target_fpr=target)
    )
    held_back = [model.score(markov_trace(rng, 30, 120)) for _ in range(1200)]
    fpr = sum(r.anomalous for r in held_back) / len(held_back)
    assert target / 2 <= fpr <= target * 2, fpr
    attacks = [model.score(attack_of(rng)) for _ in range(40)]
    assert sum(r.anomalous for r in attacks) / len(attacks) >= 0.9
    assert all(set(r.views) == {"kn", "bag"} for r in attacks)  # the default views


def test_combined_model_round_trips_through_its_file() -> None:
    rng = random.Random(9)
    model = SequenceModel.fit([markov_trace(rng) for _ in range(40)], SequenceSettings(order=6, folds=4))
    again = SequenceModel.from_bytes(model.to_bytes())
    assert again.threshold == model.threshold and again.settings == model.settings
    assert again.meta["distinct_traces"] == model.meta["distinct_traces"] == 40
    for seq in (markov_trace(rng), attack_of(rng), [1]):
        assert again.score(seq) == model.score(seq)


def test_combined_model_rejects_bad_input_with_messages() -> None:
    with pytest.raises(SequenceModelError, match="at least 5 non-empty traces"):
        SequenceModel.fit([[1, 2], [3], []])
    with pytest.raises(SequenceModelError, match="target FPR"):
        SequenceSettings(target_fpr=0.0).check()
    with pytest.raises(SequenceModelError, match="views"):
        SequenceSettings(views=("kn", "lstm")).check()
    with pytest.raises(SequenceModelError, match="unreadable syscall sequence model"):
        SequenceModel.from_bytes(b"PK\x03\x04 not a zip")
    rng = random.Random(1)
    blob = SequenceModel.fit([markov_trace(rng) for _ in range(10)], SequenceSettings(views=("kn",))).to_bytes()
    assert SequenceModel.from_bytes(blob).settings.views == ("kn",)


def test_kn_learns_how_often_each_trace_occurred() -> None:
    common, rare = [1, 2, 3, 4, 5], [1, 2, 9, 4, 5]
    lm = KneserNeyModel(3).fit([common, rare], weights=[20, 1])
    assert lm.score(common) < lm.score(rare)
    assert lm.grams[3] == KneserNeyModel(3).fit([common] * 20 + [rare]).grams[3]
    model = SequenceModel.fit([common] * 20 + [rare] * 5, SequenceSettings(order=3, views=("kn",)))
    assert (model.traces, model.counts) == ([common, rare], [20, 5])
    assert SequenceModel.from_bytes(model.to_bytes()).counts == [20, 5]


def test_tfidf_inverted_index_equals_dense_cosine() -> None:
    rng = random.Random(12)
    train = [markov_trace(rng, 5, 40) for _ in range(25)]
    bag = TfidfNeighbours(3).fit(train)
    terms = sorted(bag.index, key=bag.index.__getitem__)

    def dense(seq: list[int]) -> tuple[list[float], float]:
        counts = ngram_counts(seq, 3)
        vec = [(1 + math.log(counts[g])) * bag.idf[i] if counts.get(g) else 0.0 for i, g in enumerate(terms)]
        unseen = sum(((1 + math.log(c)) * bag.unseen_idf) ** 2 for g, c in counts.items() if g not in bag.index)
        return vec, math.sqrt(sum(v * v for v in vec) + unseen)

    rows = []
    for t in train:
        v, n = dense(t)
        rows.append([x / n for x in v])
    for q in [markov_trace(rng, 5, 40) for _ in range(10)] + [attack_of(rng)]:
        v, n = dense(q)
        best = max(sum(a * b for a, b in zip(r, v, strict=True)) for r in rows) / n
        assert bag.score(q) == pytest.approx(1 - best, abs=1e-8)


def test_cross_fitting_keeps_each_group_in_one_fold() -> None:
    items = list(range(40))
    groups = [i // 4 for i in items]  # ten runs of four processes

    def fit(train: list[int]) -> Callable[[int], list[float]]:
        members = set(train)
        return lambda x: [float(sum(groups[i] == groups[x] for i in members))]  # siblings in training

    held = cross_fit(items, 5, 1, fit, groups)
    assert all(row == [0.0] for row in held)  # no sibling of a held-out item was in its training folds
    plain = cross_fit(items, 5, 1, fit)
    assert any(row != [0.0] for row in plain)
    with pytest.raises(ValueError, match="3 groups for 40 items"):
        cross_fit(items, 5, 1, fit, [1, 2, 3])
    rng = random.Random(2)
    traces = [markov_trace(rng, 20, 40) for _ in range(12)]
    with pytest.raises(SequenceModelError, match="2 groups for 12 traces"):
        SequenceModel.fit(traces, groups=["a", "b"])
    assert SequenceModel.fit(traces, groups=[i % 6 for i in range(12)]).meta["groups"] == 6
    assert SequenceModel.fit(traces, groups=[i % 2 for i in range(12)]).meta["groups"] == 0  # < folds


# --- calibration on the recorded traces (tests/fixtures/syscalls: train and dev splits only) ----
_RECORDED = Path(__file__).resolve().parents[2] / "fixtures" / "syscalls"


def _recorded(split: str, cls: str = "benign") -> list[tuple[tuple[str, int], list[int]]]:
    """``((workload@image, run), calls)`` per process of one split and class."""
    out = []
    for path in sorted((_RECORDED / split / cls).glob("*.txt.gz")):
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            parts = line.split()
            if len(parts) > 3:
                out.append(((path.name.removesuffix(".txt.gz"), int(parts[0])), [int(v) for v in parts[3:]]))
    return out


def test_default_verdict_holds_its_target_on_new_runs_whatever_runs_it_learned_from() -> None:
    # Real traces come in runs (a container's processes are alike), so a 1 % quantile rests on a
    # few runs' tails; the default views must give a threshold whose false-positive rate on the
    # dev split's new runs stays within a factor of two of the target for each of several 80 %
    # subsets of the training runs. The three-view combination with the near-binary covering
    # view does not (2.2 % for the second subset; 1.5 % on average against 1.0 % without it).
    train, dev = _recorded("train"), _recorded("dev")
    runs = sorted({g for g, _ in train})
    for rep in (1, 2, 3):
        order = runs[:]
        random.Random(rep).shuffle(order)
        keep = set(order[: int(len(order) * 0.8)])
        part = [(g, s) for g, s in train if g in keep]
        model = SequenceModel.fit([s for _, s in part], SequenceSettings(), [g for g, _ in part])
        fpr = sum(model.score(s).anomalous for _, s in dev) / len(dev)
        assert 0.005 <= fpr <= 0.02, (rep, fpr)
