"""Optuna samplers by study-file name. Shared by the Optuna backend and Ray's OptunaSearch."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import optuna

from .study_file import StudySpec

_CLASSES = {
    "tpe": optuna.samplers.TPESampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "nsga3": optuna.samplers.NSGAIIISampler,
    "gp": optuna.samplers.GPSampler,
    "random": optuna.samplers.RandomSampler,
}
# Samplers that accept ``constraints_func`` (random search ignores constraints by nature).
_CONSTRAINED = ("tpe", "nsga2", "nsga3", "gp")
CONSTRAINTS_ATTR = "constraints"


def sampler_class(name: str) -> type[optuna.samplers.BaseSampler]:
    return _CLASSES[name]


def constraint_values(spec: StudySpec, metrics: dict[str, Any]) -> list[float]:
    """Optuna's convention: each value <= 0 means satisfied. Stored on the trial as a user attribute."""
    if spec.constraints.min_accuracy is None:
        return []
    return [spec.constraints.min_accuracy - float(metrics[spec.accuracy_metric])]


def _constraints_func(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    return trial.user_attrs.get(CONSTRAINTS_ATTR, [0.0])


def make_sampler(spec: StudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study file's sampler with its options, seeded, constrained when the study has constraints."""
    kwargs: dict[str, Any] = {"seed": spec.seed if seed is None else seed, **spec.sampler.options}
    if spec.constraints.min_accuracy is not None and spec.sampler.name in _CONSTRAINED:
        kwargs["constraints_func"] = _constraints_func
    with warnings.catch_warnings():
        # Optuna 5 deprecates constraints_func for Trial.set_constraint (removal planned for 7.0), which Optuna 4
        # lacks; with optuna < 6 pinned the argument stays, and a notice per sampled trial is no use to the user.
        warnings.filterwarnings("ignore", message=".*constraints_func", category=FutureWarning)
        return sampler_class(spec.sampler.name)(**kwargs)
