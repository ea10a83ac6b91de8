"""Quality indicators: exact hypervolume, its history as trials arrive, and a reference point that stays put.

Two objectives use our sort-and-sweep (and an incremental history with O(log n) lookups); more use moocore's
exact hypervolume. tests/test_pareto.py checks the 2-D paths against moocore on random point sets.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .fronts import Direction, normalize


def _reference(reference: Sequence[float], directions: Sequence[Direction]) -> np.ndarray:
    r = normalize(np.asarray(reference, dtype=float).reshape(1, -1), directions)[0]
    if not np.all(np.isfinite(r)):
        raise ValueError(f"reference point must be finite, got {list(reference)}")
    return r


def hypervolume(values: Any, directions: Sequence[Direction], reference: Sequence[float]) -> float:
    """Exact volume dominated by the points and bounded by ``reference`` (given in the original units).

    Points that are not strictly better than the reference in every objective contribute nothing.
    """
    r = _reference(reference, directions)
    v = normalize(values, directions)
    return volume_of_normalized(v[np.all(v < r, axis=1)], r)


def volume_of_normalized(v: np.ndarray, r: np.ndarray) -> float:
    """Hypervolume of normalised points that all lie strictly inside the normalised reference ``r``."""
    if len(v) == 0:
        return 0.0
    if v.shape[1] == 1:
        return float(r[0] - v[:, 0].min())
    if v.shape[1] == 2:
        return hv_2d(v, r)
    import moocore

    return float(moocore.hypervolume(v, ref=r))


def hv_2d(v: np.ndarray, r: np.ndarray) -> float:
    """Between x_i and x_{i+1} the covered height is r1 minus the best f1 seen so far; dominated points add 0."""
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
        return _history_2d(v, r, inside)
    out = np.zeros(len(v))
    kept = np.zeros((0, v.shape[1]))
    hv = 0.0
    for k, p in enumerate(v):
        if inside[k] and not np.any(np.all(kept <= p, axis=1)):
            kept = np.vstack([kept[~np.all(p <= kept, axis=1)], p])
            hv = volume_of_normalized(kept, r)
        out[k] = hv
    return out


def _history_2d(v: np.ndarray, r: np.ndarray, inside: np.ndarray) -> np.ndarray:
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
    done = table[table["state"] == "COMPLETE"] if "state" in table else table
    if "trial" in done:
        done = done.sort_values("trial", kind="stable")
    for value in done[name]:
        if _positive(value):
            return float(value)
    raise ValueError(f"no baseline or COMPLETE trial with a positive {name!r} to set a reference; pass one")


def finite(value: Any) -> bool:
    """A present, finite number (None, <NA> and NaN are not)."""
    return value is not None and value is not pd.NA and math.isfinite(float(value))


def _positive(value: Any) -> bool:
    return finite(value) and float(value) > 0
