"""The Ray Tune backend class: one Tune experiment per study, in ``<results>/<name>/ray``.

- **Budget.** ``n_trials`` is Tune's ``num_samples`` (the baseline included); ``timeout`` is the searcher's
  (Tune's ``time_budget_s`` would stop running trials half-trained and leave them without a final report).
- **Resume.** ``run`` on an existing experiment folder is ``Tuner.restore``: finished trials stay, unfinished and
  errored ones continue from their last checkpoint, the searcher continues where it was. A restored experiment
  keeps the budget, timeout, concurrency and resources it was launched with (Tune stores them; ``resume`` refuses
  another budget or timeout, ``commands._check_ray_budget``); the timeout counts from each run's start. An
  experiment that ended (budget or timeout) starts no new trials.
- **Early stopping.** With ``early_stopping: {kind: moasha}`` the Tuner gets ``MOASHAScheduler`` (``scheduler``),
  or with ``mode: promotion`` ``PromotionScheduler`` (``promotion``). A trial it stops is listed in ``moasha.json``
  in the experiment folder; ``records`` shows it as PRUNED with the epoch it reached and that epoch's metrics, and
  the searcher tells it to Optuna as PRUNED. A trial paused at a rung shows as PAUSED until it is promoted (one
  row, its whole history) or the experiment ends (then PRUNED).
- **Concurrency.** ``max_concurrent`` counts the trials that hold a slot (``limiter``): a paused trial holds none.
- **Records.** ``records`` reads the trial folders (``folders``) without Ray calls.
- **Failures.** A sweep whose trials all failed (errors used up their retries, or diverged) ends in one line with the
  first failure's reason (``cluster.check_trials``), as the Optuna backend does; Tune's per-trial tracebacks stay off
  the terminal unless ``-v``.
- **Clusters.** ``--ray-address`` joins a user's cluster: probed first (reachable, token auth), and given this
  package as the job's ``runtime_env`` (``cluster``).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
import ray
from ray import tune

from ...errors import ConfigError
from ...factories import module_sources
from ...progress import StudyProgress
from ...trainer import train
from .. import _compat
from .._base import RunSettings, SearchBackend
from ..records import TrialRecord
from ..study_file import StudySpec
from . import cluster
from .folders import epoch_rows, read_trial, record_from_results
from .limiter import RunningLimiter
from .promotion import PromotionScheduler
from .scheduler import MOASHAScheduler, paused_trials, stopped_trials
from .searcher import StudySearch
from .trainable import DIVERGED, NUMBER, TrialJob, run_trial

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.ERROR)  # the searcher's study: its info lines are Tune's business

EXPERIMENT = "ray"  # the Tune experiment's folder inside the study's results folder


@dataclass(frozen=True)
class Placement:
    """Resources per trial and the trials allowed at once, resolved against the connected cluster."""

    cpus: float
    gpus: float
    device: str
    max_concurrent: int


def plan_placement(spec: StudySpec, settings: RunSettings, cluster: dict[str, float]) -> Placement:
    """Fractional GPUs (``1 / trials_per_gpu``) when GPUs are asked for or found (device auto/cuda), else CPUs."""
    cpus = settings.cpus_per_trial or spec.ray.cpus_per_trial
    have_gpus = cluster.get("GPU", 0.0)
    wants_gpus = settings.device != "cpu" and (bool(settings.gpus) or have_gpus > 0)
    if settings.device == "cuda" and have_gpus == 0:
        raise ConfigError("the Ray cluster has no GPUs", field="--device")
    gpus = 1.0 / settings.trials_per_gpu if wants_gpus else 0.0
    capacity = math.floor(cluster.get("CPU", 1.0) / cpus)
    if gpus:
        capacity = min(capacity, math.floor(have_gpus * settings.trials_per_gpu))
    limit = settings.max_concurrent or spec.ray.max_concurrent or max(1, capacity)
    device = "cuda" if gpus else "cpu"
    return Placement(cpus=cpus, gpus=gpus, device=device, max_concurrent=limit)


class ProgressCallback(tune.Callback):
    """Feeds the study progress display from Tune's trial objects (no file reads)."""

    def __init__(self, spec: StudySpec, enabled: bool, total: int | None = None):
        self._spec, self._enabled, self._total = spec, enabled, total
        self._progress: StudyProgress | None = None

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles callbacks with the experiment; displays stay out
        return {**self.__dict__, "_progress": None}

    def setup(self, **info: Any) -> None:
        self._progress = StudyProgress(self._spec, enabled=self._enabled, total=self._total)
        self._progress.__enter__()

    def _show(self, trials: list[Any]) -> None:
        if self._progress is not None:
            records = [record_from_results(self._spec, t.config, [t.last_result] if t.last_result else [],
                                 failed=t.status == "ERROR", pruned=t.status == "TERMINATED",
                                 paused=t.status == "PAUSED")
                       for t in trials if NUMBER in t.config]
            self._progress.update(records)

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        self._show(trials)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._show(trials)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._show(trials)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._show(trials)
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None


