"""Promotion-type MO-ASHA on the Ray backend: trials pause at rungs, and a freed slot resumes the best paused one.

The same rule as the Optuna backend's (``moasha.promotable``, constraint-aware through ``StudySpec.rung_limits``),
with Tune's trial states instead of a shared storage:

* Pausing. At a rung a trial records its objective vector (as in the stopping form) and asks ``promotable`` with
  itself counted as paused, beside the trials already waiting. Unless the answer is itself, the scheduler answers
  PAUSE: Tune saves the trial, which for a function trainable is the checkpoint reported with that epoch (the
  trainable reports one at every rung epoch, ``trainable``), then stops it and frees its resources (with
  ``reuse_actors`` the actor waits in Tune's cache; the next trial on it ends the paused one's training thread).
* Slots. ``max_concurrent`` counts trials that hold a slot (``limiter.RunningLimiter``): a paused trial frees its
  slot (``on_pause``). The best promotable paused trial takes a slot back (``on_unpause``) as soon as it is
  promotable, so no new trial is suggested into the slot it waits for.
* Resuming. ``choose_trial_to_run`` returns that trial once fewer than ``max_concurrent`` trials are pending or
  running and its rows up to the rung have reached the results folder (``_synced``); Tune restarts it,
  ``tune.get_checkpoint()`` hands the trainable the rung checkpoint, and the trainer trains on from the epoch
  after the rung in the same trial folder (one row, its whole history). Otherwise it
  returns the oldest pending (new) trial; a paused trial that is not promotable is never returned.
* Ending. Once the searcher is finished (``num_samples`` trials created, the baseline included, or its timeout)
  and no trial is pending or running, nothing can become promotable any more (only a rung arrival changes a
  ranking), so the scheduler stops the trials still paused: Tune ends them, the searcher tells Optuna they were
  PRUNED, and they move from ``paused`` to ``stopped`` in ``moasha.json``. Records show a waiting trial as PAUSED
  and an ended one as PRUNED, each with its rung epoch and that epoch's metrics.
* Restore. ``moasha.json`` keeps the paused and ended trials. ``Tuner.restore`` requeues every unfinished trial as
  PENDING, and Tune's snapshot still has the ended ones as PAUSED; the first ``choose_trial_to_run``, before Tune
  starts any pending trial, puts the paused ones back to PAUSED and stops the ended ones again, and forgets the
  numbers of trials the snapshot lost (``_settle_restored``). So a restored experiment that had ended starts
  nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from ...moasha import promotable
from .. import _compat
from .folders import read_results
from .limiter import RunningLimiter
from .scheduler import MOASHAScheduler
from .trainable import NUMBER


class PromotionScheduler(MOASHAScheduler):
    """Pauses a trial at a rung unless it is the one to promote; runs promotable paused trials before new ones."""

    def _decide(self, tune_controller: Any, trial: Any, number: int, epoch: int) -> str:
        if self._promotable(also_paused=number) == (number, epoch):
            decision = TrialScheduler.CONTINUE  # what pausing it and resuming it at once would do
        else:
            self._paused[number] = epoch
            decision = TrialScheduler.PAUSE
        self._reserve(tune_controller, _by_number(tune_controller))  # the new record may make another promotable
        return decision

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        trials = _by_number(tune_controller)
        self._settle_restored(tune_controller, trials)
        active = sum(t.status in (Trial.PENDING, Trial.RUNNING) for t in tune_controller.get_trials())
        chosen = self._promotable()
        if chosen is not None and active < _limiter(tune_controller).max_concurrent and _synced(trials[chosen[0]]):
            trial = trials[chosen[0]]
            del self._paused[chosen[0]]
            self._save()
            _limiter(tune_controller).on_unpause(trial.trial_id)
            self._reserve(tune_controller, trials)
            return trial
        if chosen is None and self._paused and not active and tune_controller.search_alg.is_finished():
            self._end(tune_controller, trials)
            return None
        return next((t for t in tune_controller.get_trials() if t.status == Trial.PENDING), None)

    def debug_string(self) -> str:
        return f"MO-ASHA promotion: {len(self._paused)} paused, {len(self._stopped)} ended at rungs"

    def _promotable(self, also_paused: int | None = None) -> tuple[int, int] | None:
        es = self._spec.early_stopping
        paused = set(self._paused) | ({also_paused} if also_paused is not None else set())
        rungs = {epoch: list(records.items()) for epoch, records in self._rungs.items()}
        return promotable(rungs, paused, self._spec.directions, es.reduction_factor, es.tie_break,  # type: ignore
                          self._spec.rung_limits())

    def _reserve(self, tune_controller: Any, trials: dict[int, Any]) -> None:
        """Tell the limiter which paused trials hold no slot: all but the one to promote next."""
        limiter, chosen = _limiter(tune_controller), self._promotable()
        for number in self._paused:
            if number in trials:
                holds = chosen is not None and chosen[0] == number
                (limiter.on_unpause if holds else limiter.on_pause)(trials[number].trial_id)

    def _settle_restored(self, tune_controller: Any, trials: dict[int, Any]) -> None:
        """After ``Tuner.restore``, before Tune starts any pending trial: Tune requeued every unfinished trial as
        PENDING, the paused ones included, and the ones ``_end`` stopped too (``stop_trial`` on a trial without an
        actor does not reach Tune's snapshot). Paused ones go back to PAUSED, ended ones are stopped again. A number
        whose trial Tune's snapshot lost, or had before its first result, is forgotten: the searcher creates that
        number again, and the new trial starts over and decides at its rungs."""
        lost = [n for n in self._paused.keys() | self._stopped.keys()
                if n not in trials or (trials[n].status == Trial.PENDING and not trials[n].has_reported_at_least_once)]
        for number in lost:
            self._paused.pop(number, None)
            self._stopped.pop(number, None)
            for records in self._rungs.values():
                records.pop(number, None)
        for number, trial in trials.items():
            if trial.status == Trial.PENDING and number in self._paused:
                _compat.repause_trial(tune_controller, trial)
            elif trial.status == Trial.PENDING and number in self._stopped:
                tune_controller.stop_trial(trial)
        if lost:
            self._save()

    def _end(self, tune_controller: Any, trials: dict[int, Any]) -> None:
        """Stop every trial still paused: nothing will promote it any more."""
        ending, self._paused = self._paused, {}
        self._stopped.update(ending)
        self._save()
        for number in ending:
            if number in trials and trials[number].status == Trial.PAUSED:
                tune_controller.stop_trial(trials[number])


def _synced(trial: Any) -> bool:
    """Whether the trial's ``result.json`` in the results folder has every row of the driver's staging copy. Tune
    writes the staging copy and copies it to the results folder with its snapshots (every 2 s); a restarted trial's
    logger first copies the results folder's back over it, so a trial resumed before the copy caught up would lose
    the rows in between. (After a restore the staging copy starts empty: nothing more can arrive.)"""
    staged = read_results(Path(trial.local_path) / "result.json")
    return len(read_results(Path(trial.path) / "result.json")) >= len(staged)


def _by_number(tune_controller: Any) -> dict[int, Any]:
    """Tune's trials by study trial number (the baseline included)."""
    return {t.config[NUMBER]: t for t in tune_controller.get_trials() if NUMBER in t.config}


def _limiter(tune_controller: Any) -> RunningLimiter:
    return tune_controller.search_alg.searcher
