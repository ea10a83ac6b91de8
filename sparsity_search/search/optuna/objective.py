"""Optuna backend: one multi-objective study in an Optuna storage, run by one or many worker processes.

The storage stays a plain Optuna storage (the stock ``optuna`` CLI and optuna-dashboard read it): everything this
toolkit adds lives in user attributes: ``is_baseline``, ``config`` (the resolved TrainConfig), ``epoch_NNN``
(per-epoch metrics), ``result`` (the trainer's final row), ``fail_reason`` and the sampler's ``constraints``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from ...config import TrainConfig, save_config
from ...data import DataSplits, load_data
from ...devices import resolve_device
from ...errors import ConfigError, DivergedError, SparsitySearchError
from ...trainer import train
from .. import _samplers
from .._base import RunSettings, SearchBackend
from .population import run_population_round
from .rungs import moasha_hook
from ..records import TrialRecord, baseline_params
from .storage import ORIGIN_ATTR, TrialHeartbeat, fail_stale_trials, is_journal, open_storage, origin_number
from ..study_file import StudySpec

log = logging.getLogger(__name__)
# Optuna logs each failed trial with a traceback; a diverged trial is an expected outcome, reported in one line.
optuna.logging.set_verbosity(optuna.logging.ERROR)

SPEC_ATTR = "sparsity_search_spec"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WAIT_S = 2.0  # how often a worker with nothing to start re-reads the storage
# TrainConfig fields that decide which tensors load_data builds; trials sharing them share one load.
DATA_KEYS = ("dataset", "data_dir", "download", "val_fraction", "test_fraction", "train_subset", "seed", "model")

def open_study(spec: StudySpec, storage_url: str, *, create: bool, worker: bool = False) -> optuna.Study:
    """Load the study, or create it with the spec's directions and sampler; the spec is kept in the study.

    Workers open the storage with heartbeats, so their trials are failed and retried if they die.
    """
    beat = (spec.heartbeat.interval, spec.heartbeat.grace_period) if worker else None
    storage = open_storage(storage_url, beat)
    sampler = _samplers.make_sampler(spec)
    if create:
        study = optuna.create_study(study_name=spec.name, storage=storage, directions=spec.directions,
                                    sampler=sampler, load_if_exists=True)
        wanted = [optuna.study.StudyDirection[d.upper()] for d in spec.directions]
        if list(study.directions) != wanted:
            raise ConfigError(f"study {spec.name!r} already exists in {storage_url} with other objectives",
                              field="objectives")
        study.set_user_attr(SPEC_ATTR, spec.to_dict())
        return study
    try:
        return optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler)
    except KeyError:
        raise ConfigError(f"no study named {spec.name!r} in {storage_url}") from None


def spec_in_storage(name: str, storage_url: str) -> dict[str, Any]:
    """The study file a study was launched with, read back from its storage (for commands given only a name)."""
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    except KeyError:
        raise ConfigError(f"no study named {name!r} in {storage_url}") from None
    spec = study.user_attrs.get(SPEC_ATTR)
    if spec is None:
        raise ConfigError(f"study {name!r} in {storage_url} was not launched by sparsity-search")
    return spec


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def ensure_baseline(study: optuna.Study, spec: StudySpec) -> None:
    """Queue the lambda = 0 baseline once; it is asked before any sampled trial."""
    if spec.baseline and not any(t.user_attrs.get("is_baseline") for t in study.get_trials(deepcopy=False)):
        study.enqueue_trial({}, user_attrs={"is_baseline": True})


class Objective:
    """Optuna objective: sample (or take the baseline), train with checkpoints, record metrics on the trial."""

    def __init__(self, spec: StudySpec, settings: RunSettings):
        self.spec, self.settings = spec, settings
        self._data: dict[tuple, DataSplits] = {}

    def config_for(self, trial: optuna.Trial) -> TrainConfig:
        """The resolved config of this trial, with its own checkpoint folder (shared by its retry)."""
        if trial.user_attrs.get("is_baseline"):
            cfg = self.spec.baseline_config()
        else:
            cfg = self.spec.trial_config(self.spec.space().suggest(trial))
        trial_dir = self.settings.results_dir / "trials" / f"{origin_number(trial):05d}"
        cfg = cfg.replace(checkpoint_dir=str(trial_dir), resume=True, device=self.settings.device,
                          threads=self.settings.threads or cfg.threads)
        save_config(cfg, trial_dir / "config.yaml")
        trial.set_user_attr("config", cfg.to_dict())
        return cfg

    def data_for(self, cfg: TrainConfig) -> DataSplits:
        key = tuple(getattr(cfg, k) for k in DATA_KEYS) + (cfg.device,)
        if key not in self._data:
            self._data = {key: load_data(cfg, resolve_device(cfg.device))}
        return self._data[key]

    def start(self, trial: optuna.Trial) -> TrainConfig:
        """Mark the trial as this worker's and resolve its config (both stored on the trial)."""
        trial.set_user_attr(ORIGIN_ATTR, origin_number(trial))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        return self.config_for(trial)

    def report_for(self, trial: optuna.Trial, cfg: TrainConfig) -> Callable[[int, dict[str, Any]], None]:
        """The trainer's per-epoch callback: store the epoch's metrics, then let MO-ASHA stop the trial."""
        stop_early = moasha_hook(self.spec, cfg.epochs)

        def report(epoch: int, metrics: dict[str, Any]) -> None:
            trial.set_user_attr(f"epoch_{epoch:03d}", metrics)
            if stop_early is not None:
                stop_early(trial, epoch, metrics)

        return report

    def heartbeat(self, trial: optuna.Trial, cfg: TrainConfig, rdb: bool = False) -> contextlib.AbstractContextManager:
        """The trial's heartbeat file on journal storages; with ``rdb``, Optuna's own heartbeat thread (which
        ``study.optimize`` starts by itself, but trials told by hand need)."""
        if is_journal(self.settings.storage):
            return TrialHeartbeat(Path(cfg.checkpoint_dir), self.spec.heartbeat.interval)
        if rdb:
            from optuna.storages._heartbeat import get_heartbeat_thread

            return get_heartbeat_thread(trial._trial_id, trial.study._storage)
        return contextlib.nullcontext()

    def failed(self, trial: optuna.Trial, exc: DivergedError) -> None:
        trial.set_user_attr("fail_reason", str(exc))
        log.warning("trial %d failed: %s", trial.number, exc)

    def finish(self, trial: optuna.Trial, row: dict[str, Any]) -> tuple[float, ...]:
        """Store the result row on the trial; return its objective values."""
        metrics = {k: v for k, v in row.items() if k != "config"}
        trial.set_user_attr("result", metrics)
        trial.set_user_attr(_samplers.CONSTRAINTS_ATTR, _samplers.constraint_values(self.spec, metrics))
        return tuple(float(metrics[name]) for name in self.spec.objective_names)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        cfg = self.start(trial)
        try:
            with self.heartbeat(trial, cfg):
                row = train(cfg, self.report_for(trial, cfg), data=self.data_for(cfg))
        except DivergedError as exc:
            self.failed(trial, exc)
            raise
        return self.finish(trial, row)


