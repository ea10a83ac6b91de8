"""MO-ASHA's promotion rule: rungs, non-dominated ranking, both tie-breaks, early arrivals."""

from __future__ import annotations

import numpy as np
import pytest

from sparsity_search.moasha import promotable, rank_records, rung_epochs, should_continue

MAX_MIN = ["maximize", "minimize"]

# One front of six (val_accuracy, spikes). Scaled: z0 = (0.95 - acc) / 0.15, z1 = (spikes - 100) / 900.
# The epsilon-net starts at the best accuracy (p0), takes the far end (p5), then p2 (min distance .648),
# p3 (.351 to p5), p1 (.129 to p0) and last p4 (.068 to p3).
# Hypervolume (reference 1.1, 1.1): the largest box is p2's (.767 x .656 = .503; p3 .428, p4 .367, p1 .218,
# p0 and p5 .110); given p2, p3 adds most (.144; p4 .126, p1 .056, p5 .044, p0 .033); given p2 and p3, p1 adds
# .056 (p0 .033, p5 .011, p4 .004); then p5 (.011) before p0 (.007, most of it now under p1) and p4 (.004).
FRONT = [("p0", (0.95, 1000)), ("p1", (0.94, 900)), ("p2", (0.90, 500)),
         ("p3", (0.85, 200)), ("p4", (0.84, 190)), ("p5", (0.80, 100))]
EPS = "epsilon_net"
FRONT_Z = np.array([[(0.95 - a) / 0.15, (s - 100) / 900] for _, (a, s) in FRONT])


def test_rung_epochs():
    assert rung_epochs(1, 3, 27) == [1, 3, 9]
    assert rung_epochs(2, 2, 20) == [2, 4, 8, 16]
    assert rung_epochs(5, 3, 5) == []
    with pytest.raises(ValueError):
        rung_epochs(0, 3, 27)
    with pytest.raises(ValueError):
        rung_epochs(1, 1, 27)


def test_the_first_arrival_continues_alone_and_later_ones_must_rank_first():
    assert should_continue([("a", (0.1, 1e6))], "a", MAX_MIN, 3)  # nobody to compare with
    # With fewer than 2 * rf records max(1, n // rf) = 1 continues: the arrival must rank first.
    assert not should_continue([("a", (0.9, 100)), ("b", (0.1, 1e6))], "b", MAX_MIN, 3)
    assert should_continue([("a", (0.9, 100)), ("b", (0.95, 90))], "b", MAX_MIN, 3)
    # two on one front are its two ends: equal boxes, so the earlier record goes first and the arrival stops
    assert not should_continue([("a", (0.9, 100)), ("b", (0.8, 10))], "b", MAX_MIN, 3)
    assert should_continue([("b", (0.8, 10)), ("a", (0.9, 100))], "b", MAX_MIN, 3)
    # the epsilon-net takes the best accuracy first, whatever the order
    assert not should_continue([("b", (0.8, 10)), ("a", (0.9, 100))], "b", MAX_MIN, 3, EPS)
    records = [("a", (0.9, 100)), ("b", (0.8, 10)), ("c", (0.95, 900)), ("d", (0.7, 5)), ("e", (0.6, 1))]
    assert not should_continue(records[:4], "d", MAX_MIN, 3, EPS)  # 4 // 3 = 1: only c
    assert should_continue(records, "e", MAX_MIN, 2, EPS)  # 5 // 2 = 2: c, then the far end of the front, e
    # by hypervolume a (box .947 of 1.21) then b (adds .067, c .014, d .041, e .011): c, d and e stop
    assert rank_records(records, MAX_MIN) == ["a", "b", "c", "d", "e"]
    assert [should_continue(records, t, MAX_MIN, 2) for t in "abcde"] == [True, True, False, False, False]


def test_dominated_trials_stop_and_the_front_continues():
    records = [("a", (0.9, 100)), ("b", (0.8, 200)), ("c", (0.7, 300)), ("d", (0.95, 150))]
    # 4 // 2 = 2 continue: the front {a, d}; b and c are dominated by a.
    assert [should_continue(records, t, MAX_MIN, 2) for t in "abcd"] == [True, False, False, True]
    assert rank_records(records, MAX_MIN, EPS)[:2] == ["d", "a"]  # epsilon-net starts at the best accuracy
    assert rank_records(records, MAX_MIN)[:2] == ["a", "d"]  # a's box: .9 x 1.1; d's: 1.1 x .85
    for tie_break in ("hypervolume", EPS):
        assert rank_records(records, MAX_MIN, tie_break)[2:] == ["b", "c"]


