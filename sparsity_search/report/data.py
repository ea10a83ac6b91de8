"""Everything the report and the ``plot`` kinds show, gathered once from a study through the public API.

Rendering (``figures``, ``page``, ``sparsity_search.plots``) only draws what is here, so the HTML page and the PNGs
agree on which trials are feasible, where the baseline is, what the queries answer and which range is useful.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..pareto.boundary import BoundaryFinding, boundary_findings
from ..schedules import make_lambda_schedule
from .history import Rows, epoch_histories, layer_spikes

if TYPE_CHECKING:
    from ..api import Study

# The default view of the front: accuracy within this many points below the baseline (``full_range`` lifts it).
NEAR_BASELINE_POINTS = 3.0
# Query answers marked on the front: label -> (Study.query rule, value).
ANSWERS = {"iso-accuracy": ("iso_accuracy", None), "max drop 0.5 pt": ("max_accuracy_drop", 0.5),
           "max drop 1 pt": ("max_accuracy_drop", 1.0), "knee": ("knee", None)}


@dataclass
class ReportData:
    """A study's trials with plot coordinates, its baseline, query answers, hypervolume history, front curves, and
    the search-space bounds the front sits on (judged with the answers marked here).

    ``trials`` has the trial table's columns plus ``is_feasible``, ``x`` (cost reduction against the baseline in
    percent, or the raw cost without a baseline) and ``y`` (accuracy change in points, or accuracy in percent).
    """

    study_name: str
    backend: str
    accuracy: str
    cost: str
    trials: pd.DataFrame
    front: pd.DataFrame
    baseline: dict[str, Any] | None
    answers: dict[str, int | None]
    hv_history: list[tuple[int, float]]  # (trial number, hypervolume after it)
    histories: dict[int, Rows]
    layers: dict[int, dict[str, float]]
    params: list[str]
    summary: list[tuple[str, str]]
    min_accuracy: float | None
    # PBT trials: lambda per epoch of the schedule their final weights were trained with (learned, through every
    # exploit step); their histories' ``lambda`` is what their own slot used
    learned: dict[int, list[float]] = field(default_factory=dict)
    boundary: list[BoundaryFinding] = field(default_factory=list)  # bounds the front sits on (pareto.boundary)
    generated: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))

    @property
    def relative(self) -> bool:
        """Axes relative to the lambda = 0 baseline (reduction %, accuracy change) rather than absolute."""
        return self.baseline is not None

    def curve(self, n: int, key: str) -> list[Any]:
        """Trial ``n``'s per-epoch values of ``key`` (None where missing); a PBT trial's lambda is its learned one."""
        if key == "lambda" and n in self.learned:
            return list(self.learned[n])
        return [r.get(key) for r in self.histories.get(n, [])]

    def lambda_title(self) -> str:
        return "λ(t) learned by PBT" if self.learned else "λ(t) at epoch end"

    def answer_labels(self) -> dict[int, list[str]]:
        """Each answering trial with the labels of the queries it answers (one point can answer several)."""
        labels: dict[int, list[str]] = {}
        for label, trial in self.answers.items():
            if trial is not None:
                labels.setdefault(trial, []).append(label)
        return labels

    def x_label(self) -> str:
        name = self.cost.replace("_", " ")
        return f"{name} reduction vs baseline (%)" if self.relative else f"{name} (log scale)"

    def y_label(self) -> str:
        name = self.accuracy.replace("_", " ")
        return f"{name} change vs baseline (points)" if self.relative else f"{name} (%)"

    def constraint_y(self) -> float | None:
        """The ``min_accuracy`` constraint in the y axis' units, or None."""
        if self.min_accuracy is None:
            return None
        return _to_y(self.min_accuracy, self.baseline, self.accuracy)

    def y_floor(self) -> float:
        """Below every plotted point and the constraint: where the shaded infeasible region ends."""
        ys = self.trials["y"].to_numpy(dtype=float)
        ys = ys[np.isfinite(ys)]
        low = min(float(ys.min()) if len(ys) else 0.0, self.constraint_y() or 0.0)
        return low - 0.05 * max(abs(low), 1.0)

    def y_range(self, full_range: bool) -> tuple[float, float] | None:
        """The near-baseline window (None: let the plot fit every point)."""
        if full_range or not self.relative:
            return None
        done = self.trials[self.trials["state"].isin(["COMPLETE", "PRUNED"])]
        top = float(np.nanmax(done["y"].to_numpy(dtype=float), initial=0.0))
        # the query answers (the knee may lie lower) stay in view unless they are far below
        answers = self.trials.loc[self.trials["trial"].isin([n for n in self.answers.values() if n is not None]), "y"]
        low = min([-NEAR_BASELINE_POINTS, *[y for y in answers if y >= -3 * NEAR_BASELINE_POINTS]])
        return low - 0.25, top + 0.6  # room for the answers' labels

    def x_range(self, full_range: bool) -> tuple[float, float] | None:
        """Reductions of the points inside the near-baseline window, with a margin."""
        window = self.y_range(full_range)
        if window is None:
            return None
        done = self.trials[self.trials["state"].isin(["COMPLETE", "PRUNED"])]
        xs = done.loc[done["y"] >= window[0], "x"].to_numpy(dtype=float)
        xs = xs[np.isfinite(xs)]
        lo, hi = (float(xs.min()), float(xs.max())) if len(xs) else (0.0, 100.0)
        pad = max(2.0, 0.05 * (hi - lo))
        return lo - pad, min(hi + pad, 100.0 + pad)


