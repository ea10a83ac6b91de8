"""Search efficiency: hypervolume against epochs spent for random search, TPE, and TPE with MO-ASHA.

    python benchmarks/search_efficiency.py --quick    # MLP [64], 27 epochs, 45 trials' budget: ~5 min on 1 core
    python benchmarks/search_efficiency.py            # MLP [128], 27 epochs, 60 trials' budget: ~8 min on 1 core
    python benchmarks/search_efficiency.py --quick --seeds 5 --budget-trials 60 --space search_spaces/sparsity.yaml
    python benchmarks/search_efficiency.py --quick --tie-break epsilon_net   # MO-ASHA with the paper's tie-break

Three methods search the same space (``--space``, default ``benchmarks/search_efficiency_space.yaml``) on the
embedded digits data, with the same fixed training settings and the same budget of training epochs:

  random       ``sampler: random``, every trial trained to ``max_epochs``
  tpe          the default sampler (TPE, default options), every trial trained to ``max_epochs``
  tpe_moasha   the default sampler with ``early_stopping: {kind: moasha}`` (rungs 1, 3, 9 of 27 epochs;
               ``--tie-break`` sets its ``tie_break``, default hypervolume as in the library)

Each (method, seed) is a real study launched through the library (a temporary study file, ``api.locate``,
``write_snapshot`` and the backend's ``run``, as ``sparsity-search launch`` does; results in a temporary
folder), on one in-process worker with one torch thread. The study ``seed`` (the sampler's) is the benchmark
seed; the training seed stays 0, so all methods train the same network for the same parameters.

Budget. The budget is ``budget_trials * max_epochs`` epochs, counting every epoch any trial trained (pruned
trials count the epochs they reached). A study is resumed with a larger ``--n-trials`` until its trials have
spent the budget: each round adds (epochs left) // max_epochs trials, which cannot overshoot while a whole trial
still fits; the last round adds one. Full-fidelity methods therefore run exactly ``budget_trials`` trials.
Trials are ordered by trial number (one worker: that is completion order); a trial counts at the epoch total
where it finished, and trials finishing past the budget are ignored. No baseline trial runs inside the studies.

Reference point, one for all methods and seeds: val_accuracy 0 and 2 x spikes_per_sample of the lambda = 0
network with the same fixed settings, trained once beforehand with ``sparsity_search.train`` (the library's own
rule, ``pareto.default_reference`` with a baseline row). Hypervolume (COMPLETE trials only: a pruned trial's
metrics are low-fidelity) is printed as a fraction of the reference box, 1 x reference spikes, so 1.0 would
be 100 % accuracy at zero spikes. With accuracy 0 in the reference, one accurate low-spike trial already
covers most of the box: methods differ in the second decimal, and 95 % of the final value comes early.

Printed:
  # reference ...           the reference point and the baseline it comes from
  # seed=S method=M ...     one line per study as it ends: trials and pruned trials within the budget,
                            epochs spent (the last round may overshoot), hypervolume at the budget, wall time
  epochs  random  tpe ...   mean hypervolume over seeds after that many epochs (one row per tenth of the budget)
  method=M epochs_to_95pct=E final_hv=H ...
      epochs_to_95pct  mean over seeds of the epochs M spent until its hypervolume reached 95 % of tpe's
                       final hypervolume in the same seed (a paired target); ">budget" if some seed never did
      per_seed         the same per seed (">budget" where not reached)
      final_hv         mean hypervolume at the budget; final_hv_per_seed likewise
      ratio_vs_tpe     epochs_to_95pct / tpe's (the issue's goal: tpe_moasha <= 0.33)
      trials, pruned   trials finished within the budget (mean over seeds), of which stopped by MO-ASHA
      wall_s           mean wall time of one study (training + storage + sampler), noisy on a shared machine
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sparsity_search import TrainConfig, pareto, train  # noqa: E402
from sparsity_search.api import Study, locate, write_snapshot  # noqa: E402
from sparsity_search.moasha import TIE_BREAKS  # noqa: E402
from sparsity_search.search import get_backend  # noqa: E402

HERE = Path(__file__).resolve().parent
METHODS = ("random", "tpe", "tpe_moasha")
TARGET = 0.95
# Fixed training settings and budget per mode. Everything here is shared by the three methods. Both modes train
# 27 epochs, so MO-ASHA has three rungs (1, 3, 9) to stop at; --quick is cheaper by its smaller network.
MODES: dict[str, dict[str, Any]] = {
    "quick": {"train": {"hidden": [64], "timesteps": 4, "epochs": 27, "batch_size": 64, "threads": 1},
              "budget_trials": 45, "min_epochs": 1, "reduction_factor": 3},
    "full": {"train": {"hidden": [128], "timesteps": 4, "epochs": 27, "batch_size": 64, "threads": 1},
             "budget_trials": 60, "min_epochs": 1, "reduction_factor": 3},
}


@dataclass
class Curve:
    """One study's progress: per trial (in completion order) the epochs spent by its end, the hypervolume
    reached by then, and whether MO-ASHA stopped it."""

    epochs: np.ndarray
    hv: np.ndarray
    pruned: np.ndarray
    wall_s: float

    def at(self, budget: float) -> float:
        """Hypervolume after ``budget`` epochs (0 before the first trial finished)."""
        done = np.flatnonzero(self.epochs <= budget)
        return float(self.hv[done[-1]]) if len(done) else 0.0

    def epochs_to(self, target: float, budget: float) -> float:
        """Epochs spent when the hypervolume first reached ``target`` within ``budget`` (inf if it did not)."""
        hit = np.flatnonzero((self.hv >= target) & (self.epochs <= budget))
        return float(self.epochs[hit[0]]) if len(hit) else math.inf

    def counts(self, budget: float) -> tuple[int, int]:
        """(trials, pruned trials) finished within ``budget`` epochs."""
        within = self.epochs <= budget
        return int(within.sum()), int((within & self.pruned).sum())


def study_file(method: str, seed: int, mode: dict[str, Any], space: Path, results: Path,
               tie_break: str = "hypervolume") -> dict[str, Any]:
    """The study file of one (method, seed): the three methods differ only in ``sampler`` and ``early_stopping``."""
    data: dict[str, Any] = {
        "name": f"efficiency_{method}_{seed}", "dataset": "digits", "model": "mlp", "train": mode["train"],
        "search_space": str(space), "objectives": ["val_accuracy", "spikes_per_sample"],
        "sampler": {"name": "random" if method == "random" else "tpe"}, "n_trials": mode["budget_trials"],
        "seed": seed, "baseline": False, "results": str(results),
    }
    if method == "tpe_moasha":
        data["early_stopping"] = {"kind": "moasha", "min_epochs": mode["min_epochs"],
                                  "reduction_factor": mode["reduction_factor"], "tie_break": tie_break}
    return data


def run_study(path: Path, budget: int, max_epochs: int) -> Study:
    """Launch, then resume with more trials until the study's trials have trained ``budget`` epochs."""
    spec, settings = locate(path)
    settings.threads, settings.show_progress = 1, False
    write_snapshot(spec, settings.results_dir)
    study, n_trials, spent = Study(spec, settings), 0, 0
    while spent < budget:
        n_trials += max(1, (budget - spent) // max_epochs)
        settings.n_trials = n_trials
        get_backend(spec.backend).run(spec, settings)
        spent = int(study.trials()["epochs"].sum())
    return study


def curve(study: Study, reference: list[float], wall_s: float) -> Curve:
    """Hypervolume history over cumulative epochs, as a fraction of the reference box (accuracy spans 0..1)."""
    table = study.trials()  # trial order = completion order with one worker
    values = table[study.spec.objective_names].to_numpy(dtype=float)
    values[(table["state"] != "COMPLETE").to_numpy()] = np.nan  # pruned/failed: no point on the front
    hv = pareto.hypervolume_history(values, study.spec.directions, reference)
    return Curve(epochs=table["epochs"].to_numpy(dtype=float).cumsum(), hv=hv / reference[1],
                 pruned=(table["state"] == "PRUNED").to_numpy(), wall_s=wall_s)


def reference_point(mode: dict[str, Any]) -> tuple[list[float], dict[str, Any]]:
    """(val_accuracy 0, 2 x the lambda = 0 network's spikes), by the library's default rule."""
    row = train(TrainConfig(**{**mode["train"], "dataset": "digits", "model": "mlp", "lambda_max": 0.0}))
    names = ["val_accuracy", "spikes_per_sample"]
    ref = pareto.default_reference(names, row, pd.DataFrame())
    return [ref[n] for n in names], row


def _fmt(epochs: float) -> str:
    return ">budget" if math.isinf(epochs) else f"{epochs:.0f}"


def print_results(curves: dict[str, list[Curve]], budget: int) -> None:
    """The hypervolume table and one summary line per method (fields in the module docstring)."""
    print("epochs  " + "  ".join(f"{m:>10}" for m in METHODS) + "   (mean hypervolume over seeds)")
    for k in range(1, 11):
        e = budget * k // 10
        print(f"{e:6d}  " + "  ".join(f"{np.mean([c.at(e) for c in curves[m]]):10.4f}" for m in METHODS))
    targets = [TARGET * c.at(budget) for c in curves["tpe"]]  # paired: each seed against tpe's same seed
    to_target = {m: [c.epochs_to(t, budget) for c, t in zip(curves[m], targets)] for m in METHODS}
    tpe_mean = float(np.mean(to_target["tpe"]))
    for m in METHODS:
        mean = float(np.mean(to_target[m]))
        finals = [c.at(budget) for c in curves[m]]
        trials, pruned = np.mean([c.counts(budget) for c in curves[m]], axis=0)
        ratio = "inf" if math.isinf(mean) else f"{mean / tpe_mean:.2f}"
        print(f"method={m} epochs_to_95pct={_fmt(mean)} final_hv={np.mean(finals):.4f} "
              f"per_seed=[{','.join(_fmt(e) for e in to_target[m])}] "
              f"final_hv_per_seed=[{','.join(f'{h:.4f}' for h in finals)}] ratio_vs_tpe={ratio} "
              f"trials={trials:.1f} pruned={pruned:.1f} wall_s={np.mean([c.wall_s for c in curves[m]]):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small network and budget (a few minutes)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget-trials", type=int, help="budget in full trials (budget = this x max_epochs)")
    parser.add_argument("--space", type=Path, default=HERE / "search_efficiency_space.yaml")
    parser.add_argument("--tie-break", choices=TIE_BREAKS, default="hypervolume", help="MO-ASHA's tie-break")
    args = parser.parse_args()
    mode = dict(MODES["quick" if args.quick else "full"])
    if args.budget_trials:
        mode["budget_trials"] = args.budget_trials
    max_epochs = mode["train"]["epochs"]
    budget = mode["budget_trials"] * max_epochs
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    reference, base = reference_point(mode)
    print(f"# mode={'quick' if args.quick else 'full'} train={mode['train']} space={args.space.name} "
          f"seeds={args.seeds} budget_epochs={budget} ({mode['budget_trials']} x {max_epochs}) "
          f"moasha: min_epochs={mode['min_epochs']} reduction_factor={mode['reduction_factor']} "
          f"tie_break={args.tie_break}")
    print(f"# reference: val_accuracy=0 spikes_per_sample={reference[1]:.1f} (2 x the lambda=0 network: "
          f"val_accuracy={base['val_accuracy']:.4f} spikes_per_sample={base['spikes_per_sample']:.1f}); "
          f"hv is a fraction of the box 1 x {reference[1]:.1f}")
    curves: dict[str, list[Curve]] = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for method in METHODS:
                path = Path(tmp) / f"{method}_{seed}.yaml"
                path.write_text(yaml.safe_dump(study_file(method, seed, mode, args.space.resolve(), Path(tmp),
                                                          args.tie_break)))
                t0 = time.perf_counter()
                c = curve(run_study(path, budget, max_epochs), reference, time.perf_counter() - t0)
                curves[method].append(c)
                trials, pruned = c.counts(budget)
                print(f"# seed={seed} method={method} trials={trials} pruned={pruned} "
                      f"epochs_spent={c.epochs[-1]:.0f} hv_at_budget={c.at(budget):.4f} wall_s={c.wall_s:.1f}",
                      flush=True)
    print_results(curves, budget)


if __name__ == "__main__":
    main()
