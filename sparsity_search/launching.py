"""Launching, resuming and joining a study: from a study (file, dict or name) and run flags to a running search.

``launch``, ``resume`` and ``join`` are what the CLI's ``launch``, ``resume`` and ``worker`` commands call, and what
``sparsity_search.launch(...)`` / ``resume(...)`` are, so both take the same settings through the same checks:

    from sparsity_search import launch
    study = launch("studies/quickstart.yaml", n_trials=20, workers=2)     # a Study, as open_study returns
    study = launch({"name": "mine", "model": {"factory": build}, ...})   # a dict; a callable factory

The order: find the study and its recorded launch (``api.locate``, ``search.recorded``), settle the run flags (typed
now, else recorded at launch, else the study file's), refuse any flag the run would ignore, check every output
path, and check the run before anything is stored (``preflight``: the user's factories import, the model builds
and answers, the data loads); then snapshot the study and run the backend.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import ConfigError, OutputPathError
from .output_paths import check_output_file, check_output_folder

if TYPE_CHECKING:
    from .api import Study
    from .search import RunSettings, StudySpec

RUN_LIMITS = {"n_trials": ">= 1", "workers": ">= 1", "trials_per_gpu": ">= 1", "max_concurrent": ">= 1",
              "population": ">= 1", "threads": ">= 0", "timeout": "> 0", "cpus_per_trial": "> 0"}
# What ``worker`` takes; the others lay out a whole launch (local processes, GPUs, Ray).
WORKER_FLAGS = ("n_trials", "timeout", "device", "threads", "population")


@dataclass
class RunFlags:
    """The settings a run is given (CLI flags or keyword arguments); None (or "") means not given."""

    storage: str | None = None
    results: str | None = None
    n_trials: int | None = None
    timeout: float | None = None
    device: str | None = None
    threads: int | None = None
    quiet: bool = False
    population: int | None = None
    workers: int | None = None
    gpus: str | list[int] | None = None  # "auto", "0,1" or [0, 1]
    trials_per_gpu: int | None = None
    backend: str | None = None
    ray_address: str | None = None
    cpus_per_trial: float | None = None
    max_concurrent: int | None = None

    def given(self, name: str) -> bool:
        return getattr(self, name, None) not in (None, "", [])


def flag(name: str) -> str:
    """A run setting's command-line spelling, which errors name: ``n_trials`` -> ``--n-trials``."""
    return "--" + name.replace("_", "-")


def _gpu_text(gpus: str | list[int] | None) -> str:
    return ",".join(map(str, gpus)) if isinstance(gpus, (list, tuple)) else (gpus or "")


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


def _check_run_flags(flags: RunFlags, spec: StudySpec, device: str) -> None:
    """A run flag the chosen backend or device would ignore is an error: nothing typed is silently dropped."""
    if spec.backend == "ray":
        if flags.given("workers"):
            raise ConfigError("the ray backend runs trials side by side itself: use --max-concurrent N "
                              "(and --cpus-per-trial)", field="--workers")
        if flags.storage:
            raise ConfigError("a ray study keeps its trials in its results folder: use --results DIR "
                              "(--storage is for the optuna backend)", field="--storage")
        if spec.storage:
            raise ConfigError("a ray study keeps its trials in its results folder and would not use this "
                              "storage: remove it from the study file, or use --backend optuna", field="storage")
    else:
        for name in ("ray_address", "cpus_per_trial", "max_concurrent"):
            if flags.given(name):
                raise ConfigError(f"only the ray backend uses it (this study runs on {spec.backend}): use "
                                  "--workers N, or --gpus with --trials-per-gpu", field=flag(name))
    source = "--device cpu" if flags.device else "train.device: cpu in the study file"
    for name in ("gpus", "trials_per_gpu"):
        if device == "cpu" and flags.given(name):
            raise ConfigError(f"conflicts with {source}", field=flag(name))
    if spec.backend == "optuna" and flags.given("trials_per_gpu") and not flags.given("gpus"):
        raise ConfigError("needs --gpus (auto or a list of indices)", field="--trials-per-gpu")
    if spec.backend == "optuna" and flags.given("workers") and flags.given("gpus"):
        raise ConfigError("with --gpus the workers are --trials-per-gpu per GPU: leave --workers out",
                          field="--workers")


