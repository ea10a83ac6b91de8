"""Pareto fronts, hypervolume, knee point and the accuracy/spike queries, as small pure functions.

This module is the only home of dominance logic. Every entry point first calls :func:`normalize`, which
negates the columns to maximise and maps NaN to +inf (worst), so all later code only minimises.
Fronts and ranks use a sort-and-sweep for two objectives and an all-pairs check otherwise; hypervolume is
exact (a 2-D sweep, and slicing along the last objective above that).

Table functions take a trial table: one row per trial with columns ``trial``, ``state``, ``is_baseline`` and
one column per metric. Accuracies are fractions in [0, 1]; a "point" is one percentage point (0.01).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

Direction = Literal["maximize", "minimize"]
FORMATS = ("table", "csv", "markdown", "latex", "json", "parquet")
SPIKES = "spikes_per_sample"
# Absorbs float rounding in thresholds such as 0.93 - 1 / 100, so a trial exactly one point lower qualifies.
_TOL = 1e-9


# --- dominance, fronts, ranks ---------------------------------------------------------------------------

def normalize(values: Any, directions: Sequence[Direction]) -> np.ndarray:
    """Return a float copy [n, m] to minimise: maximised columns negated, NaN (missing) mapped to +inf."""
    v = np.array(values, dtype=float)
    if v.size == 0:
        v = v.reshape(0, len(directions))
    if v.ndim != 2 or v.shape[1] != len(directions):
        raise ValueError(f"values must have shape [n, {len(directions)}], got {v.shape}")
    for j, d in enumerate(directions):
        if d == "maximize":
            v[:, j] = -v[:, j]
        elif d != "minimize":
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {d!r}")
    v[np.isnan(v)] = np.inf
    return v


def dominates(a: Any, b: Any) -> bool:
    """True if normalised vector ``a`` is no worse than ``b`` everywhere and strictly better somewhere."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_front_mask(values: Any, directions: Sequence[Direction]) -> np.ndarray:
    """Boolean mask of non-dominated rows; identical points are all kept (none dominates the other)."""
    v = normalize(values, directions)
    return _front_2d(v) if v.shape[1] == 2 else _front_nd(v)


def _front_2d(v: np.ndarray) -> np.ndarray:
    # Sort by (f0, f1). A point survives if it has the smallest f1 of its f0-group and that f1 beats every
    # point with a strictly smaller f0 (the first group has nobody to beat).
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((v[:, 1], v[:, 0]))
    x, y = v[order, 0], v[order, 1]
    starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
    group_start = starts[np.searchsorted(starts, np.arange(n), side="right") - 1]
    best_before = np.r_[np.inf, np.minimum.accumulate(y)][group_start]
    keep = (y == y[group_start]) & ((group_start == 0) | (y < best_before))
    mask = np.zeros(n, dtype=bool)
    mask[order] = keep
    return mask


def _front_nd(v: np.ndarray) -> np.ndarray:
    # Skipping already-dominated rows is safe: whatever they dominate, their dominator dominates too.
    mask = np.ones(len(v), dtype=bool)
    for i in range(len(v)):
        if mask[i]:
            mask &= ~(np.all(v[i] <= v, axis=1) & np.any(v[i] < v, axis=1))
    return mask


def nondominated_ranks(values: Any, directions: Sequence[Direction]) -> np.ndarray:
    """Front index of each row (0 = Pareto front, 1 = front once front 0 is removed, ...)."""
    v = normalize(values, directions)
    return _ranks_2d(v) if v.shape[1] == 2 else _ranks_nd(v)


def _ranks_2d(v: np.ndarray) -> np.ndarray:
    # In (f0, f1) order each front's last member has the smallest f1 so far, and it dominates a new point
    # exactly when some member of that front does; "front k dominates p" is monotone in k, so bisect.
    # O(n log n).
    ranks = np.empty(len(v), dtype=int)
    last: list[tuple[float, float]] = []
    for i in np.lexsort((v[:, 1], v[:, 0])):
        p = (float(v[i, 0]), float(v[i, 1]))
        lo, hi = 0, len(last)
        while lo < hi:
            mid = (lo + hi) // 2
            if last[mid][1] <= p[1] and last[mid] != p:
                lo = mid + 1
            else:
                hi = mid
        if lo == len(last):
            last.append(p)
        else:
            last[lo] = p
        ranks[i] = lo
    return ranks


