"""Study subcommands (launch, resume, worker, pareto, query, plot, report, status): parse, call the API, format.

``launch``, ``resume`` and ``worker`` call ``launching`` (the same functions as ``sparsity_search.launch``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, SparsitySearchError
from .output import FORMATS
from .output_paths import output_file, output_folder

INFEASIBLE_HELP = "trials that break the study's constraints compete too (default: feasible trials only)"


def _locate_args(p: argparse.ArgumentParser, *, writes: bool = False) -> None:
    p.add_argument("study", metavar="STUDY", help="study file (studies/*.yaml), results folder, or study name")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (default: journal file in the results)")
    p.add_argument("--results", metavar="DIR", type=output_folder if writes else None,
                   help="results root (default: results/, or the study file's)")


def _run_args(p: argparse.ArgumentParser, *, launch: bool) -> None:
    p.add_argument("--n-trials", type=int, metavar="N", help="finished trials to reach (overrides n_trials)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop starting trials after S seconds")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: the study file's train.device, or auto")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads per worker (default: the study file's train.threads; 0: split cores)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.add_argument("--population", type=int, metavar="K",
                   help="Optuna: train up to K compatible trials at once as one network (overrides population.size)")
    if launch:
        p.add_argument("--workers", type=int, metavar="N", help="Optuna: local worker processes (CPU; default 1)")
        p.add_argument("--gpus", default="", metavar="auto|0,1,..", help="GPUs to spread trials over")
        p.add_argument("--trials-per-gpu", type=int, metavar="K", help="concurrent trials per GPU (default 1)")
        p.add_argument("--backend", choices=("optuna", "ray"), help="override the study file's backend")
        p.add_argument("--ray-address", metavar="ADDR", help="join an existing Ray cluster (ray start --head)")
        p.add_argument("--cpus-per-trial", type=float, metavar="N", help="Ray: CPUs reserved per trial")
        p.add_argument("--max-concurrent", type=int, metavar="N", help="Ray: trials running at once")


def add_study_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launch", help="launch (or continue) a multi-objective study from a study file")
    p.add_argument("study", metavar="STUDY.yaml")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL, e.g. postgresql://host/db")
    p.add_argument("--results", metavar="DIR", type=output_folder, help="results root (default: results/)")
    _run_args(p, launch=True)
    p.set_defaults(func=_launch, resume=False)

    p = sub.add_parser("resume", help="continue an interrupted study until its budget is met")
    _locate_args(p, writes=True)
    _run_args(p, launch=True)
    p.set_defaults(func=_launch, resume=True)

    p = sub.add_parser("worker", help="join a running study (e.g. from another machine) as one worker")
    _locate_args(p, writes=True)
    _run_args(p, launch=False)
    p.set_defaults(func=_worker)

    p = sub.add_parser("pareto", help="export the Pareto front (or all trials) as a table")
    _locate_args(p)
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("-o", "--output", metavar="FILE", type=output_file, help="write to FILE instead of stdout")
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
    p.add_argument("--export-config", metavar="OUT.yaml", type=output_file,
                   help="write the chosen trial's training config")
    p.add_argument("--include-infeasible", action="store_true", help=INFEASIBLE_HELP)
    p.set_defaults(func=_query)

    p = sub.add_parser("plot", help="plot the front, hypervolume history, or the front trials' curves or layers")
    _locate_args(p)
    p.add_argument("-o", "--output", metavar="FILE.png", type=output_file, required=True, help="png, svg or pdf, by extension")
    p.add_argument("--kind", choices=("pareto", "history", "curves", "layers"), default="pareto",
                   help="pareto: the front against the baseline; history: hypervolume per trial; curves: "
                        "per-epoch accuracy, spikes and lambda of the front trials; layers: their spikes per layer")
    p.add_argument("--full-range", action="store_true",
                   help="pareto: every trial, not only accuracy within a few points of the baseline")
    p.set_defaults(func=_plot)

    p = sub.add_parser("report", help="write the study as one self-contained HTML page (opens offline)")
    _locate_args(p)
    p.add_argument("-o", "--output", metavar="FILE.html", type=output_file, required=True)
    p.add_argument("--full-range", action="store_true",
                   help="open the front on every trial, not only accuracy within a few points of the baseline")
    p.set_defaults(func=_report)

    p = sub.add_parser("status", help="trial counts, baseline, hypervolume and the best trade-offs")
    _locate_args(p)
    p.add_argument("--include-infeasible", action="store_true", help=INFEASIBLE_HELP)
    p.set_defaults(func=_status)


def _run_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The run flags this command was given (``launching.RunFlags``), by name."""
    from .launching import RunFlags

    names = [f.name for f in dataclasses.fields(RunFlags)]
    return {name: getattr(args, name) for name in names if getattr(args, name, None) not in (None, "")}


def _launch(args: argparse.Namespace) -> int:
    from .launching import launch
    from .output import print_trials

    study = launch(args.study, resume=args.resume, **_run_flags(args))
    table = study.pareto()
    print(f"study {study.spec.name}: {len(table)} Pareto-optimal trials (results in {study.settings.results_dir})")
    print_trials(table)
    _note_boundary(study)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from .launching import join

    join(args.study, **_run_flags(args))
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
    # per-layer spikes in every export and in --all; the front on the terminal stays narrow
    layers = args.all or bool(args.output) or args.format != "table"
    text = render(trial_columns(table, layers=layers), args.format, args.output)
    if text is not None and not args.output:
        print(text)
    _note_boundary(study, args.include_infeasible)
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
        _note_boundary(study, args.include_infeasible)
        return 1
    print_trials(result)
    _note_boundary(study, args.include_infeasible, (rule, value))
    if args.export_config:
        cfg = study.trial_config(int(result.iloc[0]["trial"]))
        save_config(cfg, args.export_config)
        print(f"wrote the config of trial {int(result.iloc[0]['trial'])} to {args.export_config}")
    return 0


def _output_file(text: str, suffixes: tuple[str, ...]) -> Path:
    """``-o``'s path (already checked writable by ``output_file``) if its extension is one we write."""
    path = Path(text)
    if path.suffix.lower().lstrip(".") not in suffixes:
        raise ConfigError(f"{path}: expected a .{', .'.join(suffixes)} file", field="-o")
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
    from .output import print_trials
    from .pareto import best_tradeoffs

    study = _open(args)
    table = study.trials()
    counts = table["state"].value_counts().to_dict()
    print(f"study {study.spec.name} ({study.spec.backend}) at {study.settings.storage}")
    print("trials: " + ", ".join(f"{s.lower()}={counts.get(s, 0)}" for s in
                                 ("COMPLETE", "PRUNED", "PAUSED", "RUNNING", "WAITING", "FAIL")))
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
        _note_boundary(study, args.include_infeasible)
    return 0


def _note_boundary(study: Any, include_infeasible: bool = False, query: tuple[str, float | None] | None = None) -> None:
    """One line per range whose bound the front sits on (``Study.boundary_findings``), on stderr: a table piped
    from stdout stays clean."""
    for finding in study.boundary_findings(include_infeasible, query):
        print(f"note: {finding.message()}", file=sys.stderr)
