"""MO-ASHA for the Optuna backend: rung records live on the trials in the study's storage.

At each rung epoch a trial writes its objective vector to its own user attribute ``rung_NNN`` (no shared
read-modify-write, so any number of workers and machines can do it at once, and a resumed study keeps them),
then reads every trial's record at that rung and asks ``moasha.should_continue``. A trial that must stop raises
``optuna.TrialPruned`` from the trainer's ``report`` callback: it is recorded as PRUNED with the epoch it reached
and its metrics at that point. The baseline is never stopped: every reduction is measured against it.
With ``early_stopping.mode: promotion`` the trial pauses instead, unless it is the one to promote right now
(``promotion.should_pause``); a free worker resumes it later (``promotion``).
"""

from __future__ import annotations

from typing import Any, Callable

import optuna

from ...moasha import rung_epochs, should_continue
from ..study_file import StudySpec
from .promotion import PAUSED_ATTR, promoting, should_pause
from .storage import origin_number

EpochHook = Callable[[optuna.Trial, int, dict[str, Any]], None]


def rung_key(epoch: int) -> str:
    return f"rung_{epoch:03d}"


def moasha_hook(spec: StudySpec, max_epochs: int) -> EpochHook | None:
    """The per-epoch callback that applies MO-ASHA, or None when the study does not stop early."""
    es = spec.early_stopping
    if es.kind != "moasha":
        return None
    rungs = set(rung_epochs(es.min_epochs, es.reduction_factor, es.max_epochs or max_epochs))
    pause = promoting(spec)

    def hook(trial: optuna.Trial, epoch: int, metrics: dict[str, Any]) -> None:
        if epoch not in rungs or trial.user_attrs.get("is_baseline"):
            return
        key = rung_key(epoch)
        me = origin_number(trial)
        trial.set_user_attr(key, [float(metrics[name]) for name in spec.objective_names])
        if pause:
            if should_pause(spec, trial, epoch):
                trial.set_user_attr(PAUSED_ATTR, epoch)
                raise optuna.TrialPruned(f"MO-ASHA paused the trial at epoch {epoch}")
            return
        records: dict[int, list[float]] = {}
        for t in trial.study.get_trials(deepcopy=False):
            if key in t.user_attrs and not t.user_attrs.get("is_baseline"):
                records[origin_number(t)] = t.user_attrs[key]  # a retry replaces its original's record
        if not should_continue(list(records.items()), me, spec.directions, es.reduction_factor, es.tie_break):
            trial.set_user_attr("pruned_at_epoch", epoch)
            raise optuna.TrialPruned(f"MO-ASHA stopped the trial at epoch {epoch}")

    return hook