def test_ties_on_one_front_are_broken_by_hypervolume_contribution_by_default():
    assert rank_records(FRONT, MAX_MIN) == ["p2", "p3", "p1", "p5", "p0", "p4"]
    # 6 // 3 = 2 continue: the middle of the trade-off, not its ends.
    assert [should_continue(FRONT, t, MAX_MIN, 3) for t, _ in FRONT] == [False, False, True, True, False, False]


def test_ties_on_one_front_are_broken_by_the_epsilon_net_on_request():
    assert rank_records(FRONT, MAX_MIN, EPS) == ["p0", "p5", "p2", "p3", "p1", "p4"]
    # 6 // 3 = 2 continue: both extremes of the trade-off, not the two most accurate.
    assert [should_continue(FRONT, t, MAX_MIN, 3, EPS) for t, _ in FRONT] == [True, False, False, False, False, True]


def test_hypervolume_promotes_a_useful_trade_off_before_a_dense_or_a_silent_net():
    # A silent net (no spikes, chance accuracy) is on every front; the epsilon-net's second pick. With
    # 4 // 3 = 1 survivor the epsilon-net keeps the densest, hypervolume a sparse net that kept its accuracy.
    records = [("dense", (0.97, 110)), ("knee", (0.95, 40)), ("silent", (0.10, 0)), ("sparse", (0.90, 20))]
    assert rank_records(records, MAX_MIN, EPS)[:2] == ["dense", "silent"]
    assert rank_records(records, MAX_MIN)[:2] == ["sparse", "knee"]
    assert rank_records(records, MAX_MIN)[-2:] == ["silent", "dense"]


@pytest.mark.parametrize("tie_break", ["hypervolume", EPS])
def test_rank_does_not_depend_on_record_order_without_exact_ties(tie_break):
    expected = rank_records(FRONT, MAX_MIN, tie_break)
    rng = np.random.default_rng(0)
    for _ in range(5):
        shuffled = [FRONT[i] for i in rng.permutation(len(FRONT))]
        assert rank_records(shuffled, MAX_MIN, tie_break) == expected


@pytest.mark.parametrize("tie_break", ["hypervolume", EPS])
def test_duplicates_go_last_and_exact_ties_follow_record_order(tie_break):
    records = [("a", (0.9, 100)), ("b", (0.9, 100)), ("c", (0.8, 50))]
    assert rank_records(records, MAX_MIN, tie_break) == ["a", "c", "b"]
    assert [should_continue(records, t, MAX_MIN, 3, tie_break) for t in "abc"] == [True, False, False]


@pytest.mark.parametrize("tie_break", ["hypervolume", EPS])
def test_later_fronts_follow_and_missing_values_rank_last(tie_break):
    records = [("x", (np.nan, np.nan)), ("a", (0.9, 100)), ("b", (0.8, 200)), ("c", (0.85, 50))]
    assert rank_records(records, MAX_MIN, tie_break) == ["a", "c", "b", "x"]


@pytest.mark.parametrize("tie_break", ["hypervolume", EPS])
def test_three_objectives(tie_break):
    dirs = ["maximize", "minimize", "minimize"]
    records = [("a", (0.9, 100, 5)), ("b", (0.9, 100, 6)), ("c", (0.8, 50, 5))]
    assert rank_records(records, dirs, tie_break) == ["a", "c", "b"]
    # one front of three in 3-D: the box of b (the middle) is the largest
    front = [("a", (0.9, 100, 9)), ("b", (0.85, 60, 5)), ("c", (0.8, 50, 1))]
    assert rank_records(front, dirs)[0] == "b" and rank_records(front, dirs, EPS)[0] == "a"


def test_invalid_calls():
    with pytest.raises(ValueError, match="no record"):
        should_continue([("a", (0.9, 1))], "z", MAX_MIN, 2)
    with pytest.raises(ValueError, match="twice"):
        rank_records([("a", (0.9, 1)), ("a", (0.8, 1))], MAX_MIN)
    with pytest.raises(ValueError, match="reduction_factor"):
        should_continue([("a", (0.9, 1))], "a", MAX_MIN, 1)
    with pytest.raises(ValueError, match="tie_break"):
        rank_records([("a", (0.9, 1))], MAX_MIN, "crowding")
    assert rank_records([], MAX_MIN) == []


def test_gains_equal_the_general_hypervolume_difference():
    from sparsity_search.moasha import _gain, _gains_2d
    from sparsity_search.pareto import hypervolume

    rng = np.random.default_rng(1)
    for d in (2, 3):
        minimize, reference = ["minimize"] * d, [1.1] * d
        for _ in range(50):
            taken, candidates = rng.random((rng.integers(0, 8), d)), rng.random((6, d))
            before = hypervolume(taken, minimize, reference)
            expected = [hypervolume(np.vstack([taken, c]), minimize, reference) - before for c in candidates]
            np.testing.assert_allclose([_gain(taken, c) for c in candidates], expected, atol=1e-11)
            if d == 2:
                np.testing.assert_allclose(_gains_2d(taken, candidates), expected, atol=1e-12)