def connect(settings: RunSettings, user_modules: dict[str, str] | None = None) -> bool:
    """Join ``settings.ray_address``, or start a local Ray on loopback; True when this call connected.

    A local Ray, or a cluster at a loopback address, is reached with Ray's cluster mode off
    (``_compat.ray_cluster_mode``), so that 127.0.0.1 stays 127.0.0.1. A cluster is checked first (reachable, token
    auth) and gets this package for its workers (``cluster``).
    """
    if ray.is_initialized():
        return False
    common: dict[str, Any] = {"configure_logging": False, "log_to_driver": False, "include_dashboard": False}
    address = settings.ray_address or "local"
    if address == "local":
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's own processes: loopback only
        if _compat.RAY_AUTH_MODE not in os.environ:  # Ray's default for a new local Ray, without its warning line
            _compat.ray_enable_token_auth()
        num_gpus = None
        if settings.device == "cpu":
            num_gpus = 0
        elif settings.gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, settings.gpus))  # Ray hands out only these
            num_gpus = len(settings.gpus)
        # A local cluster of its own: GCS on a free port (never the default 6379), every process on 127.0.0.1.
        common.update(_compat.LOOPBACK_NODE, num_cpus=os.cpu_count(), num_gpus=num_gpus)
    else:
        cluster.check_cluster(address)
        common["runtime_env"] = cluster.runtime_env(user_modules)
    loopback = address == "local" or address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost")
    with _compat.ray_cluster_mode(not loopback):
        ray.init(address=address, **common)
    if address == "local":
        log.info("started a local Ray (GCS at %s)", ray.get_runtime_context().gcs_address)
    return True


class RayBackend(SearchBackend):
    name = "ray"

    def __init__(self, train_fn: Callable[..., dict[str, Any]] = train):
        self.train_fn = train_fn

    def run(self, spec: StudySpec, settings: RunSettings) -> None:
        experiment = settings.results_dir.resolve() / EXPERIMENT
        # Frequent experiment snapshots are by design (a fresh live view, a resume that loses little): no warning.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        # A snapshot every 2 s instead of Tune's 10 s or more: `status` and `pareto` read the results folder during
        # a sweep, and the snapshot stays newer than the trials' checkpoints (CHECKPOINT_EVERY_S) that it names.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
        # Tune's new output engine prints its own experiment box and paths even at verbose=0; the legacy one at
        # verbose=0 is silent, which leaves the study's own progress display (ProgressCallback) alone on screen.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        connected = connect(settings, module_sources(spec.baseline_config().user_code()))
        try:
            placement = plan_placement(spec, settings, ray.cluster_resources())
            job = TrialJob(spec, placement.device, settings.threads or max(1, int(placement.cpus)), self.train_fn)
            resources = {"cpu": placement.cpus, **({"gpu": placement.gpus} if placement.gpus else {})}
            trainable = tune.with_resources(tune.with_parameters(run_trial, job=job), resources)
            if tune.Tuner.can_restore(experiment):
                tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True,
                                           resume_errored=True)
            else:
                tuner = self._new_tuner(spec, settings, placement, trainable, experiment)
            with cluster.quiet_trial_errors():
                grid = tuner.fit()
            failures = [cluster.reason(r.error) or (r.metrics or {}).get("fail_reason", "") for r in grid
                        if r.error is not None or (r.metrics or {}).get(DIVERGED)]
            cluster.check_trials(spec.name, failures, len(grid), on_cluster=bool(settings.ray_address))
        finally:
            if connected:
                ray.shutdown()

    @staticmethod
    def _new_tuner(spec: StudySpec, settings: RunSettings, placement: Placement, trainable: Any,
                   experiment: Path) -> tune.Tuner:
        budget = settings.n_trials or spec.n_trials
        search = RunningLimiter(StudySearch(spec, settings.timeout or spec.timeout),
                                max_concurrent=placement.max_concurrent)
        scheduler = None
        if spec.early_stopping.kind == "moasha":
            scheduler = (PromotionScheduler if spec.early_stopping.mode == "promotion" else MOASHAScheduler)(spec)
        # Reused actors skip a worker process (and its torch import) per trial: most of Ray's per-trial cost.
        tune_config = tune.TuneConfig(search_alg=search, scheduler=scheduler, num_samples=budget or -1,
                                      reuse_actors=True)
        run_config = tune.RunConfig(
            name=experiment.name, storage_path=str(experiment.parent), verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.ray.max_failures),
            # Two, not one: the experiment snapshot on disk may still name the previous checkpoint when the driver
            # dies, and a resumed trial needs that one to exist.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[ProgressCallback(spec, settings.show_progress, budget)])
        return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)

    def records(self, spec: StudySpec, settings: RunSettings) -> list[TrialRecord]:
        experiment = settings.results_dir / EXPERIMENT
        if not experiment.is_dir():
            return []
        stopped, paused = stopped_trials(experiment), paused_trials(experiment)
        best: dict[int, tuple[tuple, TrialRecord]] = {}
        for folder in experiment.iterdir():
            found = read_trial(folder, spec, stopped, paused)
            if found is None:
                continue
            rank, record = found
            # A trial started after the last snapshot of a killed run is started again on resume with the
            # same number; the newer (or finished) copy wins.
            if record.number not in best or rank > best[record.number][0]:
                best[record.number] = (rank, record)
        return [record for _, record in sorted(best.values(), key=lambda item: item[1].number)]

    def histories(self, spec: StudySpec, settings: RunSettings, numbers: set[int]) -> dict[int, list[dict]]:
        experiment = settings.results_dir / EXPERIMENT
        return epoch_rows(experiment, numbers) if experiment.is_dir() else {}
