"""Trials per hour of population training (K configs as one network) against one trial at a time.

    python benchmarks/population.py --quick                  # MLP, K = 1, 2, 4, 8, 2 epochs, 1 repeat
    python benchmarks/population.py                          # MLP and convnet, K = 1..16, quickstart's 12 epochs
    python benchmarks/population.py --device cuda --ks 1,8,32,64
    python benchmarks/population.py --hypervolume 300        # + quickstart study, 300 s with and without population
    python benchmarks/population.py --quick --study-ks ""   # trainer-only lines, no whole-study line
    python benchmarks/population.py --ks "" --pbt 32 --epochs 4   # a PBT population of 32 against K = 1

Workload: digits with the quickstart network (MLP 64-128-10, or ``convnet`` with channels 16, 32), T=4, batch 64,
and K configs drawn (seeded) from the paper's space minus ``timesteps``: lambda_max, schedule, temperature,
warmup, lr, threshold and leak, so every member differs. The same K configs are trained one at a time with
``train`` and together with ``train_population``; the dataset is loaded once for both, as a search worker does.
Timing runs in one subprocess per K, after a one-epoch warm-up: one-at-a-time and population runs alternate
``--repeats`` times and the fastest of each counts (alternating and the minimum keep background load on a shared
machine from favouring either side). Memory on CPU is measured in separate subprocesses, one epoch each way;
on CUDA in the timing subprocess, from the allocator's peak reset before each timed run.

Reported per ``K=`` line (the trainer alone):
  trials_per_hour   K / wall time of the population run * 3600
  single_tph        the same K configs trained one after another with ``train``
  speedup           trials_per_hour / single_tph
  peak_mem_mb       population: CPU: growth of the process's max RSS over one epoch, after loading the data and
                    importing everything (a separate process); CUDA: torch.cuda.max_memory_allocated over the
                    timed runs (reset before each)
  single_peak_mem_mb  the same for the configs trained one at a time

With ``--pbt K`` a ``pbt`` line per model times population-based training (``train_population`` with ``pbt``: an
exploit/explore step after every epoch, the worst quarter copying the best, lambda_max and lr perturbed) of K
members against one member trained the same way, in one subprocess, both after a warm-up: ``member_epochs_per_s``
is K * epochs / wall time, ``k1_member_epochs_per_s`` the same for K = 1, ``speedup`` their ratio.

Beside it, for the K values of ``--study-ks`` (default: the largest), a ``study`` line: the whole search as a user
runs it, ``sparsity-search launch`` in a subprocess on the quickstart study with this workload (same network,
epochs and device; the space of ``search_spaces/sparsity.yaml``, TPE), 1 + R * K trials (``--study-rounds R``),
once with ``--population K`` and once without. Its wall time holds everything the trainer-only figure leaves out:
the sampler, the journal storage's writes and heartbeat files, the baseline (trained alone first in both runs),
the process's start and data loading. ``trials_per_hour`` = trials / wall time * 3600; ``complete`` counts the
COMPLETE trials of each run (diverged trials are failed and still count as trials run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]


def configs(model: str, k: int, epochs: int, device: str, threads: int) -> list:
    from sparsity_search import TrainConfig

    base = TrainConfig(dataset="digits", model=model, hidden=[128], channels=[16, 32], timesteps=4, batch_size=64,
                       epochs=epochs, device=device, threads=threads)
    rng = random.Random(0)
    out = []
    for _ in range(k):
        schedule = rng.choice(["constant", "linear", "annealing"])
        out.append(base.replace(lambda_max=10 ** rng.uniform(-2, 1.3), schedule=schedule,
                                temperature=10 ** rng.uniform(-1.3, 0.3),
                                warmup_epochs=0.0 if schedule == "constant" else rng.uniform(0, min(3, epochs - 1)),
                                lr=10 ** rng.uniform(-3.3, -2), threshold=rng.uniform(0.5, 2.0),
                                beta=rng.uniform(0.5, 0.99)))
    return out


def _peak_mb(device: str, rss0: int) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024


def _run(mode: str, cfgs: list, data: object) -> list:
    from sparsity_search import train
    from sparsity_search.population import train_population

    if mode == "population":
        return train_population(cfgs, data=data)
    results = []
    for cfg in cfgs:
        try:
            results.append(train(cfg, data=data))
        except Exception as exc:  # noqa: BLE001 - a diverged config still counts as a finished trial
            results.append(exc)
    return results


def child(args: argparse.Namespace) -> None:
    """One measurement in a fresh process; prints a JSON line.

    ``time``: both ways, alternating, ``repeats`` times each (so both see the same background load); the fastest
    run of each counts. ``mem-single`` / ``mem-population``: the memory one epoch of that way adds.
    """
    import torch

    from sparsity_search import train
    from sparsity_search.data import load_data

    cfgs = configs(args.model, args.k, args.epochs, args.device, args.threads)
    data = load_data(cfgs[0], args.device)
    tiny = cfgs[0].replace(hidden=[4], channels=[2, 2], epochs=1, warmup_epochs=0.0, train_subset=64)
    train(tiny, data=load_data(tiny, args.device))  # lazy imports (torch.optim pulls in dynamo: ~150 MB of RSS)
    warm = [c.replace(epochs=1, warmup_epochs=0.0) for c in cfgs]
    if args.mode.startswith("mem-"):
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if args.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        _run(args.mode[4:], warm, data)
        print(json.dumps({"peak_mem_mb": _peak_mb(args.device, rss0)}))
        return
    _run("population", warm, data)
    _run("single", warm[:1], data)
    walls: dict[str, list[float]] = {"single": [], "population": []}
    failed, peak = {}, {}
    for _ in range(args.repeats):
        for mode in walls:
            if args.device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            results = _run(mode, cfgs, data)
            if args.device == "cuda":
                torch.cuda.synchronize()
                peak[mode] = max(peak.get(mode, 0.0), _peak_mb(args.device, 0))
            walls[mode].append(time.perf_counter() - t0)
            failed[mode] = sum(isinstance(r, Exception) for r in results)
    print(json.dumps({"single_s": min(walls["single"]), "population_s": min(walls["population"]), "failed": failed,
                      "peak_mem_mb": peak}))


def pbt_child(args: argparse.Namespace) -> None:
    """K members and one, each trained as a PBT population after a one-epoch warm-up; prints a JSON line."""
    import torch

    from sparsity_search.data import load_data
    from sparsity_search.pbt import Range, Rules
    from sparsity_search.population import train_population

    cfgs = configs(args.model, args.k, args.epochs, args.device, args.threads)
    data = load_data(cfgs[0], args.device)
    rules = Rules(interval=1, fraction=0.25, perturb={"lambda_max": (0.8, 1.25), "lr": (0.8, 1.25)},
                  ranges={"lambda_max": Range(0.01, 20.0, log=True), "lr": Range(5e-4, 1e-2, log=True)})
    walls = {}
    for k in (args.k, 1):
        train_population([c.replace(epochs=1, warmup_epochs=0.0) for c in cfgs[:k]], data=data, pbt=rules)
        if args.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_population(cfgs[:k], data=data, pbt=rules)
        if args.device == "cuda":
            torch.cuda.synchronize()
        walls[k] = time.perf_counter() - t0
    print(json.dumps({"k_s": walls[args.k], "one_s": walls[1]}))


def pbt_line(model: str, k: int, args: argparse.Namespace) -> None:
    t = measure(model, k, "pbt", args)
    rate, one = k * args.epochs / t["k_s"], args.epochs / t["one_s"]
    print(f"pbt model={model} K={k} epochs={args.epochs} member_epochs_per_s={rate:.2f} "
          f"k1_member_epochs_per_s={one:.2f} speedup={rate / one:.2f} wall_s={t['k_s']:.1f}", flush=True)


def measure(model: str, k: int, mode: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", model, "--k", str(k), "--mode", mode,
           "--epochs", str(args.epochs), "--device", args.device, "--threads", str(args.threads),
           "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def study_file(model: str, n_trials: int, args: argparse.Namespace, folder: Path) -> Path:
    """The quickstart study with this benchmark's workload (model, epochs) and ``n_trials``, written to ``folder``."""
    import yaml

    spec = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    spec["search_space"] = str(ROOT / "search_spaces" / "sparsity.yaml")
    spec.update(model=model, n_trials=n_trials)
    spec["train"].update(hidden=[128], channels=[16, 32], timesteps=4, batch_size=64, epochs=args.epochs)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def study_line(model: str, k: int, args: argparse.Namespace) -> None:
    """Trials per hour of a whole study through the CLI's ``launch``, with ``--population k`` and without.

    The real path: sampler, journal storage writes, heartbeat files, result rows, the baseline trained alone first,
    and the process's start (imports, data loading) too; both runs pay the same fixed costs.
    """
    from sparsity_search import open_study

    n_trials = 1 + args.study_rounds * k
    walls, complete = {}, {}
    for size in (k, 1):
        with tempfile.TemporaryDirectory(prefix="population_study_") as tmp:
            path = study_file(model, n_trials, args, Path(tmp))
            cmd = [sys.executable, "-m", "sparsity_search", "launch", str(path), "--results", tmp, "--quiet",
                   "--device", args.device, "--threads", str(args.threads), "--population", str(size)]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            walls[size] = time.perf_counter() - t0
            if proc.returncode != 0:
                print(f"# study model={model} population={size} failed: {proc.stderr.strip().splitlines()[-1:]}",
                      flush=True)
                return
            trials = open_study("quickstart", results=tmp).trials()
            complete[size] = int((trials["state"] == "COMPLETE").sum())
    tph, single_tph = n_trials / walls[k] * 3600, n_trials / walls[1] * 3600
    print(f"study model={model} K={k} trials={n_trials} trials_per_hour={tph:.0f} speedup={tph / single_tph:.2f} "
          f"single_tph={single_tph:.0f} wall_s={walls[k]:.1f} single_wall_s={walls[1]:.1f} "
          f"complete={complete[k]}/{complete[1]}", flush=True)


