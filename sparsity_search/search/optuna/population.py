"""Population rounds for the Optuna backend: ask K trials, train those that can share a network together, tell each.

Each trial stays an ordinary Optuna trial (the same user attributes as ``objective.Objective.__call__`` writes, its own
``study.tell``), so storage, resume, Pareto export and queries cannot tell population trials from others.

* Grouping: trials with equal ``population_key`` and equal ``resumable_epoch`` (the epoch of the checkpoint in
  their folder, 0 for none) form one population; any other trial runs alone with ``train``.
* The baseline runs alone: a round whose first ask returns it trains only the baseline.
* Heartbeats cover all K trials for the whole round. Every member writes ``train``'s checkpoint into its trial's
  folder after each epoch, so a worker killed mid-round leaves its trials to be failed by heartbeat and retried
  from their last epoch (together again when the retries share a round, else each alone).
* Population-based training (``pbt`` in the study file): every group but the baseline trains with the study's PBT
  rules, even a group of one (its lambda and lr held per epoch, as a PBT member's are); exploit steps name the
  trial whose weights a member took (``weights_from``: its trial number), and each trial's row and ``config``
  attribute hold the learned ``piecewise`` config (``Objective.finish``). Its random draws are seeded by the
  study's seed and the group's first origin number, so a resumed population draws as the killed one would have.
* MO-ASHA: a member whose per-epoch report raises ``TrialPruned`` leaves the population and is told PRUNED at
  once. With promotion that is a pause: its checkpoint of the rung epoch is already in its folder (members save before they
  report). Continuations of paused trials wait in the queue; a round takes queued trials only (continuations,
  retries) while any wait, so continuations from one rung train together (same ``resumable_epoch``) instead of
  beside new trials that start at epoch 0.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from ...errors import ConfigError, DivergedError
from ...pbt import Rules
from ...population import population_key, resumable_epoch, train_population
from ...trainer import train
from ...training import Report
from .promotion import drops_out
from .storage import origin_number

if TYPE_CHECKING:
    from .objective import Objective

log = logging.getLogger(__name__)


def _groups(cfgs: list, trials: list[optuna.Trial]) -> list[list[int]]:
    """Indices of ``trials`` grouped by population key and resume epoch; the baseline forms its own group."""
    groups: dict[Any, list[int]] = {}
    alone: list[list[int]] = []
    for i, (cfg, trial) in enumerate(zip(cfgs, trials)):
        try:
            key = None if trial.user_attrs.get("is_baseline") else (population_key(cfg), resumable_epoch(cfg))
        except ConfigError:  # a checkpoint of another architecture: ``train`` fails the trial with this error
            key = None
        if key is None:
            alone.append([i])
        else:
            groups.setdefault(key, []).append(i)
    return alone + list(groups.values())


def _told_when_pruned(study: optuna.Study, trial: optuna.Trial, report: Report, told: set[int]) -> Report:
    """``report``, telling the trial PRUNED as soon as MO-ASHA stops or pauses it rather than at the round's end
    (its number joins ``told``): a worker killed later in the round must not leave a decided pause RUNNING, for
    the heartbeat to retry it."""

    def told_report(epoch: int, metrics: dict[str, Any]) -> None:
        try:
            report(epoch, metrics)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            told.add(trial.number)
            raise

    return told_report


def _pbt_rules(objective: "Objective", trials: list[optuna.Trial]) -> Rules | None:
    """The study's PBT rules for this group, or None (no ``pbt``, or the baseline, which trains alone as always)."""
    spec = objective.spec
    if spec.pbt is None or trials[0].user_attrs.get("is_baseline"):
        return None
    return spec.pbt.rules(spec.space(), spec.objective_names, spec.directions, spec.rung_limits(),
                          seed=spec.seed + origin_number(trials[0]))


def _train_group(study: optuna.Study, objective: "Objective", cfgs: list, trials: list[optuna.Trial],
                 told: set[int]) -> list[Any]:
    """Results (rows or exceptions) of one group, in order."""
    reports = [_told_when_pruned(study, t, objective.report_for(t, c), told) for t, c in zip(trials, cfgs)]
    data = objective.data_for(cfgs[0])
    rules = _pbt_rules(objective, trials)
    if len(cfgs) == 1 and rules is None:
        try:
            return [train(cfgs[0], reports[0], data=data)]
        except Exception as exc:  # noqa: BLE001 - told to the trial below, like study.optimize does
            return [exc]
    try:
        return train_population(cfgs, reports, data=data, pbt=rules, labels=[t.number for t in trials])
    except Exception as exc:  # noqa: BLE001 - the whole population failed (e.g. out of memory)
        return [exc] * len(cfgs)


def _tell(study: optuna.Study, objective: "Objective", trial: optuna.Trial, result: Any) -> Exception | None:
    """Tell the trial its outcome; return an unexpected exception for the caller to raise after the round."""
    if isinstance(result, dict):
        study.tell(trial, objective.finish(trial, result))
        return None
    if isinstance(result, DivergedError):
        objective.failed(trial, result)
        study.tell(trial, state=TrialState.FAIL)
        return None
    study.tell(trial, state=TrialState.FAIL)
    return result


def _ask(study: optuna.Study, size: int, budget_left: int | None) -> list[optuna.Trial]:
    """Up to ``size`` trials (no more than ``budget_left``; only queued ones while any wait), or the baseline alone
    when it comes first. A continuation that another worker already trains is told PRUNED here
    (``promotion.drops_out``)."""
    queued = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    want = size if budget_left is None else min(size, budget_left)
    want = max(min(want, queued) if queued else want, 1)
    trials: list[optuna.Trial] = []
    for _ in range(want):
        trial = study.ask()
        if drops_out(trial):
            study.tell(trial, state=TrialState.PRUNED)
            continue
        trials.append(trial)
        if trials[0].user_attrs.get("is_baseline"):
            break
    return trials


def run_population_round(study: optuna.Study, objective: "Objective", size: int, budget_left: int | None) -> None:
    """Ask up to ``size`` trials (no more than ``budget_left``), train them grouped, and tell every one."""
    if budget_left is not None and budget_left < 1:
        return
    trials = _ask(study, size, budget_left)
    if not trials:
        return
    try:
        cfgs = [objective.start(t) for t in trials]
    except Exception:
        for t in trials:  # as study.optimize does for an objective that raises: the trial fails
            study.tell(t, state=TrialState.FAIL)
        raise
    results: list[Any] = [None] * len(trials)
    told: set[int] = set()  # stopped or paused by MO-ASHA: told PRUNED during the round
    with contextlib.ExitStack() as beats:
        for t, c in zip(trials, cfgs):
            beats.enter_context(objective.heartbeat(t, c, rdb=True))
        for group in _groups(cfgs, trials):
            if len(group) > 1:
                log.info("training trials %s as one population", [trials[i].number for i in group])
            outcome = _train_group(study, objective, [cfgs[i] for i in group], [trials[i] for i in group], told)
            for i, result in zip(group, outcome):
                results[i] = result
    errors = [e for t, r in zip(trials, results)
              if t.number not in told and (e := _tell(study, objective, t, r)) is not None]
    if errors:
        raise errors[0]
