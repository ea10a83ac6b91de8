"""Study subcommands: launch, resume, worker, pareto, query, plot, status. Each parses, calls the API, formats."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, SparsitySearchError
from .output import FORMATS

INFEASIBLE_HELP = "trials that break the study's constraints compete too (default: feasible trials only)"


def _locate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", metavar="STUDY", help="study file (studies/*.yaml), results folder, or study name")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (default: journal file in the results)")
    p.add_argument("--results", metavar="DIR", help="results root (default: results/, or the study file's)")


def _run_args(p: argparse.ArgumentParser, *, launch: bool) -> None:
    p.add_argument("--n-trials", type=int, metavar="N", help="finished trials to reach (overrides n_trials)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S seconds")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="torch threads per worker (0: split cores)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument("--population", type=int, metavar="K",
                   help="Optuna: train up to K compatible trials at once as one network (overrides population.size)")
    if launch:
        p.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (CPU)")
        p.add_argument("--gpus", default="", metavar="auto|0,1,..", help="GPUs to spread trials over")
        p.add_argument("--trials-per-gpu", type=int, default=1, metavar="K", help="concurrent trials per GPU")
        p.add_argument("--backend", choices=("optuna", "ray"), help="override the study file's backend")
        p.add_argument("--ray-address", metavar="ADDR", help="join an existing Ray cluster (ray start --head)")
        p.add_argument("--cpus-per-trial", type=float, metavar="N", help="Ray: CPUs reserved per trial")
        p.add_argument("--max-concurrent", type=int, metavar="N", help="Ray: trials running at once")


def add_study_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launch", help="launch (or continue) a multi-objective study from a study file")
    p.add_argument("study", metavar="STUDY.yaml")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL, e.g. postgresql://host/db")
    p.add_argument("--results", metavar="DIR", help="results root (default: results/)")
    _run_args(p, launch=True)
    p.set_defaults(func=_launch, resume=False)

    p = sub.add_parser("resume", help="continue an interrupted study until its budget is met")
    _locate_args(p)
    _run_args(p, launch=True)
    p.set_defaults(func=_launch, resume=True)

    p = sub.add_parser("worker", help="join a running study (e.g. from another machine) as one worker")
    _locate_args(p)
    _run_args(p, launch=False)
    p.set_defaults(func=_worker)

    p = sub.add_parser("pareto", help="export the Pareto front (or all trials) as a table")
    _locate_args(p)
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--all", action="store_true",
                   help="every complete and pruned trial (feasible or not: see is_feasible), not only the front")
    p.add_argument("--include-pruned", action="store_true",
                   help="pruned trials (at the epoch they reached) compete for the front too")
    p.add_argument("--include-infeasible", action="store_true", help=INFEASIBLE_HELP)
    p.set_defaults(func=_pareto)

    p = sub.add_parser("query", help="pick Pareto-optimal configs by a rule")
    _locate_args(p)
    rule = p.add_mutually_exclusive_group(required=True)
    rule.add_argument("--max-accuracy-drop", type=float, metavar="PTS",
                      help="fewest spikes within PTS accuracy points of the baseline")
    rule.add_argument("--iso-accuracy", action="store_true", help="fewest spikes at no loss against the baseline")
    rule.add_argument("--min-accuracy", type=float, metavar="X", help="fewest spikes with accuracy >= X")
    rule.add_argument("--knee", action="store_true", help="the knee point of the front")
    p.add_argument("--export-config", metavar="OUT.yaml", help="write the chosen trial's training config")
    p.add_argument("--include-infeasible", action="store_true", help=INFEASIBLE_HELP)
    p.set_defaults(func=_query)

    p = sub.add_parser("plot", help="plot the Pareto front or the hypervolume history")
    _locate_args(p)
    p.add_argument("-o", "--output", metavar="FILE.png", required=True)
    p.add_argument("--kind", choices=("pareto", "history"), default="pareto")
    p.set_defaults(func=_plot)

    p = sub.add_parser("status", help="trial counts, baseline, hypervolume and the best trade-offs")
    _locate_args(p)
    p.add_argument("--include-infeasible", action="store_true", help=INFEASIBLE_HELP)
    p.set_defaults(func=_status)


def _gpus(text: str, device: str) -> list[int]:
    if not text or device == "cpu":
        return []
    if text == "auto":
        import torch

        return list(range(torch.cuda.device_count()))
    try:
        return [int(g) for g in text.split(",")]
    except ValueError:
        raise ConfigError(f"expected auto or a comma-separated list of GPU indices, got {text!r}",
                          field="--gpus") from None


def _settings_from_args(args: argparse.Namespace) -> tuple[Any, Any]:
    from .api import locate

    spec, settings = locate(args.study, args.storage, args.results)
    if getattr(args, "backend", None):
        spec.backend = args.backend
    settings.n_trials, settings.timeout = args.n_trials, args.timeout
    settings.device, settings.threads, settings.show_progress = args.device, args.threads, not args.quiet
    for name in ("workers", "trials_per_gpu", "ray_address", "cpus_per_trial", "max_concurrent", "population"):
        if getattr(args, name, None) is not None:
            setattr(settings, name, getattr(args, name))
    if (settings.population or 1) > 1 and spec.backend == "ray":
        raise ConfigError("population training runs on the optuna backend only", field="--population")
    settings.gpus = _gpus(getattr(args, "gpus", ""), args.device)
    for name in ("n_trials", "workers", "trials_per_gpu", "threads", "max_concurrent", "population"):
        value = getattr(settings, name)
        if value is not None and value < (0 if name == "threads" else 1):
            raise ConfigError(f"must be >= 1, got {value}", field="--" + name.replace("_", "-"))
    return spec, settings


def _launch(args: argparse.Namespace) -> int:
    from .api import Study, write_snapshot
    from .output import print_trials
    from .search import get_backend

    spec, settings = _settings_from_args(args)
    write_snapshot(spec, settings.results_dir)
    get_backend(spec.backend).run(spec, settings)
    study = Study(spec, settings)
    table = study.pareto()
    print(f"study {spec.name}: {len(table)} Pareto-optimal trials (results in {settings.results_dir})")
    print_trials(table)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from .search._optuna import run_worker

    spec, settings = _settings_from_args(args)
    if spec.backend != "optuna":
        raise ConfigError("workers join Optuna studies; a Ray study scales with `ray start --address`",
                          field="backend")
    run_worker(spec, settings, salt=os.getpid())  # concurrent workers must not propose the same points
    return 0


def _open(args: argparse.Namespace) -> Any:
    from .api import open_study

    return open_study(args.study, args.storage, args.results)


def _pareto(args: argparse.Namespace) -> int:
    from .output import render, trial_columns

    if args.format == "parquet" and not args.output:
        raise ConfigError("parquet needs -o FILE", field="--format")
    study = _open(args)
    table = study.pareto(all_trials=args.all, include_pruned=args.include_pruned,
                         include_infeasible=args.include_infeasible)
    text = render(trial_columns(table), args.format, args.output)
    if text is not None and not args.output:
        print(text)
    return 0


def _query(args: argparse.Namespace) -> int:
    from .config import save_config
    from .output import print_trials

    study = _open(args)
    if args.max_accuracy_drop is not None:
        rule, value = "max_accuracy_drop", args.max_accuracy_drop
    elif args.min_accuracy is not None:
        rule, value = "min_accuracy", args.min_accuracy
    else:
        rule, value = ("iso_accuracy" if args.iso_accuracy else "knee"), None
    try:
        result = study.query(rule, value, include_infeasible=args.include_infeasible)
    except ValueError as exc:
        raise SparsitySearchError(str(exc)) from None
    if result.empty:
        print(f"no Pareto-optimal trial satisfies --{rule.replace('_', '-')}", file=sys.stderr)
        return 1
    print_trials(result)
    if args.export_config:
        cfg = study.trial_config(int(result.iloc[0]["trial"]))
        save_config(cfg, args.export_config)
        print(f"wrote the config of trial {int(result.iloc[0]['trial'])} to {args.export_config}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .plots import plot_history, plot_pareto

    study = _open(args)
    (plot_pareto if args.kind == "pareto" else plot_history)(study, Path(args.output))
    print(f"wrote {args.output}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from .output import print_trials
    from .pareto import best_tradeoffs

    study = _open(args)
    table = study.trials()
    counts = table["state"].value_counts().to_dict()
    print(f"study {study.spec.name} ({study.spec.backend}) at {study.settings.storage}")
    print("trials: " + ", ".join(f"{s.lower()}={counts.get(s, 0)}" for s in
                                 ("COMPLETE", "PRUNED", "RUNNING", "WAITING", "FAIL")))
    floor = study.spec.constraints.min_accuracy
    if floor is not None:
        done = table[table["state"] == "COMPLETE"]
        shown = "; infeasible trials included below" if args.include_infeasible else ""
        print(f"constraint: {study.spec.accuracy_metric} >= {floor:g} ({int(done['is_feasible'].sum())} of "
              f"{len(done)} complete trials meet it{shown})")
    base = study.baseline()
    if base is None:
        print("baseline: not finished yet")
    else:
        print(f"baseline: trial {base['trial']} val_accuracy={base['val_accuracy']:.4f} "
              f"spikes_per_sample={base['spikes_per_sample']:.1f}")
    if (table["state"] == "COMPLETE").any():
        print(f"hypervolume: {study.hypervolume(include_infeasible=args.include_infeasible):.6g}")
        front = study.pareto(include_infeasible=args.include_infeasible)
        hint = " (no complete trial meets the constraints; --include-infeasible shows the others)" \
            if front.empty and floor is not None and not args.include_infeasible else ""
        print("best trade-offs:" + hint)
        print_trials(best_tradeoffs(front))
    return 0