def _ranks_nd(v: np.ndarray) -> np.ndarray:
    # Deb et al.'s fast non-dominated sort: a domination matrix (O(n^2) memory), then peel by counts.
    n = len(v)
    no_worse, better = np.ones((n, n), dtype=bool), np.zeros((n, n), dtype=bool)
    for col in v.T:
        no_worse &= col[:, None] <= col[None, :]
        better |= col[:, None] < col[None, :]
    dom = no_worse & better  # dom[i, j]: i dominates j
    count = dom.sum(axis=0)
    ranks = np.full(n, -1, dtype=int)
    remaining = np.ones(n, dtype=bool)
    rank = 0
    while remaining.any():
        front = remaining & (count == 0)
        ranks[front] = rank
        remaining &= ~front
        count -= dom[front].sum(axis=0)
        rank += 1
    return ranks


# --- hypervolume ------------------------------------------------------------------------------------------

def _reference(reference: Sequence[float], directions: Sequence[Direction]) -> np.ndarray:
    r = normalize(np.asarray(reference, dtype=float).reshape(1, -1), directions)[0]
    if not np.all(np.isfinite(r)):
        raise ValueError(f"reference point must be finite, got {list(reference)}")
    return r


def hypervolume(values: Any, directions: Sequence[Direction], reference: Sequence[float]) -> float:
    """Exact volume dominated by the points and bounded by ``reference`` (given in the original units).

    Points that are not strictly better than the reference in every objective contribute nothing.
    2-D is a sort-and-sweep; more objectives slice along the last one (HSO), fine for a few hundred points
    in 3-D.
    """
    r = _reference(reference, directions)
    v = normalize(values, directions)
    return _hv(v[np.all(v < r, axis=1)], r)


def _hv(v: np.ndarray, r: np.ndarray) -> float:
    if len(v) == 0:
        return 0.0
    if v.shape[1] == 1:
        return float(r[0] - v[:, 0].min())
    if v.shape[1] == 2:
        return _hv_2d(v, r)
    # Between consecutive levels of the last objective the covered cross-section does not change.
    v = v[np.argsort(v[:, -1], kind="stable")]
    levels = np.append(v[:, -1], r[-1])
    total = 0.0
    for i in range(len(v)):
        depth = levels[i + 1] - levels[i]
        if depth > 0:
            prefix = v[: i + 1, :-1]
            if prefix.shape[1] > 2:  # the 2-D sweep ignores dominated points by itself
                prefix = prefix[_front_nd(prefix)]
            total += depth * _hv(prefix, r[:-1])
    return total


def _hv_2d(v: np.ndarray, r: np.ndarray) -> float:
    # Between x_i and x_{i+1} the covered height is r1 minus the best f1 seen so far; dominated points add 0.
    order = np.lexsort((v[:, 1], v[:, 0]))
    x, y = v[order, 0], v[order, 1]
    next_x = np.append(x[1:], r[0])
    return float(np.sum((next_x - x) * (r[1] - np.minimum.accumulate(y))))


def hypervolume_history(values: Any, directions: Sequence[Direction], reference: Sequence[float]) -> np.ndarray:
    """Hypervolume of the first k rows for k = 1..n (rows in trial order), so progress can be plotted.

    2-D keeps the running front sorted and adds each new point's exclusive area (O(n log n) lookups);
    more objectives recompute the exact volume only when a point enlarges the front.
    """
    r = _reference(reference, directions)
    v = normalize(values, directions)
    inside = np.all(v < r, axis=1)
    if v.shape[1] == 2:
        return _hv_history_2d(v, r, inside)
    out = np.zeros(len(v))
    kept = np.zeros((0, v.shape[1]))
    hv = 0.0
    for k, p in enumerate(v):
        if inside[k] and not np.any(np.all(kept <= p, axis=1)):
            kept = np.vstack([kept[~np.all(p <= kept, axis=1)], p])
            hv = _hv(kept, r)
        out[k] = hv
    return out


def _hv_history_2d(v: np.ndarray, r: np.ndarray, inside: np.ndarray) -> np.ndarray:
    out = np.zeros(len(v))
    xs: list[float] = []  # running front: x ascending, y strictly descending
    ys: list[float] = []
    hv = 0.0
    for k, (px, py) in enumerate(v.tolist()):
        left_of = bisect.bisect_right(xs, px)  # xs[:left_of] <= px; ys[left_of - 1] is their best y
        if inside[k] and (left_of == 0 or ys[left_of - 1] > py):  # not weakly dominated by the front
            j = bisect.bisect_left(xs, px)
            level, x, end = (ys[j - 1] if j else r[1]), px, j
            while end < len(ys) and ys[end] >= py:  # front points that p dominates
                hv += (xs[end] - x) * (level - py)
                x, level, end = xs[end], ys[end], end + 1
            hv += ((xs[end] if end < len(xs) else r[0]) - x) * (level - py)
            xs[j:end], ys[j:end] = [px], [py]
        out[k] = hv
    return out


