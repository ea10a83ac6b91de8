"""Dominance, Pareto fronts, non-dominated ranks and the knee point, as small pure functions.

Every entry point first calls :func:`normalize`, which negates the columns to maximise and maps NaN to +inf
(worst), so all later code only minimises. Two objectives use our sort-and-sweep (the common case, and the
paths the property tests in tests/test_pareto.py check against moocore); more objectives use moocore's
non-dominated sorting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

Direction = Literal["maximize", "minimize"]


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
    return front_of_normalized(normalize(values, directions))


def front_of_normalized(v: np.ndarray) -> np.ndarray:
    """:func:`pareto_front_mask` of values already normalised (minimised, no NaN)."""
    if len(v) == 0:
        return np.zeros(0, dtype=bool)
    if v.shape[1] == 2:
        return front_2d(v)
    import moocore

    return np.asarray(moocore.is_nondominated(v, keep_weakly=True), dtype=bool)


def front_2d(v: np.ndarray) -> np.ndarray:
    """Sort by (f0, f1). A point survives if it has the smallest f1 of its f0-group and that f1 beats every point
    with a strictly smaller f0 (the first group has nobody to beat). O(n log n)."""
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


def nondominated_ranks(values: Any, directions: Sequence[Direction]) -> np.ndarray:
    """Front index of each row (0 = Pareto front, 1 = front once front 0 is removed, ...)."""
    v = normalize(values, directions)
    if len(v) == 0:
        return np.zeros(0, dtype=int)
    if v.shape[1] == 2:
        return ranks_2d(v)
    import moocore

    return np.asarray(moocore.pareto_rank(v), dtype=int)


def ranks_2d(v: np.ndarray) -> np.ndarray:
    """In (f0, f1) order each front's last member has the smallest f1 so far, and it dominates a new point
    exactly when some member of that front does; "front k dominates p" is monotone in k, so bisect. O(n log n)."""
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
    rows = rows[front_of_normalized(v[rows])]
    f = v[rows]
    lo, hi = f.min(axis=0), f.max(axis=0)
    z = (f - lo) / np.where(hi > lo, hi - lo, 1.0)
    if v.shape[1] == 2:
        return int(rows[np.argmax((1.0 - z.sum(axis=1)) / math.sqrt(2.0))])
    return int(rows[np.argmin(np.linalg.norm(z, axis=1))])