def test_the_lazy_order_of_three_objectives_is_the_eager_greedy_order():
    from sparsity_search.moasha import _gain, _hypervolume_order

    rng = np.random.default_rng(2)
    for _ in range(20):
        z = rng.random((12, 3))
        z[:, 2] = 1.0 - z[:, 0]  # mostly one front
        eager: list[int] = []
        while len(eager) < len(z):
            gains = [_gain(z[eager], c) if i not in eager else -1.0 for i, c in enumerate(z)]
            eager.append(int(np.argmax(gains)))
        assert _hypervolume_order(z, len(z)) == eager
        assert _hypervolume_order(z, 4) == eager[:4]
    # a constant third objective changes no gain's rank: the 2-D order
    flat = np.hstack([FRONT_Z, np.zeros((len(FRONT_Z), 1))])
    assert _hypervolume_order(flat, 6) == _hypervolume_order(FRONT_Z, 6) == [2, 3, 1, 5, 0, 4]


def test_a_missing_objective_adds_no_volume_and_goes_last_in_its_front():
    records = [("x", (np.nan, 5)), ("a", (0.9, 100)), ("b", (0.8, 10))]
    assert rank_records(records, MAX_MIN)[-1] == "x"
    assert should_continue(records, "a", MAX_MIN, 3) and not should_continue(records, "x", MAX_MIN, 3)


# --- constraint-aware ranking (Deb's constrained domination) -------------------------------------------------

def test_limits_rank_every_feasible_record_before_any_infeasible_one():
    # "silent" is on the front (fewest spikes) but below the 0.5 accuracy floor: without limits the
    # hypervolume tie-break ranks it third, with them it goes after the dominated-but-feasible "slow".
    records = [("a", (0.9, 100)), ("silent", (0.1, 0)), ("slow", (0.8, 200)), ("b", (0.85, 50))]
    assert rank_records(records, MAX_MIN) == ["b", "a", "silent", "slow"]
    # The feasible three are scaled among themselves (accuracy 0.8..0.9, spikes 50..200): a's box
    # (1.1 x .767 = .843) is now larger than b's (.6 x 1.1 = .66), so a goes first.
    assert rank_records(records, MAX_MIN, limits=[0.5, None]) == ["a", "b", "slow", "silent"]
    assert not should_continue(records, "silent", MAX_MIN, 2, limits=[0.5, None])


def test_infeasible_records_rank_by_violation_then_record_order_and_missing_values_last():
    records = [("x", (np.nan, 5)), ("far", (0.2, 1)), ("near", (0.45, 900)), ("tie", (0.45, 10)), ("ok", (0.6, 9e3))]
    # ok is the only feasible one; near and tie miss by 0.05 (record order decides), far by 0.3, x without bound
    assert rank_records(records, MAX_MIN, limits=[0.5, None]) == ["ok", "near", "tie", "far", "x"]
    assert rank_records(records, MAX_MIN, limit=2, limits=[0.5, None]) == ["ok", "near"]


def test_a_limit_on_a_minimised_objective_is_a_maximum_and_violations_add_up():
    records = [("a", (0.9, 300)), ("b", (0.4, 150)), ("c", (0.3, 120)), ("d", (0.7, 50))]
    # limits: accuracy >= 0.5 and spikes <= 200; a misses by 100 spikes, b by 0.1, c by 0.2: b, c, a
    assert rank_records(records, MAX_MIN, limits=[0.5, 200]) == ["d", "b", "c", "a"]
    with pytest.raises(ValueError, match="one entry per objective"):
        rank_records(records, MAX_MIN, limits=[0.5])


# --- promotion (ASHA): who pauses, who resumes ---------------------------------------------------------------

def test_a_rung_promotes_nobody_before_it_holds_reduction_factor_records():
    rungs = {1: [("a", (0.9, 100)), ("b", (0.5, 500))]}
    assert promotable(rungs, {"a", "b"}, MAX_MIN, 3) is None  # 2 // 3 = 0: start a new trial
    rungs[1].append(("c", (0.6, 400)))
    assert promotable(rungs, {"a", "b", "c"}, MAX_MIN, 3) == ("a", 1)  # 3 // 3 = 1: the best, a