def _fill_recorded(flags: RunFlags, recorded: dict[str, Any], takes: tuple[str, ...]) -> set[str]:
    """Give the run flags not typed now the values recorded at launch; returns the names filled. Typing one of the
    worker layout flags (``recorded.LAYOUT``) drops the recorded others, and ``--device cpu`` the recorded GPUs."""
    from .search.recorded import FLAGS, LAYOUT

    given = {name for name in FLAGS if flags.given(name)}
    filled = set()
    for name, value in recorded.items():
        if name in given or name not in takes or (given & set(LAYOUT) and name in LAYOUT):
            continue
        if name in ("gpus", "trials_per_gpu") and flags.device == "cpu":
            continue
        setattr(flags, name, value)
        filled.add(name)
    return filled


def _check_ray_budget(flags: RunFlags, spec: StudySpec, settings: RunSettings, launched: StudySpec | None,
                      recorded: dict[str, Any], source: str) -> None:
    """Tune restores an experiment with the budget and timeout it started with: asking for others is an error."""
    from .search.recorded import ray_restorable

    if spec.backend != "ray" or launched is None or not ray_restorable(settings.results_dir):
        return
    for name in ("n_trials", "timeout"):
        before = recorded.get(name, getattr(launched, name))
        now = getattr(settings, name) or getattr(spec, name)
        if now != before:
            raise ConfigError(f"a restored Ray experiment keeps the {name} it was launched with ({before}): Tune "
                              "cannot change it", field=flag(name) if flags.given(name) else name,
                              source=None if flags.given(name) else source)


def _resolve_run_flags(flags: RunFlags, spec: StudySpec, settings: RunSettings) -> None:
    from .search import check_population
    from .search.pbt_settings import check_pbt_population

    settings.n_trials, settings.timeout = flags.n_trials, flags.timeout
    # The study file's train.device / train.threads hold unless the flag is given (or was, at launch).
    settings.device = flags.device or spec.train.get("device") or "auto"
    settings.threads = spec.train.get("threads", 0) if flags.threads is None else flags.threads
    settings.show_progress = not flags.quiet
    _check_run_flags(flags, spec, settings.device)
    for name in ("workers", "trials_per_gpu", "ray_address", "cpus_per_trial", "max_concurrent", "population"):
        if getattr(flags, name) is not None:
            setattr(settings, name, getattr(flags, name))
    given = settings.population is not None
    size, field = (settings.population, "--population") if given else (spec.population.size, "population")
    check_population(spec.backend, size, field)  # the file's too: --backend may have moved it to Ray
    if spec.pbt is not None:
        check_pbt_population(size, field)
    for name, limit in RUN_LIMITS.items():
        value, (op, bound) = getattr(settings, name), limit.split()
        if value is not None and not (value >= float(bound) if op == ">=" else value > float(bound)):
            raise ConfigError(f"must be {limit}, got {value}", field=flag(name))
    settings.gpus = _gpus(_gpu_text(flags.gpus), settings.ray_address)


def _check_output_paths(flags: RunFlags, spec: StudySpec, settings: RunSettings) -> None:
    try:  # the folder resolved from the flag, the study file's results: or the default results/
        check_output_folder(settings.results_dir)
    except OutputPathError as exc:
        raise ConfigError(exc.reason, field="--results" if flags.results or not spec.results else "results") from None
    if spec.backend == "optuna" and "://" not in settings.storage:  # a journal file, created with its folder
        journal = Path(settings.storage)
        try:
            check_output_file(journal) if journal.exists() else check_output_folder(journal.parent)
        except OutputPathError as exc:
            raise ConfigError(exc.reason, field="--storage" if flags.storage else "storage") from None


def settle(study: Any, flags: RunFlags, takes: tuple[str, ...]) -> tuple[StudySpec, RunSettings]:
    """Spec and run settings from ``flags``, the flags recorded at launch (``search.recorded``), then the study
    file; ``takes`` names the flags this command accepts (recorded others are not applied)."""
    from .api import locate, recorded_flags, recorded_spec
    from .search.recorded import FLAGS

    spec, settings = locate(study, flags.storage, flags.results)
    source = str(study) if isinstance(study, (str, Path)) else spec.name
    launched = recorded_spec(settings.results_dir)  # the snapshot; its backend is spec's already
    recorded = recorded_flags(spec, settings.results_dir, settings.storage, launched is not None)
    if flags.backend and flags.backend != spec.backend:
        if launched is not None or recorded is not None:
            raise ConfigError(f"study {spec.name!r} was launched on {spec.backend}, where its trials are; leave "
                              "--backend out, or launch under another name or --results", field="--backend")
        spec.backend = flags.backend
    given = {name: getattr(flags, name) for name in FLAGS if flags.given(name)}
    if "gpus" in given:
        given["gpus"] = _gpu_text(given["gpus"])
    filled = _fill_recorded(flags, recorded or {}, takes)
    settings.launch = {**{name: getattr(flags, name) for name in filled}, **given}
    try:
        _resolve_run_flags(flags, spec, settings)
    except ConfigError as exc:
        name = (exc.field or "").lstrip("-").replace("-", "_")
        if name in filled and exc.field and exc.field.startswith("--"):
            raise ConfigError(f"{exc.reason} ({exc.field} {getattr(flags, name)} was recorded at launch; a flag "
                              "given again replaces it)", field=exc.field) from None
        raise
    _check_ray_budget(flags, spec, settings, launched, recorded or {}, source)
    _check_output_paths(flags, spec, settings)
    return spec, settings


