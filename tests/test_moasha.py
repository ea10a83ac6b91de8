"""MO-ASHA's promotion rule: rungs, non-dominated ranking, epsilon-net tie-break, early arrivals."""

from __future__ import annotations

import numpy as np
import pytest

from sparsity_search.moasha import rank_records, rung_epochs, should_continue

MAX_MIN = ["maximize", "minimize"]

# One front of six (val_accuracy, spikes). Scaled: z0 = (0.95 - acc) / 0.15, z1 = (spikes - 100) / 900.
# The epsilon-net starts at the best accuracy (p0), takes the far end (p5), then p2 (min distance .648),
# p3 (.351 to p5), p1 (.129 to p0) and last p4 (.068 to p3).
FRONT = [("p0", (0.95, 1000)), ("p1", (0.94, 900)), ("p2", (0.90, 500)),
         ("p3", (0.85, 200)), ("p4", (0.84, 190)), ("p5", (0.80, 100))]


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
    # on one front the epsilon-net takes the best accuracy first, so a cheaper but less accurate arrival stops
    assert not should_continue([("a", (0.9, 100)), ("b", (0.8, 10))], "b", MAX_MIN, 3)
    records = [("a", (0.9, 100)), ("b", (0.8, 10)), ("c", (0.95, 900)), ("d", (0.7, 5)), ("e", (0.6, 1))]
    assert not should_continue(records[:4], "d", MAX_MIN, 3)  # 4 // 3 = 1: only c
    assert should_continue(records, "e", MAX_MIN, 2)  # 5 // 2 = 2: c, then the far end of the front, e


def test_dominated_trials_stop_and_the_front_continues():
    records = [("a", (0.9, 100)), ("b", (0.8, 200)), ("c", (0.7, 300)), ("d", (0.95, 150))]
    # 4 // 2 = 2 continue: the front {a, d}; b and c are dominated by a.
    assert [should_continue(records, t, MAX_MIN, 2) for t in "abcd"] == [True, False, False, True]
    assert rank_records(records, MAX_MIN)[:2] == ["d", "a"]  # epsilon-net starts at the best accuracy
    assert rank_records(records, MAX_MIN)[2:] == ["b", "c"]


def test_ties_on_one_front_are_broken_by_the_epsilon_net():
    assert rank_records(FRONT, MAX_MIN) == ["p0", "p5", "p2", "p3", "p1", "p4"]
    # 6 // 3 = 2 continue: both extremes of the trade-off, not the two most accurate.
    assert [should_continue(FRONT, t, MAX_MIN, 3) for t, _ in FRONT] == [True, False, False, False, False, True]


def test_rank_does_not_depend_on_record_order_without_exact_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        shuffled = [FRONT[i] for i in rng.permutation(len(FRONT))]
        assert rank_records(shuffled, MAX_MIN) == ["p0", "p5", "p2", "p3", "p1", "p4"]


def test_duplicates_go_last_and_exact_ties_follow_record_order():
    records = [("a", (0.9, 100)), ("b", (0.9, 100)), ("c", (0.8, 50))]
    assert rank_records(records, MAX_MIN) == ["a", "c", "b"]
    assert [should_continue(records, t, MAX_MIN, 3) for t in "abc"] == [True, False, False]


def test_later_fronts_follow_and_missing_values_rank_last():
    records = [("x", (np.nan, np.nan)), ("a", (0.9, 100)), ("b", (0.8, 200)), ("c", (0.85, 50))]
    assert rank_records(records, MAX_MIN) == ["a", "c", "b", "x"]


def test_three_objectives():
    dirs = ["maximize", "minimize", "minimize"]
    records = [("a", (0.9, 100, 5)), ("b", (0.9, 100, 6)), ("c", (0.8, 50, 5))]
    assert rank_records(records, dirs) == ["a", "c", "b"]


def test_invalid_calls():
    with pytest.raises(ValueError, match="no record"):
        should_continue([("a", (0.9, 1))], "z", MAX_MIN, 2)
    with pytest.raises(ValueError, match="twice"):
        rank_records([("a", (0.9, 1)), ("a", (0.8, 1))], MAX_MIN)
    with pytest.raises(ValueError, match="reduction_factor"):
        should_continue([("a", (0.9, 1))], "a", MAX_MIN, 1)
    assert rank_records([], MAX_MIN) == []
