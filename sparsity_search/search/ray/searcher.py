"""The searcher: Ray's ``OptunaSearch`` with the study's sampler, objectives and define-by-run space.

``SearchSpace.suggest`` samples (conditions included). It hands out the lambda = 0 baseline as the first trial (no
sampled parameters, never shown to the sampler: 0 lies outside the searched range) and numbers trials in creation
order (``trial_number`` in each trial's config, baseline = 0). Its state (the Optuna study, the numbering) is saved
by Tune in the experiment folder. ``timeout`` stops *starting* trials, as on the Optuna backend: the searcher
answers ``FINISHED`` once it passes and running trials finish.
"""

from __future__ import annotations

import time
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from .. import _compat, _samplers
from ..study_file import StudySpec
from .trainable import BASELINE, DIVERGED, FINAL, NUMBER


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
                         sampler=spec.make_sampler())
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
        trials = _compat.searcher_trials(self)
        if trial_id == self._baseline_id or trial_id not in trials:
            return
        if result is not None and result.get(DIVERGED):
            result, error = None, True
        elif result is not None and not result.get(FINAL):
            # Ended without an error before its final report: only the MO-ASHA scheduler stops trials (no Tune
            # stopper or time budget is set). No values and no error is OptunaSearch's PRUNED.
            result, error = None, False
        if result is not None:
            trials[trial_id].set_user_attr(_samplers.CONSTRAINTS_ATTR, self._spec.constraint_values(result))
        super().on_trial_complete(trial_id, result=result, error=error)
