"""Pick trade-offs from a trial table: the cheapest Pareto-optimal trial(s) meeting an accuracy rule, or the knee.

Every query ranks the accuracy/cost front of the COMPLETE trials that meet the study's constraints (all of them
with ``include_infeasible``) and returns :func:`~.table.annotate` rows, possibly none. ``QUERIES`` maps each
query name the CLI and the Python API know to its function.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from .fronts import knee_point
from .table import SPIKES, annotate, baseline_accuracy, by_accuracy

# Absorbs float rounding in thresholds such as 0.93 - 1 / 100, so a trial exactly one point lower qualifies.
_TOL = 1e-9
_MAX_MIN = ["maximize", "minimize"]


def _cheapest_at_least(table: pd.DataFrame, threshold: float, accuracy: str, cost: str,
                       include_infeasible: bool) -> pd.DataFrame:
    # The cheapest row meeting the threshold (highest accuracy among equal cost) is always Pareto-optimal.
    front = annotate(table, [accuracy, cost], _MAX_MIN, include_infeasible)
    front = front[front["is_pareto"] & (front[accuracy] >= threshold - _TOL)]
    if front.empty:
        return front.reset_index(drop=True)
    return by_accuracy(front[front[cost] == front[cost].min()], accuracy)


def query_max_accuracy_drop(
    table: pd.DataFrame, points: float, accuracy: str = "val_accuracy", cost: str = SPIKES,
    include_infeasible: bool = False,
) -> pd.DataFrame:
    """Pareto-optimal COMPLETE trials losing at most ``points`` accuracy points against the baseline, the
    ones with the lowest ``cost`` (ties: higher accuracy first). The baseline itself is a candidate.
    Empty if none qualifies; ValueError without a baseline.
    """
    threshold = baseline_accuracy(table, accuracy) - points / 100.0
    return _cheapest_at_least(table, threshold, accuracy, cost, include_infeasible)


def query_iso_accuracy(table: pd.DataFrame, accuracy: str = "val_accuracy", cost: str = SPIKES,
                       include_infeasible: bool = False) -> pd.DataFrame:
    """Cheapest Pareto-optimal trial(s) at least as accurate as the baseline (a drop of 0 points)."""
    return query_max_accuracy_drop(table, 0.0, accuracy, cost, include_infeasible)


def query_min_accuracy(
    table: pd.DataFrame, x: float, accuracy: str = "val_accuracy", cost: str = SPIKES,
    include_infeasible: bool = False,
) -> pd.DataFrame:
    """Cheapest Pareto-optimal trial(s) with accuracy >= ``x``; no baseline needed.

    ``x`` <= 1 is a fraction (0.9 = 90 %); ``x`` > 1 is a percentage (90 = 90 %), so 1 means 100 %.
    """
    if not 0.0 <= x <= 100.0:
        raise ValueError(f"minimum accuracy must be a fraction in [0, 1] or a percentage in (1, 100], got {x}")
    return _cheapest_at_least(table, x / 100.0 if x > 1.0 else x, accuracy, cost, include_infeasible)


def query_knee(table: pd.DataFrame, accuracy: str = "val_accuracy", cost: str = SPIKES,
               include_infeasible: bool = False) -> pd.DataFrame:
    """The knee (:func:`~.fronts.knee_point`) of the accuracy/cost front, as one annotated row."""
    rows = annotate(table, [accuracy, cost], _MAX_MIN, include_infeasible)
    rows = rows[rows["pareto_rank"].notna()]
    if rows.empty:
        return rows.reset_index(drop=True)
    knee = knee_point(rows[[accuracy, cost]].to_numpy(dtype=float), _MAX_MIN)
    return rows.iloc[[knee]].reset_index(drop=True)


def best_tradeoffs(front: pd.DataFrame, n: int = 3, within_points: float = 2.0) -> pd.DataFrame:
    """The ``n`` front rows that save the most spikes among those within ``within_points`` accuracy points of the
    front's most accurate, for a glance at a study (``status``); the front as given (accuracy order) without a
    baseline to measure against."""
    if front.empty or front["accuracy_delta"].isna().all():
        return front.head(n)
    front = front.sort_values("spike_reduction_pct", ascending=False)
    return front[front["accuracy_delta"] >= front["accuracy_delta"].max() - within_points].head(n)


# Query name -> function(table, value, accuracy, cost, include_infeasible); rules without a value ignore it,
# and a missing value counts as 0.
QUERIES: dict[str, Callable[..., pd.DataFrame]] = {
    "max_accuracy_drop": lambda t, v, a, c, i: query_max_accuracy_drop(t, float(v or 0.0), a, c, i),
    "iso_accuracy": lambda t, v, a, c, i: query_iso_accuracy(t, a, c, i),
    "min_accuracy": lambda t, v, a, c, i: query_min_accuracy(t, float(v or 0.0), a, c, i),
    "knee": lambda t, v, a, c, i: query_knee(t, a, c, i),
}


def run_query(table: pd.DataFrame, rule: str, value: float | None = None, accuracy: str = "val_accuracy",
              cost: str = SPIKES, include_infeasible: bool = False) -> pd.DataFrame:
    """Answer query ``rule`` (a key of ``QUERIES``) on a trial table; ValueError for an unknown rule."""
    if rule not in QUERIES:
        raise ValueError(f"unknown query {rule!r}; choose from {', '.join(QUERIES)}")
    return QUERIES[rule](table, value, accuracy, cost, include_infeasible)
