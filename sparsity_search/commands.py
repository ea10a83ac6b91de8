"""Study subcommands (launch, resume, worker, pareto, query, plot, report, status): parse, call the API, format."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, OutputPathError, SparsitySearchError
from .output import FORMATS
from .output_paths import check_output_file, check_output_folder, output_file, output_folder

RUN_LIMITS = {"n_trials": ">= 1", "workers": ">= 1", "trials_per_gpu": ">= 1", "max_concurrent": ">= 1",
              "population": ">= 1", "threads": ">= 0", "timeout": "> 0", "cpus_per_trial": "> 0"}
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


def _gpus(text: str, ray_address: str | None) -> list[int]:
    """``--gpus`` as indices, checked against this machine (a Ray cluster's GPUs are its own: auto only)."""
    if not text:
        return []
    if text != "auto":
        try:
            gpus = [int(g) for g in text.split(",")]
        except ValueError:
            raise ConfigError(f"expected auto or a comma-separated list of GPU indices, got {text!r}",
                              field="--gpus") from None
        if ray_address:
            raise ConfigError("a Ray cluster hands out the GPUs its nodes were started with; use --gpus auto",
                              field="--gpus")
    elif ray_address:
        return []  # plan_placement uses whatever GPUs the cluster has
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        raise ConfigError("torch sees no CUDA device here; leave --gpus out to run on the CPU", field="--gpus")
    if text == "auto":
        return list(range(count))
    bad = [g for g in gpus if not 0 <= g < count]
    if bad:
        raise ConfigError(f"no GPU {bad[0]} here (torch sees {count}: 0..{count - 1})", field="--gpus")
    return gpus


def _given(args: argparse.Namespace, name: str) -> bool:
    return getattr(args, name, None) not in (None, "")


def _check_run_flags(args: argparse.Namespace, spec: Any, device: str) -> None:
    """A run flag the chosen backend or device would ignore is an error: nothing typed is silently dropped."""
    if spec.backend == "ray":
        if _given(args, "workers"):
            raise ConfigError("the ray backend runs trials side by side itself: use --max-concurrent N "
                              "(and --cpus-per-trial)", field="--workers")
        if args.storage:
            raise ConfigError("a ray study keeps its trials in its results folder: use --results DIR "
                              "(--storage is for the optuna backend)", field="--storage")
        if spec.storage:
            raise ConfigError("a ray study keeps its trials in its results folder and would not use this "
                              "storage: remove it from the study file, or use --backend optuna", field="storage")
    else:
        for name in ("ray_address", "cpus_per_trial", "max_concurrent"):
            if _given(args, name):
                raise ConfigError(f"only the ray backend uses it (this study runs on {spec.backend}): use "
                                  "--workers N, or --gpus with --trials-per-gpu", field="--" + name.replace("_", "-"))
    source = "--device cpu" if args.device else "train.device: cpu in the study file"
    for name in ("gpus", "trials_per_gpu"):
        if device == "cpu" and _given(args, name):
            raise ConfigError(f"conflicts with {source}", field="--" + name.replace("_", "-"))
    if spec.backend == "optuna" and _given(args, "trials_per_gpu") and not _given(args, "gpus"):
        raise ConfigError("needs --gpus (auto or a list of indices)", field="--trials-per-gpu")
    if spec.backend == "optuna" and _given(args, "workers") and _given(args, "gpus"):
        raise ConfigError("with --gpus the workers are --trials-per-gpu per GPU: leave --workers out",
                          field="--workers")


def _fill_recorded(args: argparse.Namespace, recorded: dict[str, Any]) -> set[str]:
    """Give the run flags not typed now the values recorded at launch; returns the names filled. Typing one of the
    worker layout flags (``recorded.LAYOUT``) drops the recorded others, and ``--device cpu`` the recorded GPUs."""
    from .search.recorded import FLAGS, LAYOUT

    given = {name for name in FLAGS if _given(args, name)}
    filled = set()
    for name, value in recorded.items():
        if name in given or not hasattr(args, name) or (given & set(LAYOUT) and name in LAYOUT):
            continue
        if name in ("gpus", "trials_per_gpu") and args.device == "cpu":
            continue
        setattr(args, name, value)
        filled.add(name)
    return filled


def _check_ray_budget(args: argparse.Namespace, spec: Any, settings: Any, launched: Any,
                      recorded: dict[str, Any]) -> None:
    """Tune restores an experiment with the budget and timeout it started with: asking for others is an error."""
    from .search.recorded import ray_restorable

    if spec.backend != "ray" or launched is None or not ray_restorable(settings.results_dir):
        return
    for name in ("n_trials", "timeout"):
        before = recorded.get(name, getattr(launched, name))
        now = getattr(settings, name) or getattr(spec, name)
        if now != before:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"a restored Ray experiment keeps the {name} it was launched with ({before}): Tune "
                              "cannot change it", field=flag if _given(args, name) else name,
                              source=None if _given(args, name) else str(args.study))


