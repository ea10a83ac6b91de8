"""Hand-computed fronts, ranks, hypervolumes, knee and queries for sparsity_search.pareto."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
import pytest

from sparsity_search.pareto import (
    annotate,
    by_accuracy,
    baseline_row,
    best_tradeoffs,
    default_reference,
    dominates,
    hypervolume,
    hypervolume_history,
    knee_point,
    nondominated_ranks,
    normalize,
    pareto_front_mask,
    query_iso_accuracy,
    query_knee,
    query_max_accuracy_drop,
    query_min_accuracy,
    to_table,
)

MAX_MIN = ["maximize", "minimize"]


# --- brute-force references ------------------------------------------------------------------------------

def _brute_mask(v: np.ndarray) -> np.ndarray:
    return np.array([not any(dominates(q, p) for q in v) for p in v], dtype=bool)


def _brute_ranks(v: np.ndarray) -> np.ndarray:
    ranks = np.full(len(v), -1)
    rank = 0
    while (ranks < 0).any():
        left = np.flatnonzero(ranks < 0)
        ranks[left[_brute_mask(v[left])]] = rank
        rank += 1
    return ranks


def _inclusion_exclusion(v: np.ndarray, r: np.ndarray) -> float:
    """Union of the boxes [p, r] (minimisation) by inclusion-exclusion over all subsets."""
    total = 0.0
    for k in range(1, len(v) + 1):
        for subset in itertools.combinations(range(len(v)), k):
            corner = v[list(subset)].max(axis=0)
            total += (-1) ** (k + 1) * np.prod(np.clip(r - corner, 0.0, None))
    return total


# --- normalisation and dominance -------------------------------------------------------------------------

def test_normalize_negates_maximised_columns_and_maps_nan_to_inf():
    v = normalize([[0.9, 100.0], [np.nan, 5.0]], MAX_MIN)
    np.testing.assert_array_equal(v, [[-0.9, 100.0], [np.inf, 5.0]])
    assert normalize(np.zeros((0, 2)), MAX_MIN).shape == (0, 2)
    with pytest.raises(ValueError, match="direction"):
        normalize([[1.0]], ["up"])
    with pytest.raises(ValueError, match="shape"):
        normalize([[1.0, 2.0, 3.0]], MAX_MIN)


def test_dominates():
    assert dominates([1, 2], [1, 3])
    assert not dominates([1, 2], [1, 2])  # identical points do not dominate each other
    assert not dominates([1, 3], [2, 2])


# --- fronts and ranks ------------------------------------------------------------------------------------

# (val_accuracy, spikes): A, B, C, D (= A), E, G, H, I, J, K
POINTS_2D = np.array([
    [0.90, 100], [0.85, 50], [0.80, 60], [0.90, 100], [0.95, 200],
    [0.90, 120], [0.95, 250], [0.70, 50], [0.69, 70], [0.68, 70],
])


def test_front_2d_by_hand_with_duplicates_and_ties():
    expected = [True, True, False, True, True, False, False, False, False, False]
    np.testing.assert_array_equal(pareto_front_mask(POINTS_2D, MAX_MIN), expected)


def test_ranks_2d_by_hand():
    # front 0: A B D E; front 1: C G H I; J is dominated by I and C; K by J.
    np.testing.assert_array_equal(nondominated_ranks(POINTS_2D, MAX_MIN), [0, 0, 1, 0, 0, 1, 1, 1, 2, 3])


def test_front_3d_by_hand_with_mixed_directions():
    v = np.array([[1, 5, 3], [2, 2, 3], [1, 5, 3], [3, 3, 2], [0, 9, 1], [2, 2, 1]], dtype=float)
    dirs = ["minimize", "minimize", "maximize"]
    np.testing.assert_array_equal(pareto_front_mask(v, dirs), [True, True, True, False, True, False])
    np.testing.assert_array_equal(nondominated_ranks(v, dirs), [0, 0, 0, 1, 0, 1])


def test_empty_and_single_inputs():
    assert pareto_front_mask(np.zeros((0, 2)), MAX_MIN).shape == (0,)
    assert nondominated_ranks(np.zeros((0, 3)), ["minimize"] * 3).shape == (0,)
    np.testing.assert_array_equal(pareto_front_mask([[0.5, 1.0]], MAX_MIN), [True])


@pytest.mark.parametrize("m", [2, 3])
def test_front_and_ranks_match_brute_force_on_random_grids(m):
    rng = np.random.default_rng(m)
    for _ in range(30):
        v = rng.integers(0, 5, size=(int(rng.integers(1, 25)), m)).astype(float)  # a small grid forces ties
        dirs = list(rng.choice(["maximize", "minimize"], size=m))
        w = normalize(v, dirs)
        np.testing.assert_array_equal(pareto_front_mask(v, dirs), _brute_mask(w))
        np.testing.assert_array_equal(nondominated_ranks(v, dirs), _brute_ranks(w))


def test_missing_values_count_as_worst():
    v = np.array([[0.9, 100.0], [0.9, np.nan], [np.nan, np.nan]])
    np.testing.assert_array_equal(pareto_front_mask(v, MAX_MIN), [True, False, False])


# --- hypervolume -----------------------------------------------------------------------------------------

def test_hypervolume_2d_by_hand():
    # Boxes [0, acc] x [spikes, 100]: 0.9*50 + 0.8*(50-20) + 0.5*(20-10) = 74. The last three points add
    # nothing: beyond the reference, on it (accuracy 0.0), and dominated.
    v = [[0.9, 50], [0.8, 20], [0.5, 10], [0.95, 150], [0.0, 5], [0.4, 30]]
    assert hypervolume(v, MAX_MIN, [0.0, 100.0]) == pytest.approx(74.0)
    assert hypervolume(np.zeros((0, 2)), MAX_MIN, [0.0, 100.0]) == 0.0


def test_hypervolume_3d_by_hand():
    # Minimising, boxes to (4, 4, 4): 6 + 12 + 3 - 4 - 1 - 2 + 1 = 15. The first objective is stated as
    # maximised (value 5 - a, reference 1) to check the mix of directions.
    v = [[4, 2, 3], [3, 1, 2], [2, 3, 1], [3, 1, 2]]
    dirs = ["maximize", "minimize", "minimize"]
    assert hypervolume(v, dirs, [1.0, 4.0, 4.0]) == pytest.approx(15.0)


def test_hypervolume_rejects_a_non_finite_reference():
    with pytest.raises(ValueError, match="finite"):
        hypervolume([[0.5, 1.0]], MAX_MIN, [0.0, np.nan])


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_matches_inclusion_exclusion(m):
    rng = np.random.default_rng(10 + m)
    for _ in range(25):
        v = np.round(rng.uniform(0, 1, size=(int(rng.integers(1, 7)), m)), 1)
        r = np.full(m, 0.9)
        expected = _inclusion_exclusion(v[np.all(v < r, axis=1)], r)
        assert hypervolume(v, ["minimize"] * m, r) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_history_is_monotone_and_matches_prefixes(m):
    rng = np.random.default_rng(20 + m)
    v = np.round(rng.uniform(0, 1, size=(40, m)), 1)  # rounding makes duplicates and shared coordinates
    v[5] = np.nan
    dirs = ["maximize"] + ["minimize"] * (m - 1)
    ref = [0.0] + [0.95] * (m - 1)
    history = hypervolume_history(v, dirs, ref)
    assert history.shape == (40,)
    assert np.all(np.diff(history) >= -1e-12)
    expected = [hypervolume(v[: k + 1], dirs, ref) for k in range(len(v))]
    np.testing.assert_allclose(history, expected, atol=1e-12)


# --- our fast 2-D paths against moocore (the library behind more objectives) -------------------------------

@pytest.mark.parametrize("grid", [True, False])
def test_fast_2d_paths_agree_with_moocore_on_random_point_sets(grid):
    moocore = pytest.importorskip("moocore")
    from sparsity_search.pareto.fronts import front_2d, ranks_2d
    from sparsity_search.pareto.indicators import hv_2d

    rng = np.random.default_rng(7 if grid else 8)
    for _ in range(60):
        n = int(rng.integers(1, 80))
        # A small integer grid forces duplicates and shared coordinates; uniform floats give general position.
        v = rng.integers(0, 6, size=(n, 2)).astype(float) if grid else rng.uniform(0, 1, size=(n, 2))
        np.testing.assert_array_equal(front_2d(v), moocore.is_nondominated(v, keep_weakly=True))
        np.testing.assert_array_equal(ranks_2d(v), moocore.pareto_rank(v))
        r = v.max(axis=0) + rng.uniform(0.1, 1.0, size=2)
        assert hv_2d(v, r) == pytest.approx(moocore.hypervolume(v, ref=r), rel=1e-12, abs=1e-12)
        history = hypervolume_history(v, ["minimize", "minimize"], r)
        expected = [moocore.hypervolume(v[: k + 1], ref=r) for k in range(n)]
        np.testing.assert_allclose(history, expected, rtol=1e-12, atol=1e-12)


# --- reference point and knee ----------------------------------------------------------------------------

def _table(with_baseline: bool = True) -> pd.DataFrame:
    rows = [
        (0, "COMPLETE", True, 0.92, 1000.0),
        (1, "COMPLETE", False, 0.925, 900.0),
        (2, "COMPLETE", False, 0.915, 500.0),
        (3, "COMPLETE", False, 0.91, 300.0),
        (4, "COMPLETE", False, 0.89, 100.0),
        (5, "COMPLETE", False, 0.90, 400.0),
        (6, "PRUNED", False, 0.95, 50.0),
        (7, "FAIL", False, np.nan, np.nan),
        (8, "COMPLETE", False, 0.915, 500.0),
    ]
    df = pd.DataFrame(rows, columns=["trial", "state", "is_baseline", "val_accuracy", "spikes_per_sample"])
    df["params_lr"] = np.linspace(1e-3, 9e-3, len(df))
    df = df.sample(frac=1.0, random_state=0)  # row order must not matter
    return df if with_baseline else df[df["trial"] != 0]


def test_default_reference_rules():
    objectives = ["val_accuracy", "spikes_per_sample"]
    table = _table()
    assert default_reference(objectives, baseline_row(table), table) == {"val_accuracy": 0.0,
                                                                         "spikes_per_sample": 2000.0}
    no_base = _table(with_baseline=False)
    # No baseline: 2 x the first COMPLETE trial by trial number (trial 1: 900), not the row order.
    assert default_reference(objectives, None, no_base)["spikes_per_sample"] == 1800.0
    # The same for every later trial count: adding trials does not move it.
    early = no_base[no_base["trial"] <= 2]
    assert default_reference(objectives, None, early) == default_reference(objectives, None, no_base)
    ref = default_reference(objectives, None, no_base, MAX_MIN, override={"spikes_per_sample": 5e3})
    assert ref == {"val_accuracy": 0.0, "spikes_per_sample": 5e3}
    with pytest.raises(ValueError, match="reference"):
        default_reference(objectives, None, no_base[no_base["state"] != "COMPLETE"])


def test_knee_on_a_convex_front():
    # Normalised by 10 the sums z0 + z1 are 1, .5, .4, .5, 1: the knee is (2, 2). (5, 5) is dominated.
    v = np.array([[0, 10], [1, 4], [2, 2], [4, 1], [10, 0], [5, 5]], dtype=float)
    assert knee_point(v, ["minimize", "minimize"]) == 2
    flipped = v.copy()
    flipped[:, 0] = 1.0 - v[:, 0] / 10.0  # the same front stated as accuracy to maximise
    assert knee_point(flipped, MAX_MIN) == 2
    assert knee_point([[0.5, 3.0]], MAX_MIN) == 0
    with pytest.raises(ValueError):
        knee_point([[np.nan, 1.0]], MAX_MIN)


def test_knee_3d_is_the_point_nearest_the_ideal():
    v = [[0, 1, 1], [1, 0, 1], [1, 1, 0], [0.4, 0.4, 0.4], [0.5, 0.5, 0.5]]
    assert knee_point(v, ["minimize"] * 3) == 3


# --- queries and annotate --------------------------------------------------------------------------------

def _trials(df: pd.DataFrame) -> list[int]:
    return df["trial"].tolist()


def test_annotate():
    out = annotate(_table(), ["val_accuracy", "spikes_per_sample"], MAX_MIN)
    assert _trials(out) == _trials(_table())  # row order kept
    assert _trials(by_accuracy(out, "val_accuracy")) == [6, 1, 0, 2, 8, 3, 5, 4, 7]  # then trial; NaN last
    by_trial = out.set_index("trial")
    assert sorted(by_trial.index[by_trial["pareto_rank"].isna()]) == [6, 7]
    assert sorted(by_trial.index[by_trial["is_pareto"]]) == [1, 2, 3, 4, 8]
    assert by_trial.loc[0, "pareto_rank"] == 1 and by_trial.loc[5, "pareto_rank"] == 1
    assert by_trial.loc[2, "accuracy_delta"] == pytest.approx(-0.5)
    assert by_trial.loc[3, "spike_reduction_pct"] == pytest.approx(70.0)
    assert by_trial.loc[0, "spike_reduction_pct"] == pytest.approx(0.0)
    plain = annotate(_table(with_baseline=False), ["val_accuracy", "spikes_per_sample"], MAX_MIN)
    assert plain["accuracy_delta"].isna().all() and plain["spike_reduction_pct"].isna().all()


@pytest.mark.parametrize("points, expected", [
    (0.5, [2, 8]),  # a tie at equal cost: both, higher accuracy (here equal) then trial
    (1.0, [3]),     # exactly one point lower still qualifies
    (2.0, [3]),     # trial 5 (0.90, 400) is dominated by trial 3
    (3.0, [4]),
    (10.0, [4]),
    (-1.0, []),     # asks for a 1-point gain over the baseline: none
])
def test_query_max_accuracy_drop(points, expected):
    assert _trials(query_max_accuracy_drop(_table(), points)) == expected


def test_query_iso_accuracy():
    assert _trials(query_iso_accuracy(_table())) == [1]


@pytest.mark.parametrize("x, expected", [(0.9, [3]), (90, [3]), (0.915, [2, 8]), (0.95, []), (1, [])])
def test_query_min_accuracy(x, expected):
    # The PRUNED trial 6 (0.95, 50 spikes) is never an answer.
    assert _trials(query_min_accuracy(_table(), x)) == expected


def test_query_min_accuracy_rejects_out_of_range():
    with pytest.raises(ValueError):
        query_min_accuracy(_table(), 101)


def test_query_knee():
    # Front 1, 2/8, 3, 4 scaled to [0, 1]: z0 + z1 = 1, .79, .68, 1 -> trial 3.
    assert _trials(query_knee(_table())) == [3]
    assert _trials(query_knee(_table(with_baseline=False))) == [3]


def test_baseline_queries_need_a_baseline():
    table = _table(with_baseline=False)
    for query in (lambda: query_max_accuracy_drop(table, 1.0), lambda: query_iso_accuracy(table)):
        with pytest.raises(ValueError, match="baseline") as info:
            query()
        assert "\n" not in str(info.value)


def test_queries_use_the_requested_cost():
    table = _table()
    table["energy_uj"] = table["trial"].map({0: 10.0, 1: 9.0, 2: 1.0, 3: 5.0, 4: 2.0, 5: 8.0, 6: 0.1, 8: 7.0})
    assert _trials(query_max_accuracy_drop(table, 1.0, cost="energy_uj")) == [2]


# --- export ----------------------------------------------------------------------------------------------

def _assert_same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for c in a.columns:
        if pd.api.types.is_numeric_dtype(a[c]) and not pd.api.types.is_bool_dtype(a[c]):
            np.testing.assert_allclose(a[c].astype(float), b[c].astype(float), rtol=1e-12, equal_nan=True)
        else:
            assert a[c].tolist() == b[c].tolist(), c


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_round_trip(fmt, tmp_path):
    table = annotate(_table(), ["val_accuracy", "spikes_per_sample"], MAX_MIN)
    path = tmp_path / f"t.{fmt}"
    readers = {
        "csv": pd.read_csv,
        "json": lambda p: pd.read_json(p, orient="records"),
        "parquet": pd.read_parquet,
    }
    assert to_table(table, fmt, path) is None
    _assert_same_table(table, readers[fmt](path))
    if fmt != "parquet":  # the returned text is what the file holds
        text = to_table(table, fmt)
        assert text == path.read_text()
        _assert_same_table(table, readers[fmt](io.StringIO(text)))


def test_text_formats():
    table = pd.DataFrame({"trial": [1, 2], "val_accuracy": [0.9, np.nan], "note": ["a|b", "50%_x"]})
    md = to_table(table, "markdown").splitlines()
    assert md[0] == "| trial | val_accuracy | note |"
    assert md[1] == "|---:|---:|---|"
    assert md[2] == r"| 1 | 0.9 | a\|b |" and md[3] == r"| 2 |  | 50%_x |"
    tex = to_table(table, "latex")
    assert r"\begin{tabular}{rrl}" in tex and r"trial & val\_accuracy & note \\" in tex
    assert r"2 &  & 50\%\_x \\" in tex
    text = to_table(table, "table").splitlines()
    assert text[0].split() == ["trial", "val_accuracy", "note"] and len(text) == 3


def test_bad_formats():
    with pytest.raises(ValueError, match="path"):
        to_table(pd.DataFrame({"a": [1]}), "parquet")
    with pytest.raises(ValueError, match="unknown format"):
        to_table(pd.DataFrame({"a": [1]}), "yaml")


def test_best_tradeoffs_saves_most_spikes_within_two_points_of_the_front_top():
    front = pd.DataFrame({"trial": [1, 2, 3, 4], "accuracy_delta": [0.0, -1.5, -2.5, -1.0],
                          "spike_reduction_pct": [10.0, 60.0, 90.0, 40.0]})
    assert best_tradeoffs(front)["trial"].tolist() == [2, 4, 1]  # trial 3 saves most but loses 2.5 points
    assert best_tradeoffs(front, n=1)["trial"].tolist() == [2]
    no_baseline = front.assign(accuracy_delta=np.nan, spike_reduction_pct=np.nan)
    assert best_tradeoffs(no_baseline)["trial"].tolist() == [1, 2, 3]
