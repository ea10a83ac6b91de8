"""Opening an Optuna study for a study file, and reading its trials back as backend-neutral records.

No torch here: ``pareto``, ``status`` and ``spec_in_storage`` read studies through this module and ``storage``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.trial import FrozenTrial, TrialState

from ...errors import ConfigError
from ..records import TrialRecord, baseline_params
from ..recorded import check_matches
from ..study_file import StudySpec, parse_study
from .promotion import PAUSED_ATTR, chains, is_continuation
from .storage import open_storage, quiet_experimental, storage_exists

# Optuna logs each failed trial with a traceback; a diverged trial is an expected outcome, reported in one line.
optuna.logging.set_verbosity(optuna.logging.ERROR)

SPEC_ATTR = "sparsity_search_spec"
LAUNCH_ATTR = "sparsity_search_launch"  # the run flags it was launched with (``search.recorded``)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
BASELINE_WAIT_S = 2.0  # how long a launch that did not create the study waits for its creator's baseline


def open_optuna_study(spec: StudySpec, storage_url: str, *, create: bool, worker: bool = False,
                      launch: dict[str, Any] | None = None) -> optuna.Study:
    """Load the study, or create it with the spec's directions, metric names and sampler; the spec (and the run
    flags ``launch``) are kept in the study. A study file that disagrees with the recorded spec on what shapes the
    trials is a one-line error (``recorded.check_matches``).

    Only one process can create a study (a second ``create_study`` raises), and that one queues the baseline at
    once: two launches started together on one storage queue one baseline. Workers open the storage with
    heartbeats, so their trials are failed and retried if they die.
    """
    beat = (spec.heartbeat.interval, spec.heartbeat.grace_period) if worker else None
    storage = open_storage(storage_url, beat)
    sampler = spec.make_sampler()
    if not create:
        try:
            study = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler)
        except KeyError:
            raise ConfigError(f"no study named {spec.name!r} in {storage_url}") from None
        if worker:
            _check_recorded(study, spec, storage_url)
        return study
    try:
        study = optuna.create_study(study_name=spec.name, storage=storage, directions=spec.directions,
                                    sampler=sampler)
        if spec.baseline:
            study.enqueue_trial({}, user_attrs={"is_baseline": True})
    except DuplicatedStudyError:
        study = optuna.load_study(study_name=spec.name, storage=storage, sampler=sampler)
    wanted = [optuna.study.StudyDirection[d.upper()] for d in spec.directions]
    if list(study.directions) != wanted:
        raise ConfigError(f"study {spec.name!r} already exists in {storage_url} with other objectives",
                          field="objectives")
    _check_recorded(study, spec, storage_url)
    study.set_user_attr(SPEC_ATTR, spec.to_dict())
    if launch is not None:
        study.set_user_attr(LAUNCH_ATTR, launch)
    if study.metric_names is None:  # optuna-dashboard and the `optuna` command show them instead of "Objective 0"
        with quiet_experimental():
            study.set_metric_names(spec.objective_names)
    return study


def _check_recorded(study: optuna.Study, spec: StudySpec, storage_url: str) -> None:
    data = study.user_attrs.get(SPEC_ATTR)
    if data is None:
        return
    try:
        recorded = parse_study(data, f"{storage_url} ({spec.name})", Path.cwd())
    except ConfigError:  # recorded by a version whose study files this one no longer reads: nothing to compare
        return
    check_matches(spec, recorded, storage_url)


def launch_in_storage(name: str, storage_url: str) -> dict[str, Any] | None:
    """The run flags a study was launched with, from its storage; None when the storage has no such study."""
    if not storage_exists(storage_url):
        return None
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    except KeyError:
        return None
    return dict(study.user_attrs.get(LAUNCH_ATTR) or {})


def spec_in_storage(name: str, storage_url: str) -> dict[str, Any]:
    """The study file a study was launched with, read back from its storage (for commands given only a name)."""
    try:
        if not storage_exists(storage_url):
            raise KeyError(name)
        study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    except KeyError:
        raise ConfigError(f"no study named {name!r} in {storage_url}") from None
    spec = study.user_attrs.get(SPEC_ATTR)
    if spec is None:
        raise ConfigError(f"study {name!r} in {storage_url} was not launched by sparsity-search")
    return spec


def finished_count(study: optuna.Study) -> int:
    """Finished trials that count against ``n_trials``: a promoted trial's continuations do not."""
    return sum(not is_continuation(t) for t in study.get_trials(deepcopy=False, states=FINISHED))


def ensure_baseline(study: optuna.Study, spec: StudySpec) -> None:
    """Make sure the lambda = 0 baseline is queued; it is asked before any sampled trial.

    The process that created the study queued it (``open_optuna_study``). Another one waits a moment for it before
    queueing one itself: that happens only when the creator died between creating the study and queueing it.
    """
    if not spec.baseline:
        return
    for wait in (0.0, BASELINE_WAIT_S):
        time.sleep(wait)
        if any(t.user_attrs.get("is_baseline") for t in study.get_trials(deepcopy=False)):
            return
    study.enqueue_trial({}, user_attrs={"is_baseline": True})


def record_from_trial(spec: StudySpec, t: FrozenTrial) -> TrialRecord:
    """One Optuna trial as a ``TrialRecord``, from the user attributes ``Objective`` stored on it."""
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


def records_from_trials(spec: StudySpec, trials: list[FrozenTrial]) -> list[TrialRecord]:
    """Every trial as a record; a promoted trial and its continuations are one record with its whole history:
    the first attempt's number and parameters, the latest attempt's state and metrics (PAUSED when it paused at
    a rung), the epochs of all attempts, and their durations summed."""
    return [_record_from_chain(spec, chain) for chain in chains(trials)]


def _record_from_chain(spec: StudySpec, chain: list[FrozenTrial]) -> TrialRecord:
    first, last = chain[0], chain[-1]
    record = record_from_trial(spec, last)
    if last.state == TrialState.PRUNED and PAUSED_ATTR in last.user_attrs:
        record.state = "PAUSED"
    if len(chain) == 1:
        return record
    epochs = {k: v for t in chain for k, v in t.user_attrs.items() if k.startswith("epoch_")}
    if "result" not in last.user_attrs and epochs:
        record.metrics = epochs[max(epochs)]
    durations = [t.duration.total_seconds() for t in chain if t.duration is not None]
    record.number, record.params = first.number, dict(first.params)
    record.epochs = int(record.metrics.get("epochs", len(epochs)))
    record.duration_s = sum(durations) if durations else None
    return record
