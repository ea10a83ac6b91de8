"""Search efficiency: what a user waits for. Hypervolume against epochs and wall-clock seconds, per search method.

    python benchmarks/search_efficiency.py --quick    # MLP [64], 27 epochs, 45 trials' budget: a few min, 2 cores
    python benchmarks/search_efficiency.py            # MLP [128], 27 epochs, 60 trials' budget
    python benchmarks/search_efficiency.py --quick --seeds 1 --budget-trials 6 --jobs 1   # a smoke run
    python benchmarks/search_efficiency.py --quick --sampler-option constant_liar=true   # options of TPE

Methods search the same space (``--space``, default ``benchmarks/search_efficiency_space.yaml``) on the embedded
digits data, with the same fixed training settings and the same budget of training epochs:

  random          ``sampler: random``, every trial trained to ``max_epochs``
  tpe             the default sampler (TPE), one trial at a time, no pruning: what a user of plain Optuna gets
  tpe_stopping    TPE with ``early_stopping: {kind: moasha, mode: stopping}`` (rungs 1, 3, 9 of 27 epochs, rf 3)
  tpe_promotion   TPE with ``early_stopping: {kind: moasha, mode: promotion}``: trials pause at rungs, a free
                  worker resumes the best promotable paused trial before it asks TPE for a new one
  tpe_promotion_population
                  tpe_promotion with ``population: {size: 8}``: each round trains up to 8 trials as one vectorised
                  network (new trials, or continuations of paused ones from one rung); members pause at rungs
  pbt_population  TPE proposing the first members of populations of ``PBT_POPULATION`` trained with
                  population-based training (``pbt``: every ``PBT["interval"]`` epochs the worst quarter takes over
                  the weights of the best quarter and perturbs lambda_max and lr; ``--tie-break`` ranks inside a
                  front), no early stopping: every member trains all epochs and is one trial

Each (method, seed) is a real study run through the library (a temporary study file, ``api.locate``,
``write_snapshot``, the Optuna backend's study and ``run_worker``, as ``sparsity-search launch`` runs one
in-process worker; results in a temporary folder) with one torch thread. The study ``seed`` (the sampler's) is
the benchmark seed; the training seed stays 0, so all methods train the same network for the same parameters.
``--jobs`` studies run at once, each in its own process: on a machine with that many free cores the seconds are
those of one worker alone; on a shared machine they are not meaningful.

Budget. ``budget_trials * max_epochs`` epochs, counting every epoch any trial trained (a paused or stopped trial
the epochs it reached, a resumed one only the epochs it added). The study runs until its trials have spent the
budget; the trial that crosses it is ignored, as is anything after. A trial's end is charged every epoch any trial
had trained by then (each epoch's end is its attempt's start plus its recorded ``wall_time_s``): the members of a
population finish together, so the first one told has already cost the whole population's epochs. Time is counted
from the study's start to each trial's end (training, sampler and storage: what the user waits for), read from
the storage.

Reference point, one for all methods and seeds: val_accuracy 0 and 2 x spikes_per_sample of the lambda = 0
network with the same fixed settings, trained once beforehand (``pareto.default_reference`` with a baseline row).
Hypervolume counts COMPLETE trials only (a paused or stopped trial's metrics are low-fidelity) and is printed as a
fraction of the reference box. The target is 98 % of the reference hypervolume: that of the union of every
method's and seed's final front. A seed that never reaches it is charged its whole budget (epochs and seconds).

Printed:
  # reference ...           the reference point, the baseline it comes from, the reference hypervolume
  # seed=S method=M ...     per study: trials sampled, paused/stopped, epochs and seconds to the target, hv at the
                            budget, seconds for the budget
  epochs  random ...        mean hypervolume over seeds after that many epochs (one row per tenth of the budget)
  seconds random ...        the same against wall-clock seconds (tenths of the longest study's seconds)
  method=NAME epochs_to_target=E seconds_to_target=S final_hv=H ratio_epochs_vs_tpe=R1 ratio_seconds_vs_tpe=R2
  reached=N/S               means over seeds; the ratios divide by tpe's means
  pbt_vs_fixed ...          with pbt_population and another method: the hypervolume of the union of PBT's final
                            fronts (all seeds) against that of every fixed-schedule method's (the paper's
                            constant, linear and annealing schedules), and how many points of each front the
                            other front dominates
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sparsity_search import TrainConfig, pareto, train  # noqa: E402
from sparsity_search.api import locate, write_snapshot  # noqa: E402
from sparsity_search.moasha import TIE_BREAKS  # noqa: E402

HERE = Path(__file__).resolve().parent
METHODS = ("random", "tpe", "tpe_stopping", "tpe_promotion", "tpe_promotion_population", "pbt_population")
POPULATION = 8  # members per round of tpe_promotion_population
PBT_POPULATION = 8  # members per population of pbt_population (16 and 8 measured: docs/benchmarks.md)
PBT = {"interval": 3, "fraction": 0.25, "perturb": {"lambda_max": [0.8, 1.25], "lr": [0.8, 1.25]},
       "resample_probability": 0.25}
TARGET = 0.98
OBJECTIVES, DIRECTIONS = ["val_accuracy", "spikes_per_sample"], ["maximize", "minimize"]
# Fixed training settings and budget per mode, shared by all methods. Both modes train 27 epochs, so MO-ASHA has
# three rungs (1, 3, 9); --quick is cheaper by its smaller network and budget.
MODES: dict[str, dict[str, Any]] = {
    "quick": {"train": {"hidden": [64], "timesteps": 4, "epochs": 27, "batch_size": 64, "threads": 1},
              "budget_trials": 45, "min_epochs": 1, "reduction_factor": 3},
    "full": {"train": {"hidden": [128], "timesteps": 4, "epochs": 27, "batch_size": 64, "threads": 1},
             "budget_trials": 60, "min_epochs": 1, "reduction_factor": 3},
}


class BudgetSpent(Exception):
    """Raised from the worker's per-trial callback once the study's trials have trained the budget."""


@dataclass
class Curve:
    """One study's progress, per trial end in completion order (pauses and stops included): epochs and seconds
    spent by then, the hypervolume (fraction of the box) of the complete trials by then, their objective values
    (NaN for a trial that did not complete), and the trials sampled / paused or stopped within the budget."""

    epochs: np.ndarray
    seconds: np.ndarray
    hv: np.ndarray
    values: np.ndarray
    sampled: int
    cut: int  # ends that were not completions: pauses and stops

    def at(self, axis: str, limit: float) -> float:
        """Hypervolume after ``limit`` epochs or seconds (0 before the first completion)."""
        done = np.flatnonzero(getattr(self, axis) <= limit)
        return float(self.hv[done[-1]]) if len(done) else 0.0

    def to_target(self, target: float, budget: int) -> tuple[float, float, bool]:
        """(epochs, seconds) when the hypervolume first reached ``target``, and whether it did; a miss is charged
        the whole budget: all its epochs and the seconds they took."""
        hit = np.flatnonzero(self.hv >= target)
        if len(hit):
            return float(self.epochs[hit[0]]), float(self.seconds[hit[0]]), True
        return float(budget), float(self.seconds[-1]) if len(self.seconds) else 0.0, False


def study_file(method: str, seed: int, mode: dict[str, Any], space: Path, results: Path, tie_break: str,
               n_trials: int) -> dict[str, Any]:
    """The study file of one (method, seed): methods differ only in ``sampler`` and ``early_stopping``."""
    data: dict[str, Any] = {
        "name": f"efficiency_{method}_{seed}", "dataset": "digits", "model": "mlp", "train": mode["train"],
        "search_space": str(space), "objectives": OBJECTIVES,
        "sampler": {"name": "random"} if method == "random" else {"name": "tpe",
                                                                  "options": mode.get("sampler_options", {})},
        "n_trials": n_trials,
        "seed": seed, "baseline": False, "results": str(results),
    }
    if method.startswith(("tpe_stopping", "tpe_promotion")):
        data["early_stopping"] = {"kind": "moasha", "mode": method.split("_")[1],
                                  "min_epochs": mode["min_epochs"], "reduction_factor": mode["reduction_factor"],
                                  "tie_break": tie_break}
    if method == "tpe_promotion_population":
        data["population"] = {"size": POPULATION}
    if method == "pbt_population":
        data["population"] = {"size": mode.get("pbt_population", PBT_POPULATION)}
        data["pbt"] = {**PBT, "tie_break": tie_break}
    return data


def _attempts(study: Any) -> pd.DataFrame:
    """Every finished trial of an Optuna study in completion order: its end, the epochs every trial had trained by
    then (``spent``: members of a population finish together, so the first to be told already paid for all), its
    values."""
    from optuna.trial import TrialState

    rows, ends = [], []
    for t in study.get_trials(deepcopy=False):
        if t.datetime_start is not None:  # each epoch's end: the attempt's start plus the run's elapsed seconds
            ends += [t.datetime_start.timestamp() + m["wall_time_s"] for k, m in t.user_attrs.items()
                     if k.startswith("epoch_")]
        if t.datetime_complete is None:
            continue
        done = t.state == TrialState.COMPLETE
        rows.append({"end": t.datetime_complete.timestamp(), "state": t.state.name,
                     "new": "continues" not in t.user_attrs and t.user_attrs.get("origin", t.number) == t.number,
                     **{m: (t.values[i] if done else math.nan) for i, m in enumerate(OBJECTIVES)}})
    table = pd.DataFrame(rows).sort_values("end", kind="stable").reset_index(drop=True)
    table["spent"] = np.searchsorted(np.sort(ends), table["end"].to_numpy(), side="right")
    return table


def run_study(path: Path, budget: int, reference: list[float]) -> Curve:
    """Run one study through the library until its trials have trained ``budget`` epochs; its curve."""
    import optuna

    from sparsity_search.search.optuna.storage import open_storage
    from sparsity_search.search.optuna.study import ensure_baseline, open_optuna_study
    from sparsity_search.search.optuna.worker import run_worker

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    spec, settings = locate(path)
    settings.threads, settings.show_progress, settings.workers = 1, False, 1
    write_snapshot(spec, settings.results_dir)
    study = open_optuna_study(spec, settings.storage, create=True)
    ensure_baseline(study, spec)

    def guard(s: optuna.Study) -> None:
        spent = sum(sum(k.startswith("epoch_") for k in t.user_attrs) for t in s.get_trials(deepcopy=False)
                    if t.datetime_complete is not None)
        if spent >= budget:
            raise BudgetSpent

    t0 = time.time()
    try:
        run_worker(spec, settings, on_trial=guard)
    except BudgetSpent:
        pass
    table = _attempts(optuna.load_study(study_name=spec.name, storage=open_storage(settings.storage)))
    table = table[table["spent"] <= budget]
    values = table[OBJECTIVES].to_numpy(dtype=float)
    hv = pareto.hypervolume_history(values, DIRECTIONS, reference) / reference[1]
    return Curve(epochs=table["spent"].to_numpy(dtype=float), seconds=(table["end"] - t0).to_numpy(),
                 hv=hv, values=values, sampled=int(table["new"].sum()),
                 cut=int((table["state"] != "COMPLETE").sum()))


def _job(args: tuple[str, int, dict[str, Any], Path, Path, str, int, list[float]]) -> tuple[str, int, Curve]:
    method, seed, mode, space, tmp, tie_break, budget, reference = args
    folder = tmp / f"{method}_{seed}"
    folder.mkdir()
    path = folder / "study.yaml"
    # never binding: the epoch budget ends the study; PBT members all train every epoch, so there the budget's
    # trials are exactly the budget (the last population is smaller when K does not divide them)
    n_trials = mode["budget_trials"] if method == "pbt_population" else 100 * mode["budget_trials"]
    path.write_text(yaml.safe_dump(study_file(method, seed, mode, space, folder, tie_break, n_trials)))
    return method, seed, run_study(path, budget, reference)


def reference_point(mode: dict[str, Any]) -> tuple[list[float], dict[str, Any]]:
    """(val_accuracy 0, 2 x the lambda = 0 network's spikes), by the library's default rule."""
    row = train(TrainConfig(**{**mode["train"], "dataset": "digits", "model": "mlp", "lambda_max": 0.0}))
    ref = pareto.default_reference(OBJECTIVES, row, pd.DataFrame())
    return [ref[n] for n in OBJECTIVES], row


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.0f}"


def print_results(curves: dict[str, list[Curve]], budget: int, target: float) -> None:
    """The two hypervolume tables, then one line per method (fields in the module docstring)."""
    methods = [m for m in METHODS if curves.get(m)]
    width = {m: max(14, len(m)) for m in methods}
    head = "  ".join(f"{m:>{width[m]}}" for m in methods) + "   (mean hypervolume over seeds)"
    print(f"{'epochs':>8}  " + head)
    for k in range(1, 11):
        e = budget * k / 10
        print(f"{e:8.0f}  " + "  ".join(f"{np.mean([c.at('epochs', e) for c in curves[m]]):{width[m]}.4f}"
                                        for m in methods))
    longest = max(float(c.seconds[-1]) for m in methods for c in curves[m] if len(c.seconds))
    print(f"{'seconds':>8}  " + head)
    for k in range(1, 11):
        s = longest * k / 10
        print(f"{s:8.1f}  " + "  ".join(f"{np.mean([c.at('seconds', s) for c in curves[m]]):{width[m]}.4f}"
                                        for m in methods))
    summary = {m: np.array([c.to_target(target, budget) for c in curves[m]], dtype=float) for m in methods}
    tpe = summary.get("tpe")
    for m in methods:
        epochs, seconds = summary[m][:, 0].mean(), summary[m][:, 1].mean()
        r1 = epochs / tpe[:, 0].mean() if tpe is not None else math.nan
        r2 = seconds / tpe[:, 1].mean() if tpe is not None else math.nan
        final = np.mean([c.at("epochs", budget) for c in curves[m]])
        print(f"method={m} epochs_to_target={epochs:.0f} seconds_to_target={seconds:.1f} final_hv={final:.4f} "
              f"ratio_epochs_vs_tpe={r1:.2f} ratio_seconds_vs_tpe={r2:.2f} "
              f"reached={int(summary[m][:, 2].sum())}/{len(curves[m])}")


def print_pbt_vs_fixed(curves: dict[str, list[Curve]], reference: list[float]) -> None:
    """PBT's final fronts (union over seeds) against those of the fixed-schedule methods (the paper's schedules)."""
    fixed_methods = [m for m in METHODS if m != "pbt_population" and curves.get(m)]
    if not curves.get("pbt_population") or not fixed_methods:
        return

    def front(methods: list[str]) -> np.ndarray:
        v = np.vstack([c.values for m in methods for c in curves[m]])
        v = v[np.isfinite(v).all(axis=1)]
        return v[pareto.pareto_front_mask(v, DIRECTIONS)]

    def beaten(points: np.ndarray, by: np.ndarray) -> int:
        a, b = pareto.normalize(points, DIRECTIONS), pareto.normalize(by, DIRECTIONS)
        return sum(any(pareto.dominates(q, p) for q in b) for p in a)

    pbt, fixed = front(["pbt_population"]), front(fixed_methods)
    hv = {name: pareto.hypervolume(v, DIRECTIONS, reference) / reference[1] for name, v in (("pbt", pbt),
                                                                                          ("fixed", fixed))}
    print(f"pbt_vs_fixed pbt_front_hv={hv['pbt']:.4f} fixed_front_hv={hv['fixed']:.4f} "
          f"pbt_points_dominated_by_fixed={beaten(pbt, fixed)}/{len(pbt)} "
          f"fixed_points_dominated_by_pbt={beaten(fixed, pbt)}/{len(fixed)} (fixed: {' '.join(fixed_methods)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small network and budget (a few minutes)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget-trials", type=int, help="budget in full trials (budget = this x max_epochs)")
    parser.add_argument("--space", type=Path, default=HERE / "search_efficiency_space.yaml")
    parser.add_argument("--tie-break", choices=TIE_BREAKS, default="hypervolume", help="MO-ASHA's tie-break")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--sampler-option", action="append", default=[], metavar="KEY=VALUE",
                        help="a TPE option for every tpe method (YAML value), e.g. constant_liar=true")
    parser.add_argument("--pbt-population", type=int, default=PBT_POPULATION, metavar="K",
                        help=f"members per population of pbt_population (default {PBT_POPULATION})")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="studies run at once, one process each (default: 2)")
    args = parser.parse_args()
    mode = dict(MODES["quick" if args.quick else "full"])
    if args.budget_trials:
        mode["budget_trials"] = args.budget_trials
    mode["pbt_population"] = args.pbt_population
    if any("=" not in option for option in args.sampler_option):
        parser.error("--sampler-option takes KEY=VALUE")
    mode["sampler_options"] = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.sampler_option)}
    max_epochs = mode["train"]["epochs"]
    budget = mode["budget_trials"] * max_epochs

    reference, base = reference_point(mode)
    print(f"# mode={'quick' if args.quick else 'full'} train={mode['train']} space={args.space.name} "
          f"seeds={args.seeds} budget_epochs={budget} ({mode['budget_trials']} x {max_epochs}) "
          f"moasha: min_epochs={mode['min_epochs']} reduction_factor={mode['reduction_factor']} "
          f"tie_break={args.tie_break} pbt_population={args.pbt_population} pbt={PBT} jobs={args.jobs} "
          f"tpe_options={mode['sampler_options']}")
    print(f"# reference: val_accuracy=0 spikes_per_sample={reference[1]:.1f} (2 x the lambda=0 network: "
          f"val_accuracy={base['val_accuracy']:.4f} spikes_per_sample={base['spikes_per_sample']:.1f}); "
          f"hv is a fraction of the box 1 x {reference[1]:.1f}", flush=True)
    curves: dict[str, list[Curve]] = {m: [] for m in args.methods}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(m, seed, mode, args.space.resolve(), Path(tmp), args.tie_break, budget, reference)
                for seed in range(args.seeds) for m in args.methods]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            done = list(pool.map(_job, jobs))
    for method, seed, c in sorted(done, key=lambda d: (d[1], METHODS.index(d[0]))):
        curves[method].append(c)
    union = np.vstack([c.values for cs in curves.values() for c in cs])
    ref_hv = pareto.hypervolume(union[np.isfinite(union).all(axis=1)], DIRECTIONS, reference) / reference[1]
    target = TARGET * ref_hv
    print(f"# reference hypervolume (union of all final fronts) {ref_hv:.4f}; target {TARGET:.0%} = {target:.4f}")
    for method, cs in curves.items():
        for seed, c in enumerate(cs):
            e, s, hit = c.to_target(target, budget)
            print(f"# seed={seed} method={method} sampled={c.sampled} paused_or_stopped={c.cut} "
                  f"epochs_to_target={_fmt(e)}{'' if hit else '(missed)'} seconds_to_target={s:.1f} "
                  f"hv_at_budget={c.at('epochs', budget):.4f} seconds_at_budget={c.seconds[-1]:.1f}")
    print_results(curves, budget, target)
    print_pbt_vs_fixed(curves, reference)


if __name__ == "__main__":
    main()
