"""The replay gap of population-based training: retrain the front's trials from their exported configs.

    python benchmarks/pbt_replay.py --quick                 # 3 studies, 2 populations of 16, MLP [64]: ~15 min
    python benchmarks/pbt_replay.py --quick --control       # + the same studies without pbt, replayed alike
    python benchmarks/pbt_replay.py --quick --seeds 1 --rounds 1 --train-seeds 0   # a smoke run

Each study is ``search_efficiency.py``'s ``pbt_population`` (same space, fixed training, population and ``pbt``),
run through the library for ``--rounds`` populations, study seed = sampler seed 0, 1, 2 (``--seeds``). Every trial on
its final front is exported as ``query --export-config`` would write it (``Study.trial_config``: the learned
``piecewise`` lambda(t) and lr(t) along its weights' lineage) and retrained from scratch with ``train``: at its own
training seed (0: the same data split, initialisation and batch order, so only the schedule is replayed) and at
each other ``--train-seeds`` value (a new split and initialisation: does the learned schedule carry over?).

With ``--control`` the same studies run without ``pbt`` (plain populations, each member's sampled schedule) and
their fronts are replayed the same way: the gap at seed 0 there is the population engine's own float rounding
(members trained as one batched network against ``train``'s single network), the floor any replay sits on.

Printed: one ``trial`` line per (trial, training seed) with the trial's and the replay's validation accuracy and
spikes per sample; then per (kind, training seed) a ``gap`` line: mean and max absolute accuracy difference in
points, mean and max absolute spike difference in percent of the trial's (over the trials that spike: ``silent``
counts the silent nets at chance accuracy that every front holds), and the replays' mean accuracy and spikes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from search_efficiency import HERE, MODES, PBT_POPULATION, study_file  # noqa: E402

from sparsity_search import train  # noqa: E402
from sparsity_search.api import locate, open_study, write_snapshot  # noqa: E402


def run_study(kind: str, seed: int, mode: dict[str, Any], folder: Path, rounds: int) -> Any:
    """A ``pbt_population`` study (``kind`` pbt) or the same without ``pbt`` (control), run to its budget."""
    from sparsity_search.search import get_backend

    data = study_file("pbt_population", seed, mode, HERE / "search_efficiency_space.yaml", folder, "hypervolume",
                      rounds * PBT_POPULATION)
    data["name"] = f"replay_{kind}_{seed}"
    if kind == "control":
        data.pop("pbt")
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    spec, settings = locate(path)
    settings.threads, settings.show_progress, settings.workers = 1, False, 1
    write_snapshot(spec, settings.results_dir)
    get_backend("optuna").run(spec, settings)
    return open_study(path)


def replay(study: Any, kind: str, seed: int, train_seeds: list[int]) -> list[dict[str, Any]]:
    """Each front trial retrained from its exported config at each training seed: one row per (trial, seed)."""
    front = study.pareto()
    configs = study.trial_configs([int(n) for n in front["trial"]])
    rows = []
    for _, t in front.iterrows():
        cfg = configs[int(t["trial"])].replace(threads=1, device="cpu")
        for train_seed in train_seeds:
            again = train(cfg.replace(seed=train_seed))
            rows.append({"kind": kind, "study_seed": seed, "trial": int(t["trial"]), "train_seed": train_seed,
                         "acc": float(t["val_accuracy"]), "spikes": float(t["spikes_per_sample"]),
                         "replay_acc": again["val_accuracy"], "replay_spikes": again["spikes_per_sample"]})
            r = rows[-1]
            print(f"trial kind={kind} study_seed={seed} trial={r['trial']} train_seed={train_seed} "
                  f"val_accuracy={r['acc']:.4f} replay_val_accuracy={r['replay_acc']:.4f} "
                  f"spikes={r['spikes']:.2f} replay_spikes={r['replay_spikes']:.2f}", flush=True)
    return rows


def print_gaps(rows: list[dict[str, Any]]) -> None:
    for kind in dict.fromkeys(r["kind"] for r in rows):
        for own in (True, False):
            sel = [r for r in rows if r["kind"] == kind and (r["train_seed"] == 0) == own]
            if not sel:
                continue
            d_acc = np.array([100 * abs(r["replay_acc"] - r["acc"]) for r in sel])
            d_spk = np.array([100 * abs(r["replay_spikes"] - r["spikes"]) / r["spikes"] for r in sel if r["spikes"]])
            silent = sum(not r["spikes"] for r in sel)
            print(f"gap kind={kind} train_seed={'own' if own else 'other'} replays={len(sel)} silent={silent} "
                  f"mean_abs_acc_pts={d_acc.mean():.2f} max_abs_acc_pts={d_acc.max():.2f} "
                  f"mean_abs_spikes_pct={d_spk.mean():.2f} max_abs_spikes_pct={d_spk.max():.2f} "
                  f"trial_mean_acc={np.mean([r['acc'] for r in sel]):.4f} "
                  f"replay_mean_acc={np.mean([r['replay_acc'] for r in sel]):.4f} "
                  f"trial_mean_spikes={np.mean([r['spikes'] for r in sel]):.2f} "
                  f"replay_mean_spikes={np.mean([r['replay_spikes'] for r in sel]):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="search_efficiency.py's quick network")
    parser.add_argument("--seeds", type=int, default=3, help="studies (sampler seeds 0..N-1)")
    parser.add_argument("--rounds", type=int, default=2, help="populations per study")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds of the replays (0: the trials' own)")
    parser.add_argument("--control", action="store_true", help="also replay the same studies without pbt")
    args = parser.parse_args()
    mode = MODES["quick" if args.quick else "full"]
    print(f"# mode={'quick' if args.quick else 'full'} train={mode['train']} population={PBT_POPULATION} "
          f"rounds={args.rounds} seeds={args.seeds} train_seeds={args.train_seeds} control={args.control}", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for kind in ("pbt", "control") if args.control else ("pbt",):
                folder = Path(tmp) / f"{kind}_{seed}"
                folder.mkdir()
                rows += replay(run_study(kind, seed, mode, folder, args.rounds), kind, seed, args.train_seeds)
    print_gaps(rows)


if __name__ == "__main__":
    main()