def _with_user_code(study: Any, model: Any, dataset: Any) -> Any:
    """The study with ``model=`` / ``dataset=`` (a factory string, a callable or a mapping) put in, parsed; as it
    was when neither is given. The study file's own relative paths stay relative to its folder."""
    if model is None and dataset is None:
        return study
    from .config import anchor, load_yaml
    from .search import parse_study

    if isinstance(study, dict):
        data, base, source = dict(study), Path.cwd(), "study"
    elif isinstance(study, (str, Path)) and Path(study).is_file():
        data, base, source = load_yaml(study), Path(study).parent, str(study)
    else:
        raise ConfigError("model= and dataset= need a study file or a study dict to go into", field="study")
    data.update(anchor({k: v for k, v in (("model", model), ("dataset", dataset)) if v is not None}, Path.cwd()))
    return parse_study(data, source, base)


def _run(study: Any, flags: RunFlags, takes: tuple[str, ...], worker: bool) -> tuple[StudySpec, RunSettings]:
    from .preflight import preflight

    spec, settings = settle(study, flags, takes)
    try:
        preflight(spec, settings, worker=worker)
    except ConfigError as exc:  # the study's user code or data: name the file that names them
        if exc.source is not None or not isinstance(study, (str, Path)):
            raise
        raise ConfigError(exc.reason, field=exc.field, source=str(study)) from None
    return spec, settings


def launch(study: Any, *, model: Any = None, dataset: Any = None, resume: bool = False,
           on_start: Callable[[StudySpec, RunSettings], None] | None = None, **settings: Any) -> Study:
    """Launch (or, with ``resume``, continue) a study and run it until its budget is met; return the ``Study``.

    ``study``: a study file, a study dict, a results folder or a study name (``resume``). ``model`` / ``dataset``:
    a ``MODULE:FUNCTION`` string, a callable or a mapping, put into the study. ``settings``: what the CLI's run
    flags set (``RunFlags``: n_trials, timeout, workers, gpus, trials_per_gpu, device, threads, population, backend,
    storage, results, ray_address, cpus_per_trial, max_concurrent, quiet).
    """
    from .api import Study, write_snapshot
    from .search import get_backend

    flags = _flags(settings)
    takes = tuple(f.name for f in dataclasses.fields(RunFlags))
    spec, run = _run(_with_user_code(study, model, dataset), flags, takes, worker=False)
    write_snapshot(spec, run.results_dir, launch=run.launch)
    if on_start is not None:
        on_start(spec, run)
    get_backend(spec.backend).run(spec, run)
    return Study(spec, run)


def resume(study: Any, **settings: Any) -> Study:
    """Continue an interrupted study until its budget is met (``launch`` with ``resume=True``)."""
    return launch(study, resume=True, **settings)


def join(study: Any, **settings: Any) -> None:
    """Join a running Optuna study as one worker in this process (the CLI's ``worker``): ``settings`` take the
    ``worker`` command's flags (n_trials, timeout, device, threads, population, storage, results, quiet)."""
    from .search import run_worker

    flags = _flags(settings)
    unknown = [name for name in ("workers", "gpus", "trials_per_gpu", "backend", "ray_address", "cpus_per_trial",
                                 "max_concurrent") if flags.given(name)]
    if unknown:
        raise ConfigError("a worker is one process of a study launched elsewhere; use launch for that",
                          field=flag(unknown[0]))
    spec, run = _run(study, flags, WORKER_FLAGS, worker=True)
    if spec.backend != "optuna":
        raise ConfigError("workers join Optuna studies; a Ray study scales with `ray start --address`",
                          field="backend")
    run_worker(spec, run, salt=os.getpid())  # concurrent workers must not propose the same points


def _flags(settings: dict[str, Any]) -> RunFlags:
    names = {f.name for f in dataclasses.fields(RunFlags)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise ConfigError(f"unknown setting; choose from {', '.join(sorted(names))}", field=unknown[0])
    return RunFlags(**settings)