def _settings_from_args(args: argparse.Namespace) -> tuple[Any, Any]:
    """Spec and run settings from the flags, the flags recorded at launch (``search.recorded``), then the file."""
    from .api import locate, recorded_flags, recorded_spec
    from .search.recorded import FLAGS

    spec, settings = locate(args.study, args.storage, args.results)
    launched = recorded_spec(settings.results_dir)  # the snapshot; its backend is spec's already
    recorded = recorded_flags(spec, settings.results_dir, settings.storage, launched is not None)
    if getattr(args, "backend", None) and args.backend != spec.backend:
        if launched is not None or recorded is not None:
            raise ConfigError(f"study {spec.name!r} was launched on {spec.backend}, where its trials are; leave "
                              "--backend out, or launch under another name or --results", field="--backend")
        spec.backend = args.backend
    given = {name: getattr(args, name) for name in FLAGS if _given(args, name)}
    filled = _fill_recorded(args, recorded or {})
    settings.launch = {**{name: getattr(args, name) for name in filled}, **given}
    try:
        _resolve_run_flags(args, spec, settings)
    except ConfigError as exc:
        name = (exc.field or "").lstrip("-").replace("-", "_")
        if name in filled and exc.field.startswith("--"):
            raise ConfigError(f"{exc.reason} ({exc.field} {getattr(args, name)} was recorded at launch; a flag "
                              "given again replaces it)", field=exc.field) from None
        raise
    _check_ray_budget(args, spec, settings, launched, recorded or {})
    _check_output_paths(args, spec, settings)
    return spec, settings


def _resolve_run_flags(args: argparse.Namespace, spec: Any, settings: Any) -> None:
    from .search import check_population

    settings.n_trials, settings.timeout = args.n_trials, args.timeout
    # The study file's train.device / train.threads hold unless the flag is given (or was, at launch).
    settings.device = args.device or spec.train.get("device") or "auto"
    settings.threads = spec.train.get("threads", 0) if args.threads is None else args.threads
    settings.show_progress = not args.quiet
    _check_run_flags(args, spec, settings.device)
    for name in ("workers", "trials_per_gpu", "ray_address", "cpus_per_trial", "max_concurrent", "population"):
        if getattr(args, name, None) is not None:
            setattr(settings, name, getattr(args, name))
    check_population(spec.backend, settings.population, "--population")
    for name, limit in RUN_LIMITS.items():
        value, (op, bound) = getattr(settings, name), limit.split()
        if value is not None and not (value >= float(bound) if op == ">=" else value > float(bound)):
            raise ConfigError(f"must be {limit}, got {value}", field="--" + name.replace("_", "-"))
    settings.gpus = _gpus(getattr(args, "gpus", ""), settings.ray_address)


def _check_output_paths(args: argparse.Namespace, spec: Any, settings: Any) -> None:
    try:  # the folder resolved from the flag, the study file's results: or the default results/
        check_output_folder(settings.results_dir)
    except OutputPathError as exc:
        raise ConfigError(exc.reason, field="--results" if args.results or not spec.results else "results") from None
    if spec.backend == "optuna" and "://" not in settings.storage:  # a journal file, created with its folder
        journal = Path(settings.storage)
        try:
            check_output_file(journal) if journal.exists() else check_output_folder(journal.parent)
        except OutputPathError as exc:
            raise ConfigError(exc.reason, field="--storage" if args.storage else "storage") from None


def _launch(args: argparse.Namespace) -> int:
    from .api import Study, write_snapshot
    from .output import print_trials
    from .search import get_backend

    spec, settings = _settings_from_args(args)
    write_snapshot(spec, settings.results_dir, launch=settings.launch)
    get_backend(spec.backend).run(spec, settings)
    study = Study(spec, settings)
    table = study.pareto()
    print(f"study {spec.name}: {len(table)} Pareto-optimal trials (results in {settings.results_dir})")
    print_trials(table)
    _note_boundary(study)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from .search import run_worker

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