def feasible(table: pd.DataFrame, accuracy: str, min_accuracy: float | None) -> pd.Series:
    """Which trials meet the study's constraints: the table's ``is_feasible`` column when the table has one,
    else accuracy >= ``constraints.min_accuracy`` for complete trials (a pruned or running trial's accuracy is
    not final, so only complete ones are judged; every trial is feasible without a constraint)."""
    if "is_feasible" in table:
        return table["is_feasible"].fillna(False).astype(bool)
    if min_accuracy is None:
        return pd.Series(True, index=table.index)
    below = table[accuracy].astype(float) < min_accuracy - 1e-9
    return ~(below & (table["state"] == "COMPLETE"))


def gather(study: "Study") -> ReportData:
    """Read the study once: trial table, baseline, query answers, hypervolume history, front trials' epochs."""
    spec = study.spec
    acc, cost = spec.accuracy_metric, spec.cost_metric
    table = study.trials()
    base = study.baseline()
    min_acc = spec.constraints.min_accuracy
    table = table.assign(is_feasible=feasible(table, acc, min_acc).to_numpy())
    table["x"] = _to_x(table[cost].astype(float), base, cost)
    table["y"] = _to_y(table[acc].astype(float), base, acc)
    complete = table[table["state"] == "COMPLETE"].sort_values("trial")
    has_done = len(complete) > 0
    order = study.pareto()["trial"].tolist() if has_done else []  # the front, sorted by accuracy
    front = table.set_index("trial").loc[order].reset_index()
    hv: list[tuple[int, float]] = []
    if has_done:
        values = study.hypervolume_history()  # one value per complete trial (or per feasible one)
        counted = complete if len(values) == len(complete) else complete[complete["is_feasible"]]
        hv = [(int(t), float(v)) for t, v in zip(counted["trial"], values)]
    shown = set(front["trial"].astype(int)) | ({int(base["trial"])} if base is not None else set())
    histories = epoch_histories(study, shown)
    learned = _learned(study, {n: len(histories[n]) for n in set(front["trial"].astype(int)) & set(histories)})
    params = [c for c in table.columns if c.startswith("params_")]
    answers = _answers(study) if has_done else {}
    marked = {label: [trial] for label, trial in answers.items() if trial is not None}
    return ReportData(study_name=spec.name, backend=spec.backend, accuracy=acc, cost=cost, trials=table,
                      front=front, baseline=base, answers=answers, hv_history=hv,
                      histories=histories, layers={n: layer_spikes(r) for n, r in histories.items()},
                      params=params, summary=_summary(study, table, base), min_accuracy=min_acc, learned=learned,
                      boundary=boundary_findings(front, spec.space(), marked, spec.search_space_file, spec.fixed()))


def _learned(study: "Study", epochs: dict[int, int]) -> dict[int, list[float]]:
    """The learned lambda per epoch (held within it) of the given PBT trials, read from their learned configs."""
    if study.spec.pbt is None or not epochs:
        return {}
    configs = study.trial_configs(list(epochs))
    return {n: [make_lambda_schedule(cfg, 1).lambda_at(e, 0) for e in range(epochs[n])]
            for n, cfg in configs.items() if cfg.schedule == "piecewise"}