def run_worker(spec: StudySpec, settings: RunSettings,
               on_trial: Callable[[optuna.Study], None] | None = None, salt: int = 0) -> None:
    """One worker's loop, until the study counts ``n_trials`` finished (complete or pruned) trials or the
    timeout passes. Counting happens in storage, so a resumed study never reruns a finished trial. While the
    trials still missing are all running elsewhere, the worker waits: they finish, or their worker died and
    the heartbeat fails them, and their retry (queued with the same parameters) is picked up here. Workers
    that finish at the same instant may each start one more trial: the budget can be exceeded by workers - 1.
    With a population size K > 1 (``--population`` or the study file's ``population.size``) each round asks up to
    K trials and trains them together (``_population.run_population_round``)."""
    study = open_study(spec, settings.storage, create=False, worker=True)
    # A sampler seeded only by the study's seed would propose the same points again after a resume, and in
    # every concurrent worker: offset it by the trials already stored (and a per-process salt for workers).
    study.sampler = _samplers.make_sampler(spec, seed=spec.seed + len(study.get_trials(deepcopy=False)) + salt)
    budget = settings.n_trials or spec.n_trials
    timeout = settings.timeout or spec.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    objective = Objective(spec, settings)
    population = settings.population or spec.population.size

    def covered(s: optuna.Study) -> bool:
        running = len(s.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        return budget is not None and finished_count(s) + running >= budget

    def fail_stale() -> None:
        for number in fail_stale_trials(study, settings.storage, spec.heartbeat.grace_period):
            log.warning("trial %d lost its worker: failed, and queued once more from its checkpoint", number)

    def failing(s: optuna.Study) -> bool:  # every trial failing (a broken setting) must not loop forever
        return budget is not None and len(s.get_trials(deepcopy=False, states=(TrialState.FAIL,))) >= budget

    def after_trial(s: optuna.Study, _: FrozenTrial) -> None:
        fail_stale()
        if on_trial is not None:
            on_trial(s)
        if covered(s) or failing(s):
            s.stop()

    while deadline is None or time.monotonic() < deadline:
        fail_stale()  # before counting: a dead worker's trial becomes a queued retry
        if budget is not None and finished_count(study) >= budget:
            return
        if failing(study):
            raise SparsitySearchError(f"study {spec.name!r}: as many trials failed as the budget asks for "
                                      f"({budget}); `status` shows why")
        if covered(study):
            time.sleep(min(WAIT_S, spec.heartbeat.interval))
            continue
        if population > 1:
            running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            run_population_round(study, objective, population,
                                 None if budget is None else budget - finished_count(study) - running)
            fail_stale()
            if on_trial is not None:
                on_trial(study)
            continue
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        study.optimize(objective, timeout=remaining, callbacks=[after_trial], catch=(DivergedError,),
                       gc_after_trial=False)


def to_record(t: FrozenTrial, spec: StudySpec) -> TrialRecord:
    baseline = bool(t.user_attrs.get("is_baseline"))
    epochs = sorted(k for k in t.user_attrs if k.startswith("epoch_"))
    metrics = t.user_attrs.get("result") or (t.user_attrs[epochs[-1]] if epochs else {})
    reason = t.user_attrs.get("fail_reason", "")
    if t.state == TrialState.FAIL and not reason:
        reason = "worker lost (no heartbeat) or crashed"
    duration = t.duration.total_seconds() if t.duration is not None else None
    return TrialRecord(number=t.number, state=t.state.name, is_baseline=baseline,
                       params=baseline_params(spec) if baseline else dict(t.params), metrics=metrics,
                       epochs=int(metrics.get("epochs", len(epochs))), fail_reason=reason, duration_s=duration,
                       config=t.user_attrs.get("config", {}))


class OptunaBackend(SearchBackend):
    name = "optuna"

    def run(self, spec: StudySpec, settings: RunSettings) -> None:
        from . import launcher

        study = open_study(spec, settings.storage, create=True)
        ensure_baseline(study, spec)
        launcher.run_workers(spec, settings, study)

    def records(self, spec: StudySpec, settings: RunSettings) -> list[TrialRecord]:
        study = open_study(spec, settings.storage, create=False)
        return [to_record(t, spec) for t in study.get_trials(deepcopy=False)]

