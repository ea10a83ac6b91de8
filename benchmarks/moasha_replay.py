"""Replay MO-ASHA's promotion rule offline on recorded learning curves: try a rung rule in a minute, not an hour.

    python benchmarks/moasha_replay.py --record curves.jsonl            # 300 configs x 27 epochs: ~4 min, 1 core
    python benchmarks/moasha_replay.py --replay curves.jsonl            # ~2 min

``--record`` trains ``--configs`` random configurations of ``--space`` (default: the search-efficiency space) with
``search_efficiency.py``'s quick-mode settings for all 27 epochs, and writes one JSON line per configuration: its
parameters and (val_accuracy, spikes_per_sample) after every epoch. The first line is the lambda = 0 baseline.
A configuration whose loss diverged keeps the epochs it finished: replayed, it costs them and gives no point.

``--replay`` runs, for each of ``--orders`` random orders of the recorded configurations, one worker spending
``search_efficiency``'s quick budget (45 x 27 epochs) on:

  full             every configuration trained to the end (full-fidelity random search)
  moasha_<tb>      MO-ASHA (``moasha.should_continue``, rungs 1, 3, 9, reduction factor 3) with tie-break <tb>
  oracle_<tb>      the same with each rung ranked by the trials' final metrics: what a rung metric that predicted
                   the end perfectly would give under the same rule (not the best any rule could do)
  promotion_hypervolume, promotion_oracle_hypervolume
                   promotion-type ASHA (``moasha.promotable``: trials pause at rungs and the best paused one is
                   resumed when a worker is free), with real rung metrics and with the oracle's

and prints, per method, the mean epochs until the hypervolume of complete trials reached 95 % of ``full``'s at the
budget (same order, reference as ``search_efficiency``'s: accuracy 0 and 2 x the baseline's spikes) and the ratio
to ``full``; then the Spearman rank correlation of each objective at epochs 1, 3 and 9 with its value at the end,
for all configurations and per lambda schedule: how well a rung can predict where a trial ends.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sparsity_search import TrainConfig, moasha, pareto, train  # noqa: E402
from sparsity_search.data import load_data  # noqa: E402
from sparsity_search.errors import DivergedError  # noqa: E402
from sparsity_search.search.space import load_space  # noqa: E402
from search_efficiency import MODES  # noqa: E402  (this folder is on sys.path when run as a script)

HERE = Path(__file__).resolve().parent
# search_efficiency's quick mode, so a replay predicts that benchmark: same training, rungs and budget.
QUICK = MODES["quick"]
TRAIN = {"dataset": "digits", "model": "mlp", **QUICK["train"]}
EPOCHS, RF = QUICK["train"]["epochs"], QUICK["reduction_factor"]
RUNGS = tuple(moasha.rung_epochs(QUICK["min_epochs"], RF, EPOCHS))
BUDGET = QUICK["budget_trials"] * EPOCHS
OBJECTIVES, DIRECTIONS = ["val_accuracy", "spikes_per_sample"], ["maximize", "minimize"]


def record(path: Path, n_configs: int, space_path: Path, seed: int) -> None:
    """Train the baseline and ``n_configs`` random configurations; append one JSON line each."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = load_space(space_path)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    data = load_data(TrainConfig(**TRAIN), torch.device("cpu"))
    with path.open("w") as out:
        for k in range(n_configs + 1):
            if k == 0:
                params = {"lambda_max": 0.0}
            else:
                trial = sampler.ask()
                params = space.suggest(trial)
                sampler.tell(trial, 0.0)
            curve: list[list[float]] = []
            try:
                train(TrainConfig(**{**TRAIN, **params}), lambda e, m: curve.append(
                    [m["val_accuracy"], m["spikes_per_sample"]]), data=data)
            except DivergedError:
                curve.append([math.nan, math.nan])  # the epoch it diverged in was spent too
            out.write(json.dumps({"params": params, "curve": curve}) + "\n")
            out.flush()
            print(f"\r{k}/{n_configs}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def _history(points: list[np.ndarray | None], reference: list[float]) -> np.ndarray:
    values = np.array([p if p is not None else [np.nan, np.nan] for p in points], dtype=float).reshape(-1, 2)
    return pareto.hypervolume_history(values, DIRECTIONS, reference)


def replay_one(curves: np.ndarray, lengths: np.ndarray, order: np.ndarray, reference: list[float],
               tie_break: str | None, oracle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(epochs spent when each trial ended, hypervolume then) for one worker; ``tie_break`` None: full fidelity.

    ``curves`` is NaN-padded after a diverged run's ``lengths[i]`` epochs."""
    rungs: dict[int, list[tuple[int, np.ndarray]]] = {r: [] for r in RUNGS}
    points: list[np.ndarray | None] = []
    ends: list[int] = []
    spent = 0
    for i in order:
        point, reached = None, 0
        for rung in ((EPOCHS,) if tie_break is None else RUNGS + (EPOCHS,)):
            stop = min(rung, int(lengths[i]))
            if spent + stop - reached > BUDGET:
                return np.array(ends), _history(points, reference)
            spent, reached = spent + stop - reached, stop
            if stop < rung:  # diverged before this rung: no record, no point
                break
            if stop == EPOCHS:
                point = curves[i, -1]
                break
            rungs[stop].append((int(i), curves[i, -1] if oracle else curves[i, stop - 1]))
            if not moasha.should_continue(rungs[stop], int(i), DIRECTIONS, RF, tie_break):
                break
        points.append(point)
        ends.append(spent)
    return np.array(ends), _history(points, reference)


def replay_promotion(curves: np.ndarray, lengths: np.ndarray, order: np.ndarray, reference: list[float],
                     tie_break: str, oracle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Promotion-type ASHA (Li et al. 2020; the library's ``moasha.promotable``): a trial *pauses* at each rung,
    and a free worker first resumes the best paused trial in the top n // reduction_factor of the highest rung
    that has one, and starts a new configuration only when no rung has one. Decisions wait for evidence (nothing
    leaves a rung before it holds reduction_factor records), and a paused trial that a newer record pushed out of
    the top stays behind, while one that ranks into it later is still promoted."""
    rungs: dict[int, list[tuple[int, np.ndarray]]] = {r: [] for r in RUNGS}
    paused: set[int] = set()
    reached = dict.fromkeys(range(len(lengths)), 0)
    points: list[np.ndarray | None] = []
    ends: list[int] = []
    spent, fresh = 0, iter(order)
    while True:
        chosen = moasha.promotable(rungs, paused, DIRECTIONS, RF, tie_break)
        if chosen is not None:
            nxt = chosen[0]
            paused.discard(nxt)
        else:
            nxt = next(fresh, None)
            if nxt is None:
                break
        goal = next((r for r in RUNGS if r > reached[nxt]), EPOCHS)
        stop = min(goal, int(lengths[nxt]))
        if spent + stop - reached[nxt] > BUDGET:
            break
        spent, reached[nxt] = spent + stop - reached[nxt], stop
        point = curves[nxt, -1] if stop == EPOCHS else None
        if stop == goal < EPOCHS:
            rungs[goal].append((int(nxt), curves[nxt, -1] if oracle else curves[nxt, goal - 1]))
            paused.add(int(nxt))
        points.append(point)
        ends.append(spent)
    return np.array(ends), _history(points, reference)


def _epochs_to(ends: np.ndarray, hv: np.ndarray, target: float) -> float:
    hit = np.flatnonzero(hv >= target)
    return float(ends[hit[0]]) if len(hit) else math.inf


def replay(path: Path, n_orders: int, seed: int) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    base, rows = rows[0], rows[1:]
    lengths = np.array([len(r["curve"]) for r in rows])
    curves = np.full((len(rows), EPOCHS, 2), np.nan)
    for k, r in enumerate(rows):
        curves[k, : lengths[k]] = r["curve"]
    baseline = dict(zip(OBJECTIVES, base["curve"][-1]))
    ref = pareto.default_reference(OBJECTIVES, baseline, pd.DataFrame(), DIRECTIONS)  # search_efficiency's rule
    reference = [ref[name] for name in OBJECTIVES]
    rng = np.random.default_rng(seed)
    methods = {"full": (None, False)}
    for tb in moasha.TIE_BREAKS:
        methods[f"moasha_{tb}"] = (tb, False)
    for tb in moasha.TIE_BREAKS:
        methods[f"oracle_{tb}"] = (tb, True)
    promotion = {"promotion_hypervolume": False, "promotion_oracle_hypervolume": True}
    spent: dict[str, list[float]] = {m: [] for m in [*methods, *promotion]}
    for _ in range(n_orders):
        order = rng.permutation(len(rows))
        ends, hv = replay_one(curves, lengths, order, reference, None)
        target = 0.95 * hv[-1]
        for name, (tb, oracle) in methods.items():
            e, h = (ends, hv) if tb is None else replay_one(curves, lengths, order, reference, tb, oracle)
            spent[name].append(_epochs_to(e, h, target))
        for name, oracle in promotion.items():
            spent[name].append(_epochs_to(*replay_promotion(curves, lengths, order, reference, "hypervolume",
                                                            oracle), target))
    print(f"# {len(rows)} configurations ({(lengths < EPOCHS).sum()} diverged), {n_orders} orders, "
          f"budget {BUDGET} epochs, reference {reference}")
    full = np.mean(spent["full"])
    for name, values in spent.items():
        missed = np.isinf(values).mean()
        mean = np.mean(np.where(np.isinf(values), 2 * BUDGET, values))  # a miss counts as twice the budget
        print(f"method={name} epochs_to_95pct={mean:.0f} ratio_vs_full={mean / full:.2f} missed={missed:.2f}")
    schedules = pd.Series([r["params"].get("schedule", "constant") for r in rows])
    finished = lengths == EPOCHS
    for j, objective in enumerate(OBJECTIVES):
        final = pd.Series(curves[:, -1, j])
        for group in ["all", *sorted(schedules.unique())]:
            keep = finished & (True if group == "all" else (schedules == group).to_numpy())
            rho = [pd.Series(curves[keep, r - 1, j]).corr(final[keep].reset_index(drop=True), method="spearman")
                   for r in RUNGS]
            print(f"spearman objective={objective} schedule={group} n={keep.sum()} "
                  + " ".join(f"epoch{r}={c:.2f}" for r, c in zip(RUNGS, rho)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=Path, help="write learning curves to this JSON-lines file")
    parser.add_argument("--replay", type=Path, help="replay MO-ASHA on this file")
    parser.add_argument("--configs", type=int, default=300)
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--space", type=Path, default=HERE / "search_efficiency_space.yaml")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.record or args.replay):
        parser.error("give --record FILE, --replay FILE or both")
    if args.record:
        record(args.record, args.configs, args.space, args.seed)
    if args.replay:
        replay(args.replay, args.orders, args.seed)


if __name__ == "__main__":
    main()