def _to_x(values: Any, base: dict[str, Any] | None, cost: str) -> Any:
    if base is None or not _positive(base.get(cost)):
        return values
    return 100.0 * (1.0 - values / float(base[cost]))


def _to_y(values: Any, base: dict[str, Any] | None, acc: str) -> Any:
    if base is None:
        return 100.0 * values
    return 100.0 * (values - float(base[acc]))


def _positive(value: Any) -> bool:
    return value is not None and math.isfinite(float(value)) and float(value) > 0


def _answers(study: "Study") -> dict[str, int | None]:
    """Trial number answering each query (None: no trial qualifies, or no baseline to measure a drop from)."""
    out: dict[str, int | None] = {}
    for label, (rule, value) in ANSWERS.items():
        try:
            rows = study.query(rule, value)
        except ValueError:
            rows = None
        out[label] = int(rows.iloc[0]["trial"]) if rows is not None and len(rows) else None
    return out


def _named(value: Any) -> str:
    """A built-in name, or the user's factory (with its options) or data file."""
    if not isinstance(value, dict):
        return str(value)
    options = ", ".join(f"{k}={v}" for k, v in (value.get("options") or {}).items())
    return (value.get("factory") or value.get("path") or "?") + (f" ({options})" if options else "")


def _summary(study: "Study", table: pd.DataFrame, base: dict[str, Any] | None) -> list[tuple[str, str]]:
    spec = study.spec
    fixed = spec.fixed()
    counts = table["state"].value_counts().to_dict()
    states = ", ".join(f"{counts[s]} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
                       if counts.get(s))
    space = "; ".join(f"{name}: {_param_text(p)}" for name, p in spec.space().model_dump(mode="json")["params"].items())
    budget = ", ".join(p for p in (f"{spec.n_trials} trials" if spec.n_trials else "",
                                   f"{spec.timeout:g} s" if spec.timeout else "") if p) or "none"
    constraints = (f"{spec.accuracy_metric} >= {spec.constraints.min_accuracy:g}"
                   if spec.constraints.min_accuracy is not None else "none")
    stopping = spec.early_stopping
    rows = [("dataset", _named(fixed.get("dataset", "digits"))), ("model", _named(fixed.get("model", "mlp"))),
            ("fixed training", ", ".join(f"{k}={v}" for k, v in spec.train.items()) or "defaults"),
            ("search space", space), ("sampler", f"{spec.sampler.name} "
                                                 f"{spec.sampler.options if spec.sampler.options else ''}".strip()),
            ("objectives", ", ".join(f"{n} ({d})" for n, d in zip(spec.objective_names, spec.directions))),
            ("constraints", constraints),
            ("early stopping", "none" if stopping.kind == "none" else
             f"{stopping.kind} (min_epochs {stopping.min_epochs}, reduction factor {stopping.reduction_factor})"),
            *([("population-based training", f"population {spec.population.size}, interval {spec.pbt.interval}, "
                f"fraction {spec.pbt.fraction:g}, perturb {spec.pbt.perturb}, resample probability "
                f"{spec.pbt.resample_probability:g}, tie-break {spec.pbt.tie_break}")] if spec.pbt else []),
            ("budget", budget), ("trials", f"{len(table)} ({states})" if len(table) else "none yet"),
            ("backend", f"{spec.backend}, storage {study.settings.storage}")]
    if base is not None:
        rows.append(("baseline (lambda = 0)", f"trial {base['trial']}: {spec.accuracy_metric} "
                     f"{100 * base[spec.accuracy_metric]:.2f} %, {spec.cost_metric} {base[spec.cost_metric]:.4g}"))
    else:
        rows.append(("baseline (lambda = 0)", "none finished" if spec.baseline else "not run (baseline: false)"))
    return rows


def _param_text(p: dict[str, Any]) -> str:
    if p.get("type") == "categorical":
        text = "{" + ", ".join(map(str, p.get("choices", []))) + "}"
    else:
        text = f"[{p.get('low')}, {p.get('high')}]" + (" log" if p.get("log") else "")
    return text + (f" when {p['when']}" if p.get("when") else "")