def test_the_highest_rung_is_served_first_and_only_paused_trials_at_their_own_rung_count():
    rungs = {
        1: [("a", (0.9, 100)), ("b", (0.8, 90)), ("c", (0.5, 500)), ("d", (0.4, 600)), ("e", (0.3, 700)),
            ("f", (0.2, 800))],
        3: [("a", (0.92, 95)), ("b", (0.7, 80)), ("g", (0.99, 10))],
    }
    # rung 3 (3 // 3 = 1): g ranks first but is not paused (running or finished): nobody there. Rung 1
    # (6 // 3 = 2): a and b are its top, but both are paused at rung 3, their highest: nobody either.
    assert promotable(rungs, {"a", "b", "c", "d", "e", "f"}, MAX_MIN, 3) is None
    rungs[3] = [("a", (0.92, 95)), ("b", (0.7, 80)), ("h", (0.1, 900))]
    assert promotable(rungs, {"a", "b", "c"}, MAX_MIN, 3) == ("a", 3)  # the higher rung first
    assert promotable(rungs, {"b", "c"}, MAX_MIN, 3) is None  # b is not in rung 3's top (a is), c not in 1's
    rungs[1].append(("i", (0.95, 50)))  # 7 // 3 = 2: i (dominates all), then a by hypervolume
    assert promotable(rungs, {"b", "c", "i"}, MAX_MIN, 3) == ("i", 1)


def test_a_paused_trial_pushed_out_of_the_top_stays_and_one_ranked_into_it_later_is_promoted():
    rungs = {1: [("a", (0.6, 300)), ("b", (0.9, 100)), ("c", (0.5, 400))]}
    assert promotable(rungs, {"a", "c"}, MAX_MIN, 3) is None  # b (top, 3 // 3 = 1) was promoted already
    rungs[1] += [("d", (0.4, 500)), ("e", (0.3, 600)), ("f", (0.2, 700))]
    assert promotable(rungs, {"a", "c", "d", "e", "f"}, MAX_MIN, 3) == ("a", 1)  # 6 // 3 = 2: b, then a
    rungs[1] += [("g", (0.95, 50)), ("h", (0.94, 60))]
    # 8 // 3 = 2: g, and h or b; a, once second, is out of the top now and stays paused
    assert promotable(rungs, {"a", "c", "d", "e", "f", "h"}, MAX_MIN, 3) == ("h", 1)
    assert promotable(rungs, {"a", "c", "d", "e", "f"}, MAX_MIN, 3) is None


def test_an_arrival_that_ranks_in_the_top_trains_on_and_one_that_does_not_pauses():
    rungs = {1: [("a", (0.9, 100)), ("b", (0.5, 500)), ("c", (0.95, 50))]}
    assert promotable(rungs, {"c"}, MAX_MIN, 3) == ("c", 1)  # c arrives, counted as paused: it goes on
    rungs[1] = [("a", (0.9, 100)), ("b", (0.5, 500)), ("c", (0.4, 600))]
    assert promotable(rungs, {"c"}, MAX_MIN, 3) is None  # c pauses; a, the top, is not paused (it went on)


@pytest.mark.parametrize("tie_break", ["hypervolume", EPS])
def test_promotion_ties_follow_rank_records(tie_break):
    # duplicates: the earlier record ranks first and is promoted first
    rungs = {1: [("a", (0.9, 100)), ("b", (0.9, 100)), ("c", (0.8, 50)), ("d", (0.1, 900))]}
    assert promotable(rungs, {"a", "b", "c", "d"}, MAX_MIN, 4, tie_break) == ("a", 1)
    assert promotable({1: rungs[1][::-1]}, {"a", "b", "c", "d"}, MAX_MIN, 4, tie_break) == ("b", 1)
    # on one front the tie-break's order decides: hypervolume the middle (p2), epsilon-net the best accuracy (p0)
    first = rank_records(FRONT, MAX_MIN, tie_break)[0]
    assert promotable({1: FRONT}, {t for t, _ in FRONT}, MAX_MIN, 3, tie_break) == (first, 1)
    assert first == ("p2" if tie_break == "hypervolume" else "p0")


def test_promotion_with_limits_skips_collapsed_trials():
    # Scaled (accuracy 0.4..0.9, spikes 0..200) the near-silent net's box (.2 x 1.1) beats a's (1.1 x .15).
    rungs = {1: [("silent", (0.45, 0)), ("a", (0.9, 190)), ("c", (0.4, 200))]}
    assert promotable(rungs, {"silent", "a", "c"}, MAX_MIN, 3) == ("silent", 1)
    assert promotable(rungs, {"silent", "a", "c"}, MAX_MIN, 3, EPS) == ("a", 1)  # the best accuracy first
    assert promotable(rungs, {"silent", "a", "c"}, MAX_MIN, 3, limits=[0.5, None]) == ("a", 1)
    assert promotable(rungs, {"silent", "c"}, MAX_MIN, 3, limits=[0.5, None]) is None
    with pytest.raises(ValueError, match="reduction_factor"):
        promotable(rungs, set(), MAX_MIN, 1)