def hypervolume(seconds: float, k: int, args: argparse.Namespace) -> None:
    """The quickstart study for ``seconds`` of wall clock, one trial at a time and with population size ``k``."""
    from sparsity_search.api import Study
    from sparsity_search.search import RunSettings, get_backend, load_study_file
    from sparsity_search.search.optuna.storage import default_storage_url

    for size in (1, k):
        with tempfile.TemporaryDirectory() as tmp:
            spec = load_study_file(ROOT / "studies" / "quickstart.yaml")
            spec.n_trials = None
            results = Path(tmp) / spec.name
            settings = RunSettings(results_dir=results, storage=default_storage_url(results), timeout=seconds,
                                   device=args.device, threads=args.threads, population=size, show_progress=False)
            t0 = time.perf_counter()
            get_backend("optuna").run(spec, settings)
            wall = time.perf_counter() - t0
            study = Study(spec, settings)
            done = int((study.trials()["state"] == "COMPLETE").sum())
            history = study.hypervolume_history()
            print(f"hypervolume population={size} budget_s={seconds:g} wall_s={wall:.0f} complete_trials={done} "
                  f"hypervolume={study.hypervolume():.4f} "
                  f"hv_at_{min(done, 20)}_trials={history[min(done, 20) - 1] if done else float('nan'):.4f}",
                  flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="MLP only, K up to 8, 2 epochs")
    p.add_argument("--models", default="mlp,convnet")
    p.add_argument("--ks", default="1,2,4,8,16")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the fastest counts")
    p.add_argument("--hypervolume", type=float, default=0.0, metavar="S",
                   help="also run the quickstart study for S seconds with and without population (K = max --ks)")
    p.add_argument("--study-ks", default="max", metavar="K,..",
                   help="K values that also get a whole-study line via `launch` ('max': the largest K; '': none)")
    p.add_argument("--study-rounds", type=int, default=1, metavar="R",
                   help="trials of each study line: the baseline + R * K")
    p.add_argument("--pbt", type=int, default=0, metavar="K",
                   help="also time a K-member PBT population against one member (a pbt line per model)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", default="mlp", help=argparse.SUPPRESS)
    p.add_argument("--k", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--mode", default="time", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        pbt_child(args) if args.mode == "pbt" else child(args)
        return
    if args.quick:
        args.models, args.ks, args.epochs, args.repeats = "mlp", "1,2,4,8", 2, 1
    ks = [int(k) for k in args.ks.split(",") if k]
    study_ks = ({max(ks)} if ks else set()) if args.study_ks == "max" else {int(k) for k in args.study_ks.split(",")
                                                                            if k}
    for model in filter(None, args.models.split(",")):  # --models "" runs only --hypervolume
        print(f"workload: digits {model} ({'hidden 128' if model == 'mlp' else 'channels 16,32'}), T=4, batch 64, "
              f"{args.epochs} epochs, device {args.device}, threads {args.threads or 'default'}", flush=True)
        for k in ks:
            t = measure(model, k, "time", args)
            # CUDA's allocator peak resets in-process (the timing child reads it); CPU RSS needs a fresh process
            mem = t["peak_mem_mb"] or {m: measure(model, k, f"mem-{m}", args)["peak_mem_mb"]
                                       for m in ("single", "population")}
            tph, single_tph = k / t["population_s"] * 3600, k / t["single_s"] * 3600
            print(f"K={k} trials_per_hour={tph:.0f} speedup={tph / single_tph:.2f} peak_mem_mb={mem['population']:.1f} "
                  f"single_tph={single_tph:.0f} single_peak_mem_mb={mem['single']:.1f} "
                  f"failed={t['failed']['population']}/{t['failed']['single']}", flush=True)
            if k in study_ks:
                study_line(model, k, args)
        if args.pbt:
            pbt_line(model, args.pbt, args)
    if args.hypervolume > 0:
        hypervolume(args.hypervolume, max(ks), args)


if __name__ == "__main__":
    main()
