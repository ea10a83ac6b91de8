"""Ray Tune backend: one Tune experiment per study, in ``<results>/<name>/ray`` (tested with Ray 2.60).

Every Ray import of the package lives in this module and ``_ray_moasha`` (``get_backend("ray")`` imports them
lazily). The pieces:

- **Trainable.** ``run_trial`` is a function trainable that only wraps ``train(cfg, report)``. It reports every
  epoch's metrics, with the trainer's ``checkpoint.pt`` as a ``tune.Checkpoint`` after the first epoch and then
  at most every ``CHECKPOINT_EVERY_S`` seconds (each epoch of a real network); a retried or resumed trial gets
  that checkpoint back (``tune.get_checkpoint()``), copies it into its checkpoint folder and the trainer continues
  from the epoch after it. The last report is the trainer's row (test metrics included) with ``final: True``.
  ``DivergedError`` is not retried (it would diverge again): the trial reports ``diverged: True`` and its reason,
  returns, and counts as failed, for the searcher (Optuna ``FAIL``) and in ``records``.
- **Search.** ``StudySearch`` is Ray's ``OptunaSearch`` with the study's sampler, objectives and define-by-run
  space (``SearchSpace.suggest``, conditions included), under a ``ConcurrencyLimiter``. It hands out the lambda = 0
  baseline as the first trial (no sampled parameters, never shown to the sampler: 0 lies outside the searched
  range) and numbers trials in creation order (``trial_number`` in each trial's config, baseline = 0). Its state
  (the Optuna study, the numbering) is saved by Tune in the experiment folder.
- **Budget.** ``n_trials`` is Tune's ``num_samples`` (the baseline included). ``timeout`` stops *starting* trials,
  as on the Optuna backend: the searcher answers ``FINISHED`` once it passes and running trials finish. (Tune's
  ``time_budget_s`` would stop running trials half-trained and leave them without a final report.)
- **Resume.** ``run`` on an existing experiment folder is ``Tuner.restore``: finished trials stay, unfinished and
  errored ones continue from their last checkpoint, the searcher continues where it was. A restored experiment
  keeps the budget, timeout, concurrency and resources it was launched with (Tune stores them); the timeout
  counts from each run's start. An experiment that ended (budget or timeout) starts no new trials.
- **Early stopping.** With ``early_stopping: {kind: moasha}`` the Tuner gets ``MOASHAScheduler``
  (``_ray_moasha``), the promotion rule of the Optuna side as a Tune scheduler. A trial it stops is listed in
  ``moasha.json`` in the experiment folder; ``records`` shows it as PRUNED with the epoch it reached and that
  epoch's metrics, and the searcher tells it to Optuna as PRUNED (partial metrics are not a result).
- **Records.** ``records`` reads the trial folders (``params.json``, ``result.json``, ``error.txt``) without Ray,
  during or after a sweep. Tune writes them on the driver and copies them to the results folder with its
  experiment snapshots (every 2 s here, ``TUNE_GLOBAL_CHECKPOINT_S``), so a live view lags by a few seconds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from ...config import TrainConfig
from ...errors import ConfigError, DivergedError
from ...progress import StudyProgress
from ...trainer import train
from .. import _samplers
from .._base import RunSettings, SearchBackend
from ..records import TrialRecord, baseline_params
from ..study_file import StudySpec

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.ERROR)  # the searcher's study: its info lines are Tune's business

EXPERIMENT = "ray"  # the Tune experiment's folder inside the study's results folder
NUMBER, BASELINE = "trial_number", "is_baseline"  # added to every trial's config by StudySearch
FINAL, DIVERGED, TRAIN_CONFIG = "final", "diverged", "train_config"  # keys of a trial's last report
# Keys Tune adds to every reported result; records() keeps only the trainer's metrics (plus node_id, worker).
TUNE_KEYS = frozenset({"timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration",
                       "trial_id", "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip",
                       "config", "time_since_restore", "iterations_since_restore", "experiment_tag",
                       FINAL, TRAIN_CONFIG})
FAILURE = re.compile(r"^Failure # (\d+) \(occurred at (\S+)\)$", re.MULTILINE)
# A trial hands Tune its checkpoint with the first epoch's report and then at most once per this many seconds.
# Tune deletes all but the newest two (num_to_keep), while the experiment snapshot that names a trial's latest
# checkpoint reaches the results folder asynchronously: with checkpoints a fraction of a second apart (small
# nets) a driver killed on a busy machine left a snapshot naming a deleted checkpoint, and restore failed.
CHECKPOINT_EVERY_S = 10.0


# -- the trainable ---------------------------------------------------------------------------------------------
@dataclass
class TrialJob:
    """What every trial of one run shares: the study, where to train, and the training function."""

    spec: StudySpec
    device: str
    threads: int
    train_fn: Callable[..., dict[str, Any]] = train  # tests pass a wrapper that injects faults


def trial_config(spec: StudySpec, config: dict[str, Any]) -> TrainConfig:
    """The TrainConfig a Tune trial config stands for: the baseline, or the fixed settings plus sampled params."""
    if config.get(BASELINE):
        return spec.baseline_config()
    return spec.trial_config({k: v for k, v in config.items() if k not in (NUMBER, BASELINE)})


def run_trial(config: dict[str, Any], job: TrialJob) -> None:
    """Tune's function trainable: train one config, reporting each epoch with the trainer's checkpoint."""
    where = {"node_id": ray.get_runtime_context().get_node_id(), "worker": f"{socket.gethostname()}:{os.getpid()}"}
    # Tune checks that every result names the searcher's metrics; test metrics are only known at the end.
    pending = dict.fromkeys(job.spec.objective_names)
    with tempfile.TemporaryDirectory(prefix=f"sparsity-search-{config[NUMBER]:05d}-") as work:
        cfg = trial_config(job.spec, config).replace(checkpoint_dir=work, resume=True, device=job.device,
                                                     threads=job.threads)
        restored = tune.get_checkpoint()
        if restored is not None:  # a retry after a failure, or a resumed experiment
            restored.to_directory(work)

        last_checkpoint = -math.inf

        def report(epoch: int, metrics: dict[str, Any]) -> None:
            nonlocal last_checkpoint
            result, now = {**pending, **metrics, **where}, time.monotonic()
            if now - last_checkpoint < CHECKPOINT_EVERY_S:
                tune.report(result)
                return
            last_checkpoint = now
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(work))

        try:
            row = job.train_fn(cfg, report)
        except DivergedError as exc:
            tune.report({**pending, DIVERGED: True, "fail_reason": str(exc), **where})
            return
        row = dict(row)
        used = row.pop("config", cfg.to_dict())
        tune.report({**pending, **row, **where, FINAL: True, TRAIN_CONFIG: used})


# -- the searcher ----------------------------------------------------------------------------------------------
class DefineByRun:
    """OptunaSearch's ``space``: the study's define-by-run sampling (a class, so Tune can pickle it)."""

    def __init__(self, spec: StudySpec):
        self.space = spec.space()

    def __call__(self, trial: Any) -> dict[str, Any]:
        return self.space.suggest(trial)


class StudySearch(OptunaSearch):
    """OptunaSearch that hands out the baseline first and numbers trials in creation order.

    The baseline trains ``spec.baseline_config()`` (lambda = 0, nothing sampled) and is not an Optuna trial, so
    the sampler only learns from sampled points. A diverged trial is told to Optuna as failed. After ``timeout``
    seconds of a run (the clock is not saved: it restarts when a run resumes) it starts no more trials.
    """

    def __init__(self, spec: StudySpec, timeout: float | None = None):
        super().__init__(space=DefineByRun(spec), metric=spec.objective_names,
                         mode=["max" if d == "maximize" else "min" for d in spec.directions],
                         sampler=_samplers.make_sampler(spec))
        self._spec = spec
        self._baseline_due = spec.baseline
        self._baseline_id: str | None = None
        self._next_number = 0
        self._timeout = timeout
        self._clock: float | None = None

    def save(self, checkpoint_path: str) -> None:
        clock, self._clock = self._clock, None
        try:
            super().save(checkpoint_path)
        finally:
            self._clock = clock

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        now = time.monotonic()
        self._clock = now if self._clock is None else self._clock
        if self._timeout is not None and now - self._clock > self._timeout:
            return Searcher.FINISHED
        if self._baseline_due:
            self._baseline_due, self._baseline_id = False, trial_id
            config: dict[str, Any] | None = {BASELINE: True}
        else:
            config = super().suggest(trial_id)
            if config is None:
                return None
            config = {**config, BASELINE: False}
        config[NUMBER] = self._next_number
        self._next_number += 1
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        return None  # multi-objective: Optuna takes no intermediate values

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id == self._baseline_id or trial_id not in self._ot_trials:
            return
        if result is not None and result.get(DIVERGED):
            result, error = None, True
        elif result is not None and not result.get(FINAL):
            # Ended without an error before its final report: only the MO-ASHA scheduler stops trials (no Tune
            # stopper or time budget is set). No values and no error is OptunaSearch's PRUNED.
            result, error = None, False
        if result is not None:
            values = _samplers.constraint_values(self._spec, result)
            self._ot_trials[trial_id].set_user_attr(_samplers.CONSTRAINTS_ATTR, values)
        super().on_trial_complete(trial_id, result=result, error=error)


# -- the backend -----------------------------------------------------------------------------------------------
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
            records = [to_record(self._spec, t.config, [t.last_result] if t.last_result else [],
                                 failed=t.status == "ERROR", pruned=t.status == "TERMINATED")
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


def connect(settings: RunSettings) -> bool:
    """Join ``settings.ray_address``, or start a local Ray on loopback; True when this call connected.

    Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when it is imported. While it is on (Linux's default),
    ``ray.init`` rewrites 127.0.0.1 to this host's routable IP, and a local Ray's GCS and raylet then listen on every
    interface. So a local Ray, or a cluster at a loopback address, is reached with it off (Ray has no public switch).
    """
    if ray.is_initialized():
        return False
    import ray._private.ray_constants as ray_constants

    common: dict[str, Any] = {"configure_logging": False, "log_to_driver": False, "include_dashboard": False}
    address = settings.ray_address or "local"
    if address == "local":
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray's own processes: loopback only
        num_gpus = None
        if settings.device == "cpu":
            num_gpus = 0
        elif settings.gpus:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, settings.gpus))  # Ray hands out only these
            num_gpus = len(settings.gpus)
        # A local cluster of its own: GCS on a free port (never the default 6379), every process on 127.0.0.1.
        common.update(_node_ip_address="127.0.0.1", num_cpus=os.cpu_count(), num_gpus=num_gpus)
    loopback = address == "local" or address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost")
    clusters = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = clusters and not loopback
    try:
        ray.init(address=address, **common)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = clusters
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
        connected = connect(settings)
        try:
            placement = plan_placement(spec, settings, ray.cluster_resources())
            job = TrialJob(spec, placement.device, settings.threads or max(1, int(placement.cpus)), self.train_fn)
            resources = {"cpu": placement.cpus, **({"gpu": placement.gpus} if placement.gpus else {})}
            trainable = tune.with_resources(tune.with_parameters(run_trial, job=job), resources)
            if tune.Tuner.can_restore(experiment):
                if settings.n_trials or settings.timeout:
                    log.warning("%s: a restored Ray experiment keeps the budget and timeout it was launched with",
                                experiment)
                tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True,
                                           resume_errored=True)
            else:
                tuner = self._new_tuner(spec, settings, placement, trainable, experiment)
            tuner.fit()
        finally:
            if connected:
                ray.shutdown()

    @staticmethod
    def _new_tuner(spec: StudySpec, settings: RunSettings, placement: Placement, trainable: Any,
                   experiment: Path) -> tune.Tuner:
        budget = settings.n_trials or spec.n_trials
        search = ConcurrencyLimiter(StudySearch(spec, settings.timeout or spec.timeout),
                                    max_concurrent=placement.max_concurrent)
        scheduler = None
        if spec.early_stopping.kind == "moasha":
            from .scheduler import MOASHAScheduler

            scheduler = MOASHAScheduler(spec)
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
        from .scheduler import stopped_trials

        stopped = stopped_trials(experiment)
        best: dict[int, tuple[tuple, TrialRecord]] = {}
        for folder in experiment.iterdir():
            found = read_trial(folder, spec, stopped)
            if found is None:
                continue
            rank, record = found
            # A trial started after the last snapshot of a killed run is started again on resume with the
            # same number; the newer (or finished) copy wins.
            if record.number not in best or rank > best[record.number][0]:
                best[record.number] = (rank, record)
        return [record for _, record in sorted(best.values(), key=lambda item: item[1].number)]


# -- reading trial folders -------------------------------------------------------------------------------------
def read_trial(folder: Path, spec: StudySpec, stopped: dict[int, int] | None = None
               ) -> tuple[tuple, TrialRecord] | None:
    """One Tune trial folder as a record, with a rank (finished first, then most recent) to pick duplicates.

    ``stopped``: the trial numbers MO-ASHA stopped (``_ray_moasha.stopped_trials``), read as PRUNED.
    """
    try:
        config = json.loads((folder / "params.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if NUMBER not in config:
        return None
    rows = read_results(folder / "result.json")
    failures = read_failures(folder / "error.txt")
    last_date = rows[-1].get("date", "") if rows else ""
    errored = (len(failures) > spec.ray.max_failures and failures[-1][0] >= last_date) if failures else False
    record = to_record(spec, config, rows, failed=errored, pruned=int(config[NUMBER]) in (stopped or {}),
                       reason=failures[-1][1] if failures and errored else "")
    return (record.state != "RUNNING", last_date), record


def read_results(path: Path) -> list[dict[str, Any]]:
    """The JSON lines Tune wrote; a half-written last line (a snapshot taken mid-write) is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_failures(path: Path) -> list[tuple[str, str]]:
    """``(date, last line of the error)`` per failure Tune logged in ``error.txt``."""
    if not path.exists():
        return []
    text = path.read_text()
    marks = list(FAILURE.finditer(text))
    failures = []
    for i, mark in enumerate(marks):
        body = text[mark.end(): marks[i + 1].start() if i + 1 < len(marks) else len(text)]
        lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
        failures.append((mark.group(2), lines[-1] if lines else "trial failed"))
    return failures


def to_record(spec: StudySpec, config: dict[str, Any], rows: list[dict[str, Any]], failed: bool = False,
              reason: str = "", pruned: bool = False) -> TrialRecord:
    """A trial from its Tune config and reported rows (epoch rows, then the final or diverged row).

    ``pruned``: Tune ended the trial without an error; without a final or diverged row, MO-ASHA stopped it.
    """
    baseline = bool(config.get(BASELINE))
    last = rows[-1] if rows else {}
    epoch_rows = [r for r in rows if "epoch" in r and not r.get(FINAL)]
    if last.get(DIVERGED):
        state, reason = "FAIL", last.get("fail_reason", "diverged")
        shown = epoch_rows[-1] if epoch_rows else {}
    elif last.get(FINAL):
        state, shown = "COMPLETE", last
    elif pruned and not failed:
        state, shown = "PRUNED", last
    else:
        state, shown = ("FAIL" if failed else "RUNNING"), last
    metrics = {k: v for k, v in shown.items() if k not in TUNE_KEYS and v is not None}
    metrics.pop(DIVERGED, None)
    epochs = int(metrics.get("epochs", max((int(r["epoch"]) for r in epoch_rows), default=0)))
    used = last.get(TRAIN_CONFIG) or trial_config(spec, config).to_dict()
    params = baseline_params(spec) if baseline else {n: config[n] for n in spec.space().names() if n in config}
    return TrialRecord(number=int(config[NUMBER]), state=state, is_baseline=baseline, params=params,
                       metrics=metrics, epochs=epochs, fail_reason=reason if state == "FAIL" else "",
                       duration_s=last.get("time_total_s"), config=used)
