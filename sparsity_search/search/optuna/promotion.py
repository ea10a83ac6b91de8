"""Promotion-type MO-ASHA on the Optuna backend: trials pause at rungs, free workers resume the best paused one.

Everything lives in the study's storage, so any number of workers and machines share the rungs and a resumed study
keeps them:

* Pausing. At a rung a trial stores its record (``rung_NNN``, as in the stopping form), then asks
  ``moasha.promotable`` with itself counted as paused. Unless the answer is itself it pauses: the trainer has
  already saved the checkpoint of that epoch (it saves before it reports), the trial gets ``paused_at`` = the rung
  epoch and ends PRUNED (users see it as PAUSED).
* Resuming. Before it asks the sampler for a new trial a worker asks ``promotable`` over the paused trials. It
  claims the answer by writing a study attribute ``promoted_<origin>_<rung>`` with its own token and reading it
  back; the winner enqueues a continuation: a trial with the origin's parameters, ``origin`` = the first attempt's
  number (so it trains in the origin's checkpoint folder and resumes at the rung epoch, as a heartbeat retry does)
  and ``continues`` = [origin, rung]. Continuations do not count against ``n_trials``; ``records_from_trials``
  shows a trial and its continuations as one row.
* The residual race. Two workers can both read their own token back when their writes and reads interleave
  (write A, read A, write B, read B); both then enqueue a continuation. So a continuation that starts while a
  lower-numbered, unfailed continuation of the same [origin, rung] exists drops out at once (``duplicate_of``,
  PRUNED, no epoch trained): the lower number always exists before the higher one is created, so exactly one
  trains. What is left: if the survivor fails and its heartbeat retry runs while a late duplicate starts, both
  may train in one folder (it needs a crash inside a race window of milliseconds).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ...moasha import promotable, rank_records
from ..study_file import StudySpec
from .storage import ORIGIN_ATTR, origin_number

PAUSED_ATTR = "paused_at"
CONTINUES_ATTR = "continues"
DUPLICATE_ATTR = "duplicate_of"
PROMOTED_PREFIX = "promoted_"
RUNG_PREFIX = "rung_"
RUNG_CONSTRAINT = "moasha_rung"  # what the sampler sees of a paused trial (_tell_sampler)


def promoting(spec: StudySpec) -> bool:
    return spec.early_stopping.kind == "moasha" and spec.early_stopping.mode == "promotion"


def is_continuation(t: FrozenTrial | optuna.Trial) -> bool:
    return CONTINUES_ATTR in t.user_attrs


def rung_table(trials: Iterable[FrozenTrial]) -> dict[int, list[tuple[int, list[float]]]]:
    """Every rung's records, keyed by origin number (a continuation's record is its origin's), in trial order."""
    rungs: dict[int, dict[int, list[float]]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if t.user_attrs.get("is_baseline") or DUPLICATE_ATTR in t.user_attrs:
            continue
        for key, values in t.user_attrs.items():
            if key.startswith(RUNG_PREFIX):
                rungs.setdefault(int(key[len(RUNG_PREFIX):]), {})[origin_number(t)] = values
    return {epoch: list(records.items()) for epoch, records in rungs.items()}


def _claimed(trials: list[FrozenTrial], study_attrs: dict[str, Any]) -> set[tuple[int, int]]:
    marks = {tuple(t.user_attrs[CONTINUES_ATTR]) for t in trials if is_continuation(t)}
    for key in study_attrs:
        if key.startswith(PROMOTED_PREFIX):
            origin, rung = key[len(PROMOTED_PREFIX):].split("_")
            marks.add((int(origin), int(rung)))
    return marks  # type: ignore[return-value]


def paused_trials(trials: list[FrozenTrial], study_attrs: dict[str, Any]) -> dict[int, FrozenTrial]:
    """The paused attempt of every trial waiting to be resumed, by origin number (claimed ones are not waiting)."""
    claimed = _claimed(trials, study_attrs)
    return {origin_number(t): t for t in trials
            if t.state == TrialState.PRUNED and PAUSED_ATTR in t.user_attrs
            and (origin_number(t), int(t.user_attrs[PAUSED_ATTR])) not in claimed}


def should_pause(spec: StudySpec, trial: optuna.Trial, epoch: int) -> bool:
    """Whether a trial that just stored its record at rung ``epoch`` pauses (else it trains on)."""
    study = trial.study
    trials = study.get_trials(deepcopy=False)
    me = origin_number(trial)
    paused = set(paused_trials(trials, study.user_attrs)) | {me}
    es = spec.early_stopping
    rungs = rung_table(trials)
    chosen = promotable(rungs, paused, spec.directions, es.reduction_factor, es.tie_break, spec.rung_limits())
    if chosen == (me, epoch):
        return False
    _tell_sampler(trial, rungs, epoch, spec)
    return True


def _tell_sampler(trial: optuna.Trial, rungs: dict[int, list[tuple[int, list[float]]]], epoch: int,
                  spec: StudySpec) -> None:
    """Give the sampler what the rung learned about a pausing trial, as a constraint violation (Optuna >= 5).

    TPE treats PRUNED trials of a multi-objective study as all equal (they have no intermediate values), and
    fills its "good" group with them, in trial order, while few trials have completed, which with promotion is
    most of the study. A positive constraint value makes it rank them after the complete ones instead, by that
    value: (1 + its rank at its rung as a fraction) / the rung epoch. Rung epochs grow by the reduction factor
    (>= 2), so every trial paused at a higher rung ranks before every trial paused at a lower one.
    """
    set_constraint = getattr(trial, "set_constraint", None)
    if set_constraint is None:  # Optuna < 5 has no per-trial constraints
        return
    es = spec.early_stopping
    order = rank_records(rungs[epoch], spec.directions, es.tie_break, limits=spec.rung_limits())
    set_constraint(RUNG_CONSTRAINT, (1.0 + order.index(origin_number(trial)) / len(order)) / epoch)


def queue_continuations(study: optuna.Study, spec: StudySpec, up_to: int) -> int:
    """Enqueue continuations of promotable paused trials until ``up_to`` wait (a population round fills all its
    members from them); the number waiting."""
    waiting = sum(is_continuation(t) for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    while waiting < up_to and promote(study, spec):
        waiting += 1
    return waiting


def promote(study: optuna.Study, spec: StudySpec) -> bool:
    """Claim the best promotable paused trial and enqueue its continuation; False when there is none to claim."""
    trials = study.get_trials(deepcopy=False)
    paused = paused_trials(trials, study.user_attrs)
    es = spec.early_stopping
    chosen = promotable(rung_table(trials), set(paused), spec.directions, es.reduction_factor, es.tie_break,
                        spec.rung_limits())
    if chosen is None:
        return False
    origin, rung = chosen
    key, token = f"{PROMOTED_PREFIX}{origin}_{rung}", f"{socket.gethostname()}:{os.getpid()}:{id(study)}"
    study.set_user_attr(key, token)
    if study.user_attrs.get(key) != token:  # another worker's write came later: it enqueues
        return False
    study.enqueue_trial(paused[origin].params, user_attrs={ORIGIN_ATTR: origin, CONTINUES_ATTR: [origin, rung]})
    return True


def duplicate_of(trial: optuna.Trial) -> int | None:
    """For a continuation that just started: the lower-numbered live continuation of the same rung, if any."""
    if not is_continuation(trial):
        return None
    mark = trial.user_attrs[CONTINUES_ATTR]
    for t in trial.study.get_trials(deepcopy=False):
        if (t.number < trial.number and t.user_attrs.get(CONTINUES_ATTR) == mark and t.state != TrialState.FAIL
                and DUPLICATE_ATTR not in t.user_attrs):
            return t.number
    return None


def drops_out(trial: optuna.Trial) -> bool:
    """Mark a continuation that another one already trains (the residual race) as its duplicate; True if so.
    The caller ends it PRUNED without training an epoch."""
    twin = duplicate_of(trial)
    if twin is None:
        return False
    trial.set_user_attr(DUPLICATE_ATTR, twin)
    return True


def chains(trials: Iterable[FrozenTrial]) -> list[list[FrozenTrial]]:
    """Each trial with its continuations (and their retries) in trial order, first attempt first; dropped
    duplicates left out. A heartbeat retry of a first attempt stays its own row, as without promotion, and the
    continuations join the latest such attempt of their origin."""
    rows: list[list[FrozenTrial]] = []
    row_of: dict[int, list[FrozenTrial]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if DUPLICATE_ATTR in t.user_attrs:
            continue
        if is_continuation(t) and origin_number(t) in row_of:
            row_of[origin_number(t)].append(t)
        else:
            rows.append([t])
            row_of[origin_number(t)] = rows[-1]
    return rows
