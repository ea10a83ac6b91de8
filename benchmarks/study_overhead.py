"""The search's own cost per trial: a no-op objective, so every second measured is storage and sampler work.

    python benchmarks/study_overhead.py [--trials 50] [--postgres postgresql://postgres@127.0.0.1:5432/test]
                                        [--no-ray]

Prints one line per backend and storage: `backend=optuna storage=journal trials=50 ms_per_trial=...`. The Optuna
objective records what the real one records (config, one epoch of metrics, the result row), so the storage traffic
is realistic. The Ray line runs the Ray backend itself (Tune, the study's searcher, the function trainable, trial
folders on disk) on a local Ray on loopback, with a trainer that returns its row at once: the trainable reports
once and returns. Starting Ray is paid once per run, so it is printed apart (`startup_s`), not spread over trials.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import optuna

from sparsity_search import TrainConfig
from sparsity_search.search.space import parse_space
from sparsity_search.search.optuna.storage import default_storage_url, open_storage

SPACE_DATA = {"params": {
    "lambda_max": {"type": "float", "low": 0.01, "high": 10, "log": True},
    "schedule": {"type": "categorical", "choices": ["constant", "linear", "annealing"]},
    "temperature": {"type": "float", "low": 0.05, "high": 2, "log": True, "when": {"schedule": "annealing"}},
}}
SPACE = parse_space(SPACE_DATA, "benchmark")
METRICS = {"val_accuracy": 0.9, "spikes_per_sample": 100.0, "energy_uj": 0.1, "firing_rate": 0.1}


def _noop(trial: optuna.Trial) -> tuple[float, float]:
    params = SPACE.suggest(trial)
    trial.set_user_attr("config", params)
    trial.set_user_attr("epoch_001", METRICS)
    trial.set_user_attr("result", METRICS)
    return 0.9, 100.0 * params["lambda_max"]


def optuna_overhead(url: str, trials: int) -> float:
    """Seconds per trial of a TPE multi-objective study on ``url`` with heartbeats, as a worker runs it."""
    name = f"overhead_{uuid.uuid4().hex[:8]}"
    storage = open_storage(url, heartbeat=(5, 30))
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"],
                                sampler=optuna.samplers.TPESampler(seed=0))
    start = time.perf_counter()
    study.optimize(_noop, n_trials=trials)
    elapsed = time.perf_counter() - start
    if "://" in url:
        optuna.delete_study(study_name=name, storage=url)
    return elapsed / trials


def _noop_train(cfg: TrainConfig, report: Callable[[int, dict[str, Any]], None]) -> dict[str, Any]:
    """The trainer's contract with no training: the final row at once, no epoch reports."""
    return {**METRICS, "spikes_per_sample": 100.0 * cfg.lambda_max, "test_accuracy": 0.9, "epochs": 1,
            "config": cfg.to_dict()}


def ray_overhead(trials: int, folder: Path) -> tuple[float, float]:
    """(seconds to start a local Ray, seconds per trial of ``RayBackend.run``) for a TPE study of ``trials``."""
    import ray

    from sparsity_search.search._base import RunSettings
    from sparsity_search.search.ray.backend import RayBackend, connect
    from sparsity_search.search.study_file import parse_study

    spec = parse_study({"name": "overhead", "backend": "ray", "search_space": SPACE_DATA, "n_trials": trials,
                        "sampler": {"name": "tpe"}, "seed": 0}, "benchmark", folder)
    settings = RunSettings(results_dir=folder / spec.name, storage="", device="cpu", show_progress=False)
    start = time.perf_counter()
    connect(settings)  # run() below finds Ray started and leaves it up: start-up is timed on its own
    started = time.perf_counter()
    try:
        backend = RayBackend(train_fn=_noop_train)
        backend.run(spec, settings)
        elapsed = time.perf_counter() - started
        done = sum(r.state == "COMPLETE" for r in backend.records(spec, settings))
    finally:
        ray.shutdown()
    if done != trials:
        raise RuntimeError(f"{done} of {trials} trials completed")
    return started - start, elapsed / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL URL ('' to skip)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"journal": default_storage_url(Path(tmp)), "sqlite": f"sqlite:///{tmp}/study.db"}
        if args.postgres:
            urls["postgresql"] = args.postgres
        for label, url in urls.items():
            try:
                per_trial = optuna_overhead(url, args.trials)
            except Exception as exc:  # a missing server should not hide the other numbers
                print(f"backend=optuna storage={label} skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")
                continue
            print(f"backend=optuna storage={label} trials={args.trials} ms_per_trial={1000 * per_trial:.1f}")
        if not args.no_ray:
            try:
                startup, per_trial = ray_overhead(args.trials, Path(tmp))
            except Exception as exc:
                print(f"backend=ray storage=tune_folder skipped ({type(exc).__name__}: {str(exc).splitlines()[0]})")
            else:
                print(f"backend=ray storage=tune_folder trials={args.trials} ms_per_trial={1000 * per_trial:.1f} "
                      f"startup_s={startup:.1f}")


if __name__ == "__main__":
    main()
