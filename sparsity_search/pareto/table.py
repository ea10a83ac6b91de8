"""The trial table, annotated: Pareto ranks among feasible complete trials, and columns relative to the baseline.

A trial table has one row per trial with columns ``trial``, ``state``, ``is_baseline``, ``is_feasible``
(optional: all True when absent) and one column per metric. Accuracies are fractions in [0, 1]; a "point" is
one percentage point (0.01).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .fronts import Direction, nondominated_ranks
from .indicators import finite

SPIKES = "spikes_per_sample"


def complete(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """COMPLETE rows (all rows if there is no ``state`` column) with finite values in ``columns``."""
    ok = table["state"] == "COMPLETE" if "state" in table else pd.Series(True, index=table.index)
    for c in columns:
        ok &= np.isfinite(pd.to_numeric(table[c], errors="coerce").astype(float))
    return table[ok]


def feasible(table: pd.DataFrame) -> pd.Series:
    """The ``is_feasible`` column as booleans (all True when the table has none: no constraints)."""
    if "is_feasible" not in table:
        return pd.Series(True, index=table.index)
    return table["is_feasible"].fillna(False).astype(bool)


def baseline_row(table: pd.DataFrame) -> pd.Series | None:
    """The COMPLETE row with ``is_baseline`` True (the lowest ``trial`` if several), or None."""
    if "is_baseline" not in table:
        return None
    rows = complete(table[table["is_baseline"].fillna(False).astype(bool)], [])
    if rows.empty:
        return None
    return rows.sort_values("trial").iloc[0] if "trial" in rows else rows.iloc[0]


def baseline_accuracy(table: pd.DataFrame, accuracy: str) -> float:
    """The baseline's ``accuracy``; ValueError when the table has no complete baseline with one."""
    base = baseline_row(table)
    if base is None or not finite(base.get(accuracy)):
        raise ValueError(f"no COMPLETE baseline trial (is_baseline=True) with a {accuracy!r} value in the table")
    return float(base[accuracy])


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
    ranked = complete(out, objectives)
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
