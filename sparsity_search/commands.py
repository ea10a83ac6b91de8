"""Study subcommands (launch, resume, worker, pareto, query, plot, report, status): parse, call the API, format."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, SparsitySearchError

PARETO_COLUMNS = ("trial", "val_accuracy", "test_accuracy", "spikes_per_sample", "energy_uj",
                  "spike_reduction_pct", "accuracy_delta", "pareto_rank", "is_pareto")
FORMATS = ("table", "csv", "markdown", "latex", "json", "parquet")


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
    p.add_argument("--all", action="store_true", help="every complete and pruned trial, not only the front")
    p.add_argument("--include-pruned", action="store_true",
                   help="pruned trials (at the epoch they reached) compete for the front too")
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
    p.set_defaults(func=_query)

    p = sub.add_parser("plot", help="plot the front, hypervolume history, or the front trials' curves or layers")
    _locate_args(p)
    p.add_argument("-o", "--output", metavar="FILE.png", required=True, help="png, svg or pdf, by extension")
    p.add_argument("--kind", choices=("pareto", "history", "curves", "layers"), default="pareto",
                   help="pareto: the front against the baseline; history: hypervolume per trial; curves: "
                        "per-epoch accuracy, spikes and lambda of the front trials; layers: their spikes per layer")
    p.add_argument("--full-range", action="store_true",
                   help="pareto: every trial, not only accuracy within a few points of the baseline")
    p.set_defaults(func=_plot)

    p = sub.add_parser("report", help="write the study as one self-contained HTML page (opens offline)")
    _locate_args(p)
    p.add_argument("-o", "--output", metavar="FILE.html", required=True)
    p.add_argument("--full-range", action="store_true",
                   help="open the front on every trial, not only accuracy within a few points of the baseline")
    p.set_defaults(func=_report)

    p = sub.add_parser("status", help="trial counts, baseline, hypervolume and the best trade-offs")
    _locate_args(p)
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
    from .search import get_backend

    spec, settings = _settings_from_args(args)
    write_snapshot(spec, settings.results_dir)
    get_backend(spec.backend).run(spec, settings)
    study = Study(spec, settings)
    table = study.pareto()
    print(f"study {spec.name}: {len(table)} Pareto-optimal trials (results in {settings.results_dir})")
    _print_table(table)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from .search._optuna import run_worker

    spec, settings = _settings_from_args(args)
    if spec.backend != "optuna":
        raise ConfigError("workers join Optuna studies; a Ray study scales with `ray start --address`",
                          field="backend")
    run_worker(spec, settings, salt=os.getpid())  # concurrent workers must not propose the same points
    return 0


def _columns(table: Any) -> list[str]:
    params = [c for c in table.columns if c.startswith("params_")]
    return [c for c in ("trial", *params, *PARETO_COLUMNS[1:]) if c in table.columns] + \
        [c for c in ("state",) if c in table.columns and table["state"].nunique() > 1]


def _print_table(table: Any) -> None:
    from .pareto import to_table

    print(to_table(table[_columns(table)], "table"))


def _open(args: argparse.Namespace) -> Any:
    from .api import open_study

    return open_study(args.study, args.storage, args.results)


def _pareto(args: argparse.Namespace) -> int:
    from .pareto import to_table

    if args.format == "parquet" and not args.output:
        raise ConfigError("parquet needs -o FILE", field="--format")
    study = _open(args)
    table = study.pareto(all_trials=args.all, include_pruned=args.include_pruned)
    table = table[_columns(table)]
    text = to_table(table, args.format, args.output)
    if text is not None and not args.output:
        print(text)
    return 0


def _query(args: argparse.Namespace) -> int:
    from .config import save_config

    study = _open(args)
    if args.max_accuracy_drop is not None:
        rule, value = "max_accuracy_drop", args.max_accuracy_drop
    elif args.min_accuracy is not None:
        rule, value = "min_accuracy", args.min_accuracy
    else:
        rule, value = ("iso_accuracy" if args.iso_accuracy else "knee"), None
    try:
        result = study.query(rule, value)
    except ValueError as exc:
        raise SparsitySearchError(str(exc)) from None
    if result.empty:
        print(f"no Pareto-optimal trial satisfies --{rule.replace('_', '-')}", file=sys.stderr)
        return 1
    _print_table(result)
    if args.export_config:
        cfg = study.trial_config(int(result.iloc[0]["trial"]))
        save_config(cfg, args.export_config)
        print(f"wrote the config of trial {int(result.iloc[0]['trial'])} to {args.export_config}")
    return 0


def _output_file(text: str, suffixes: tuple[str, ...]) -> Path:
    """``-o``'s path, checked before the study is read: its folder exists and its extension is one we write."""
    path = Path(text)
    if path.suffix.lower().lstrip(".") not in suffixes:
        raise ConfigError(f"{text}: expected a .{', .'.join(suffixes)} file", field="-o")
    if path.is_dir() or not path.parent.is_dir():
        raise ConfigError(f"{text}: {'is a folder' if path.is_dir() else 'no such folder'}", field="-o")
    return path


def _plot(args: argparse.Namespace) -> int:
    from .plots import save_plot
    from .report import gather

    path = _output_file(args.output, ("png", "svg", "pdf"))
    data = gather(_open(args))
    if data.front.empty:
        raise SparsitySearchError(f"study {data.study_name!r} has no complete trial to plot yet")
    try:
        save_plot(data, args.kind, path, args.full_range)
    except OSError as exc:
        raise ConfigError(f"{args.output}: {exc.strerror or exc}", field="-o") from None
    print(f"wrote {args.output}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import write_report

    path = _output_file(args.output, ("html", "htm"))
    study = _open(args)
    try:
        size = write_report(study, path, args.full_range)
    except OSError as exc:
        raise ConfigError(f"{args.output}: {exc.strerror or exc}", field="-o") from None
    print(f"wrote {args.output} ({size / 1e6:.1f} MB, opens offline)")
    return 0


def _status(args: argparse.Namespace) -> int:
    study = _open(args)
    table = study.trials()
    counts = table["state"].value_counts().to_dict()
    print(f"study {study.spec.name} ({study.spec.backend}) at {study.settings.storage}")
    print("trials: " + ", ".join(f"{s.lower()}={counts.get(s, 0)}" for s in
                                 ("COMPLETE", "PRUNED", "RUNNING", "WAITING", "FAIL")))
    base = study.baseline()
    if base is None:
        print("baseline: not finished yet")
    else:
        print(f"baseline: trial {base['trial']} val_accuracy={base['val_accuracy']:.4f} "
              f"spikes_per_sample={base['spikes_per_sample']:.1f}")
    if (table["state"] == "COMPLETE").any():
        print(f"hypervolume: {study.hypervolume():.6g}")
        front = study.pareto()
        if base is not None and len(front):
            front = front.sort_values("spike_reduction_pct", ascending=False)
            front = front[front["accuracy_delta"] >= front["accuracy_delta"].max() - 2.0]
        print("best trade-offs:")
        _print_table(front.head(3))
    return 0
