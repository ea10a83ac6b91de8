"""Population-based training's pure rules: ranking, who copies whom, explore within the search space, points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsity_search.moasha import rank_records
from sparsity_search.pbt import Range, Rules, exploit_pairs, explore, rank, step_points

MAX_MIN = ("maximize", "minimize")
RANGES = {"lambda_max": Range(0.01, 10.0, log=True), "lr": Range(1e-4, 1e-2, log=True),
          "temperature": Range(0.1, 1.0, when={"schedule": ("annealing",)})}


def rules(**changes) -> Rules:
    base = dict(interval=2, fraction=0.25, perturb={"lambda_max": (0.8, 1.25), "lr": (0.5, 2.0)}, ranges=RANGES,
                resample_probability=0.0)
    return Rules(**{**base, **changes})


def test_ranking_is_moashas_feasible_first_then_fronts_then_the_tie_break():
    values = [(0.9, 100), (0.8, 200), (0.95, 150), (0.7, 5), (0.5, 1)]  # fronts: {0, 2, 3, 4}, {1}
    for tie_break in ("hypervolume", "epsilon_net"):
        order = rank(values, rules(tie_break=tie_break))
        assert order == rank_records(list(enumerate(values)), MAX_MIN, tie_break)
        assert order[-1] == 1  # the only dominated member is last
    assert rank(values, rules(tie_break="epsilon_net"))[0] == 2  # the net starts at the best accuracy
    # below the accuracy floor: after every feasible member, whatever its spikes (the silent net at chance)
    floor = rank(values, rules(limits=(0.6, None)))
    assert floor[-1] == 4 and floor[-2] == 1


def test_repeated_members_rank_after_every_distinct_one():
    silent, good, dense = (0.1, 0.0), (0.9, 20.0), (0.95, 80.0)
    values = [silent, good, silent, dense, (0.5, 50.0), silent]  # (0.5, 50) is dominated by good
    order = rank(values, rules())
    alone = [[0, 1, 3][j] for j in rank([silent, good, dense], rules())]  # ranked as if the copies were not there
    assert order[:3] == alone and order[3] == 4
    assert order[4:] == [2, 5]  # the copies go last: the first to take over a winner's weights


@pytest.mark.parametrize("n,fraction,q", [(1, 0.25, 0), (2, 0.25, 1), (3, 0.5, 1), (4, 0.25, 1), (8, 0.25, 2),
                                          (9, 0.25, 3), (8, 0.5, 4), (16, 0.25, 4)])
def test_the_bottom_quantile_copies_the_top_and_the_two_never_meet(n, fraction, q):
    order = list(np.random.default_rng(n).permutation(n))
    pairs = exploit_pairs(order, fraction, np.random.default_rng(0))
    assert sorted(pairs) == sorted(order[n - q:])  # ceil(n * fraction) losers, at most n // 2
    assert set(pairs.values()) <= set(order[:q])
    assert not set(pairs) & set(pairs.values())


def test_winners_are_drawn_uniformly_from_the_top():
    order = list(range(8))
    counts = np.zeros(8)
    for seed in range(400):
        for winner in exploit_pairs(order, 0.25, np.random.default_rng(seed)).values():
            counts[winner] += 1
    assert counts[2:].sum() == 0 and abs(counts[0] - counts[1]) < 0.15 * counts[:2].sum()


def test_explore_multiplies_by_one_factor_and_stays_in_bounds():
    seen = set()
    for seed in range(50):
        new = explore({"lambda_max": 2.0, "lr": 1e-3, "schedule": "constant"}, rules(), np.random.default_rng(seed))
        assert set(new) == {"lambda_max", "lr"}
        assert new["lambda_max"] in (pytest.approx(1.6), pytest.approx(2.5))
        assert new["lr"] in (pytest.approx(5e-4), pytest.approx(2e-3))
        seen.add((round(new["lambda_max"], 6), round(new["lr"], 6)))
    assert len(seen) == 4  # each factor drawn for each parameter
    top = explore({"lambda_max": 9.0, "lr": 9e-3}, rules(), np.random.default_rng(1))
    assert top["lambda_max"] <= 10.0 and top["lr"] <= 1e-2  # clipped to the search space


def test_explore_resamples_within_the_range_and_skips_inactive_parameters():
    r = rules(perturb={"lambda_max": (0.8, 1.25), "temperature": (0.5, 2.0)}, resample_probability=1.0)
    draws = [explore({"lambda_max": 2.0, "temperature": 0.3, "schedule": "annealing"}, r, np.random.default_rng(s))
             for s in range(200)]
    lams = np.array([d["lambda_max"] for d in draws])
    assert lams.min() >= 0.01 and lams.max() <= 10.0
    assert abs(np.median(np.log10(lams)) + 0.5) < 0.2  # log-uniform over [1e-2, 10]: median 10^-0.5
    assert all(0.1 <= d["temperature"] <= 1.0 for d in draws)
    # a constant schedule has no temperature to learn: not perturbed, not recorded
    assert set(explore({"lambda_max": 2.0, "temperature": 0.3, "schedule": "constant"}, r,
                       np.random.default_rng(0))) == {"lambda_max"}


def test_ranges_snap_to_their_grid():
    assert Range(1, 10, integer=True).snap(3.6) == 4 and isinstance(Range(1, 10, integer=True).snap(3.6), int)
    assert Range(0.0, 3.0, step=0.5).snap(1.3) == 1.5
    assert Range(0.0, 3.0, step=0.5).snap(7.0) == 3.0 and Range(0.5, 3.0).snap(0.1) == 0.5
    rng = np.random.default_rng(0)
    assert {Range(2, 4, integer=True).sample(rng) for _ in range(50)} == {2, 3, 4}
    assert all(Range(0.0, 3.0, step=0.5).sample(rng) in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0) for _ in range(50))


def test_steps_and_their_random_draws_are_fixed_by_seed_and_epoch():
    r = rules(interval=3)
    assert [e for e in range(1, 10) if r.is_step(e, 9)] == [3, 6]  # never after the last epoch
    assert r.rng(4).random() == r.rng(4).random() != r.rng(5).random()
    assert rules(seed=1).rng(4).random() != r.rng(4).random()


def test_step_points_hold_each_value_until_it_changes():
    assert step_points([0.5, 0.5, 0.8, 0.8, 0.1]) == [[0, 0.5], [2, 0.8], [4, 0.1]]
    assert step_points([1.0]) == [[0, 1.0]]
    assert all(math.isfinite(v) for _, v in step_points([0.1, 0.2]))
