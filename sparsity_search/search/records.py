"""One trial-table schema for every backend, produced here and nowhere else.

Each backend turns its own trials into ``TrialRecord``s; ``trials_table`` turns those into the DataFrame that
``pareto``, ``query``, ``plot``, ``status`` and the Python API read, with Pareto ranks and the reductions against
the baseline trial added by ``sparsity_search.pareto.annotate`` (over the trials that meet the study's constraints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .. import pareto
from ..config import OPTION_PREFIX
from ..names import LAYER_PREFIX
from .study_file import StudySpec

METRIC_COLUMNS = ("val_accuracy", "test_accuracy", "spikes_per_sample", "energy_uj", "firing_rate",
                  "synops_per_sample")
# PAUSED: waiting at an MO-ASHA rung to be resumed (promotion); PRUNED: stopped there for good
STATES = ("COMPLETE", "PRUNED", "PAUSED", "FAIL", "RUNNING", "WAITING")


@dataclass
class TrialRecord:
    """A backend-neutral view of one trial. ``metrics`` are the final ones, or the last epoch's if it stopped."""

    number: int
    state: str
    is_baseline: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    epochs: int = 0
    fail_reason: str = ""
    duration_s: float | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the resolved TrainConfig the trial trained


def is_feasible(spec: StudySpec, metrics: dict[str, Any]) -> bool:
    """Whether a trial meets the study's constraints; always True without any.

    The rule is Optuna's (``min_accuracy - accuracy <= 0``), applied here to the trial's metrics, so both backends
    and every sampler (random search too) agree with ``optuna.Study.best_trials`` on which trials are feasible.
    A trial without an accuracy (failed, still running) is not feasible under a constraint.
    """
    floor = spec.constraints.min_accuracy
    if floor is None:
        return True
    value = metrics.get(spec.accuracy_metric)
    return value is not None and math.isfinite(float(value)) and floor - float(value) <= 0.0


def trials_table(records: list[TrialRecord], spec: StudySpec) -> pd.DataFrame:
    """Every trial as a row, annotated with ``pareto_rank``, ``is_pareto``, ``spike_reduction_pct``, ``accuracy_delta``.

    Per-layer spikes (``spikes_per_sample_<layer>``, the layer names of the study's network) follow the metrics.

    ``is_feasible`` says whether the trial meets the study's constraints; ranks count feasible trials only.
    ``pbt`` says that the trial's schedule was learned by population-based training (its ``params_*`` are the
    sampler's first draw; its config, the learned ``piecewise`` schedules).
    """
    names = spec.space().names()
    layers = layer_columns(records)
    rows = []
    for r in sorted(records, key=lambda r: r.number):
        row: dict[str, Any] = {"trial": r.number, "state": r.state, "is_baseline": r.is_baseline,
                               "pbt": spec.pbt is not None and not r.is_baseline}  # a learned schedule
        row.update({f"params_{n}": r.params.get(n) for n in names})
        row.update({m: r.metrics.get(m) for m in (*METRIC_COLUMNS, *layers)})
        row.update(epochs=r.epochs, duration_s=r.duration_s, fail_reason=r.fail_reason,
                   is_feasible=is_feasible(spec, r.metrics))
        rows.append(row)
    columns = ["trial", "state", "is_baseline", "pbt", *(f"params_{n}" for n in names), *METRIC_COLUMNS, *layers,
               "epochs", "duration_s", "fail_reason", "is_feasible"]
    table = pd.DataFrame(rows, columns=columns)
    for m in (*METRIC_COLUMNS, *layers):
        table[m] = table[m].astype(float)
    table["is_feasible"] = table["is_feasible"].astype(bool)
    return pareto.annotate(table, spec.objective_names, spec.directions)


def layer_columns(records: list[TrialRecord]) -> list[str]:
    """The per-layer spike columns the trials reported (``spikes_per_sample_<layer>``), in the order first seen:
    the network's layer order."""
    seen: dict[str, None] = {}
    for r in records:
        seen.update((k, None) for k in r.metrics if k.startswith(LAYER_PREFIX))
    return list(seen)


def baseline_params(spec: StudySpec) -> dict[str, Any]:
    """The baseline's values for the searched parameters, so its row reads like every other trial's."""
    cfg = spec.baseline_config().to_dict()
    options = cfg["model"].get("options", {}) if isinstance(cfg["model"], dict) else {}
    return {n: options.get(n[len(OPTION_PREFIX):]) if n.startswith(OPTION_PREFIX) else cfg[n]
            for n in spec.space().names()}


def state_counts(records: list[TrialRecord]) -> dict[str, int]:
    """Trials per state, every state present (0 when none)."""
    counts = dict.fromkeys(STATES, 0)
    for r in records:
        counts[r.state] = counts.get(r.state, 0) + 1
    return counts