def default_reference(
    objectives: Sequence[str],
    baseline_row: Mapping[str, Any] | pd.Series | None,
    table: pd.DataFrame,
    directions: Sequence[Direction] | None = None,
    override: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Reference point (original units) that stays the same as trials are added, so histories compare.

    Rule, per objective, first match wins:

    1. ``override[name]`` if given (e.g. recorded in the study file; use it to compare studies).
    2. Maximised objectives (accuracies in [0, 1]): 0.0, the worst possible score.
    3. Minimised objectives (spikes, energy): 2 x the baseline row's value, if finite and > 0.
    4. Otherwise 2 x the value of the first COMPLETE trial (lowest ``trial``) with a finite value > 0.

    Rule 4 deliberately does not use the maximum over the table: that maximum grows as trials arrive, which
    would change every earlier hypervolume. The first trial's value is fixed once it exists, at the price
    that trials more than twice as costly as it contribute nothing.
    ``directions`` defaults to "maximize" for names containing "accuracy" and "minimize" otherwise.
    """
    if directions is None:
        directions = ["maximize" if "accuracy" in name else "minimize" for name in objectives]
    override = override or {}
    ref: dict[str, float] = {}
    for name, direction in zip(objectives, directions):
        if name in override:
            ref[name] = float(override[name])
        elif direction == "maximize":
            ref[name] = 0.0
        else:
            ref[name] = 2.0 * _first_positive(name, baseline_row, table)
    return ref


def _first_positive(name: str, baseline_row: Mapping[str, Any] | pd.Series | None, table: pd.DataFrame) -> float:
    if baseline_row is not None and _positive(baseline_row.get(name)):
        return float(baseline_row[name])
    done = _complete(table, [name])
    if "trial" in done:
        done = done.sort_values("trial", kind="stable")
    for value in done[name]:
        if _positive(value):
            return float(value)
    raise ValueError(f"no baseline or COMPLETE trial with a positive {name!r} to set a reference; pass one")


def _finite(value: Any) -> bool:
    return value is not None and value is not pd.NA and math.isfinite(float(value))


def _positive(value: Any) -> bool:
    return _finite(value) and float(value) > 0


# --- knee -------------------------------------------------------------------------------------------------

def knee_point(values: Any, directions: Sequence[Direction]) -> int:
    """Row index of the knee of the front of the rows whose values are all finite.

    Each objective is min-max scaled to [0, 1] over the front. In 2-D the two extremes then sit at (0, 1) and
    (1, 0), and the knee is the point farthest from the line through them on the ideal side, i.e. the one
    maximising (1 - z0 - z1) / sqrt(2). The hyperplane through n-D extremes can be degenerate, so with three
    or more objectives the knee is the point nearest (Euclidean) to the ideal point 0. Ties: lowest index.
    """
    v = normalize(values, directions)
    rows = np.flatnonzero(np.all(np.isfinite(v), axis=1))
    if len(rows) == 0:
        raise ValueError("knee_point needs at least one row with finite values")
    rows = rows[(_front_2d if v.shape[1] == 2 else _front_nd)(v[rows])]
    f = v[rows]
    lo, hi = f.min(axis=0), f.max(axis=0)
    z = (f - lo) / np.where(hi > lo, hi - lo, 1.0)
    if v.shape[1] == 2:
        return int(rows[np.argmax((1.0 - z.sum(axis=1)) / math.sqrt(2.0))])
    return int(rows[np.argmin(np.linalg.norm(z, axis=1))])


# --- trial tables -----------------------------------------------------------------------------------------

def _complete(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """COMPLETE rows (all rows if there is no ``state`` column) with finite values in ``columns``."""
    ok = table["state"] == "COMPLETE" if "state" in table else pd.Series(True, index=table.index)
    for c in columns:
        ok &= np.isfinite(pd.to_numeric(table[c], errors="coerce").astype(float))
    return table[ok]


def baseline_row(table: pd.DataFrame) -> pd.Series | None:
    """The COMPLETE row with ``is_baseline`` True (the lowest ``trial`` if several), or None."""
    if "is_baseline" not in table:
        return None
    rows = _complete(table[table["is_baseline"].fillna(False).astype(bool)], [])
    if rows.empty:
        return None
    return rows.sort_values("trial").iloc[0] if "trial" in rows else rows.iloc[0]


def _require_baseline(table: pd.DataFrame, accuracy: str) -> float:
    base = baseline_row(table)
    if base is None or not _finite(base.get(accuracy)):
        raise ValueError(f"no COMPLETE baseline trial (is_baseline=True) with a {accuracy!r} value in the table")
    return float(base[accuracy])


def feasible(table: pd.DataFrame) -> pd.Series:
    """The ``is_feasible`` column as booleans (all True when the table has none: no constraints)."""
    if "is_feasible" not in table:
        return pd.Series(True, index=table.index)
    return table["is_feasible"].fillna(False).astype(bool)


def annotate(table: pd.DataFrame, objectives: Sequence[str], directions: Sequence[Direction],
             include_infeasible: bool = False) -> pd.DataFrame:
    """Copy of ``table`` (same row order, fresh index) with Pareto rank and baseline-relative columns.

    - ``pareto_rank`` (nullable Int64): front index among COMPLETE, feasible (``is_feasible``, unless
      ``include_infeasible``) rows with finite values in every objective; other rows get <NA>, because a failed,
      pruned or constraint-breaking trial is not a trade-off anyone can pick (Optuna's ``best_trials`` agrees).
    - ``is_pareto``: ``pareto_rank == 0`` (False for unranked rows).
    - ``accuracy_delta``: 100 * (accuracy - baseline accuracy), in points; accuracy is the first maximised
      objective (else ``val_accuracy``). NaN without a baseline.
    - ``spike_reduction_pct``: 100 * (1 - spikes_per_sample / baseline's); NaN without a baseline or column.
    Callers sort: the trial table wants trial order, fronts and queries want accuracy order (:func:`by_accuracy`).
    """
    out = table.reset_index(drop=True)
    ranked = _complete(out, objectives)
    if not include_infeasible:
        ranked = ranked[feasible(ranked)]
    ranks = pd.Series(pd.NA, index=out.index, dtype="Int64")
    if len(ranked):
        ranks[ranked.index] = nondominated_ranks(ranked[list(objectives)].to_numpy(dtype=float), directions)
    out["pareto_rank"] = ranks
    out["is_pareto"] = (ranks == 0).fillna(False).astype(bool)
    accuracy = next((o for o, d in zip(objectives, directions) if d == "maximize"), "val_accuracy")
    base = baseline_row(table)
    out["accuracy_delta"] = np.nan
    out["spike_reduction_pct"] = np.nan
    if base is not None and accuracy in out:
        out["accuracy_delta"] = 100.0 * (out[accuracy].astype(float) - float(base[accuracy]))
    if base is not None and SPIKES in out:
        out["spike_reduction_pct"] = 100.0 * (1.0 - out[SPIKES].astype(float) / float(base[SPIKES]))
    return out


def by_accuracy(table: pd.DataFrame, accuracy: str) -> pd.DataFrame:
    """``table`` sorted by ``accuracy`` descending (missing last), then by ``trial``; fresh index."""
    keys = [accuracy] + (["trial"] if "trial" in table else [])
    return table.sort_values(keys, ascending=[False] + [True] * (len(keys) - 1), na_position="last",
                             kind="stable").reset_index(drop=True)


def _cheapest_at_least(table: pd.DataFrame, threshold: float, accuracy: str, cost: str,
                       include_infeasible: bool) -> pd.DataFrame:
    # The cheapest row meeting the threshold (highest accuracy among equal cost) is always Pareto-optimal.
    front = annotate(table, [accuracy, cost], ["maximize", "minimize"], include_infeasible)
    front = front[front["is_pareto"] & (front[accuracy] >= threshold - _TOL)]
    if front.empty:
        return front.reset_index(drop=True)
    return by_accuracy(front[front[cost] == front[cost].min()], accuracy)


def query_max_accuracy_drop(
    table: pd.DataFrame, points: float, accuracy: str = "val_accuracy", cost: str = SPIKES,
    include_infeasible: bool = False,
) -> pd.DataFrame:
    """Pareto-optimal COMPLETE trials losing at most ``points`` accuracy points against the baseline, the
    ones with the lowest ``cost`` (ties: higher accuracy first). Rows are :func:`annotate` rows, and the
    baseline itself is a candidate. Only feasible trials (``is_feasible``) compete unless ``include_infeasible``.
    Empty if none qualifies; ValueError without a baseline.
    """
    return _cheapest_at_least(table, _require_baseline(table, accuracy) - points / 100.0, accuracy, cost,
                              include_infeasible)


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
    """The knee (:func:`knee_point`) of the COMPLETE (feasible) trials' accuracy/cost front, as one annotated row."""
    rows = annotate(table, [accuracy, cost], ["maximize", "minimize"], include_infeasible)
    rows = rows[rows["pareto_rank"].notna()]
    if rows.empty:
        return rows.reset_index(drop=True)
    knee = knee_point(rows[[accuracy, cost]].to_numpy(dtype=float), ["maximize", "minimize"])
    return rows.iloc[[knee]].reset_index(drop=True)


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


# --- export ---------------------------------------------------------------------------------------------

def to_table(df: pd.DataFrame, fmt: str, path: str | Path | None = None) -> str | None:
    """Render ``df`` in one of ``FORMATS`` (see ``sparsity_search.output.render``, the one formatter)."""
    from .output import render

    return render(df, fmt, path)
