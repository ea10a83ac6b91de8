"""Optuna samplers by study-file name, and the check of their options. Shared by the Optuna backend and Ray's
OptunaSearch. A leaf: it knows sampler names, options and Optuna, no study file.

Options are checked against the chosen sampler's constructor (its parameter names and annotations) when the study
file is parsed: an option the constructor would reject, or would take and fail on only once trials are sampled
(``n_startup_trials: abc``), is an error before anything is stored.
"""

from __future__ import annotations

import builtins
import collections.abc
import inspect
import typing
import warnings
from typing import Any, Literal, Sequence

import optuna
from pydantic import ConfigDict, PydanticSchemaGenerationError, TypeAdapter, ValidationError

SamplerName = Literal["tpe", "nsga2", "nsga3", "gp", "random"]
SAMPLERS: dict[SamplerName, type[optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "nsga3": optuna.samplers.NSGAIIISampler,
    "gp": optuna.samplers.GPSampler,
    "random": optuna.samplers.RandomSampler,
}
# Samplers that accept ``constraints_func`` (random search ignores constraints by nature).
_CONSTRAINED = ("tpe", "nsga2", "nsga3", "gp")
# Constructor arguments make_sampler sets itself: never options.
_OURS = ("self", "seed", "constraints_func")
CONSTRAINTS_ATTR = "constraints"
# YAML gives plain values: an option typed as a Python object (a Callable, a BaseMutation) fails the check.
_CHECK = ConfigDict(strict=True, arbitrary_types_allowed=True)


class _Names(dict):
    """Names in an annotation: the module's own, builtins, typing's; Optuna's modules import some names only for
    type checkers, and those stand for opaque classes (no YAML value is an instance of one)."""

    def __init__(self, module: dict[str, Any]):
        super().__init__(Callable=collections.abc.Callable, Sequence=collections.abc.Sequence, Any=typing.Any)
        self.module = module

    def __missing__(self, name: str) -> Any:
        if name in self.module:
            return self.module[name]
        return getattr(builtins, name, None) or type(name, (), {})


def _annotation(func: Any, text: Any) -> Any:
    """A parameter's annotation as a type (Optuna writes them as strings: ``from __future__ import annotations``)."""
    if not isinstance(text, str):
        return text
    return eval(text, {"__builtins__": {}}, _Names(func.__globals__))  # noqa: S307 - Optuna's annotation text


def option_problem(name: SamplerName, options: dict[str, Any]) -> tuple[str, str] | None:
    """The first option the ``name`` sampler's constructor would not take, as ``(option, why)``; None if all fit."""
    cls = SAMPLERS[name]
    params = inspect.signature(cls.__init__).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, value in options.items():
        param = params.get(key)
        if key in _OURS or (param is None and not open_ended):
            return key, f"{cls.__name__} has no option {key!r}"
        if param is None or param.annotation is inspect.Parameter.empty:
            continue
        try:
            TypeAdapter(_annotation(cls.__init__, param.annotation), config=_CHECK).validate_python(value)
        except ValidationError:
            return key, f"{cls.__name__} expects {param.annotation}, got {value!r}"
        except (PydanticSchemaGenerationError, SyntaxError, TypeError, AttributeError):
            continue  # an annotation this check cannot read: the constructor decides
    return None


def make_sampler(name: SamplerName, options: dict[str, Any], seed: int,
                 constraints_func: Any = None) -> optuna.samplers.BaseSampler:
    """The ``name`` sampler with its options, seeded; ``constraints_func`` is given only to samplers that take it."""
    kwargs: dict[str, Any] = {"seed": seed, **options}
    if constraints_func is not None and name in _CONSTRAINED:
        kwargs["constraints_func"] = constraints_func
    with warnings.catch_warnings():
        # Optuna 5 deprecates constraints_func for Trial.set_constraint (removal planned for 7.0), which Optuna 4
        # lacks; with optuna < 6 pinned the argument stays, and a notice per sampled trial is no use to the user.
        warnings.filterwarnings("ignore", message=".*constraints_func", category=FutureWarning)
        return SAMPLERS[name](**kwargs)


def stored_constraints(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    """The ``constraints_func`` of constrained studies: the values each trial stored under ``CONSTRAINTS_ATTR``."""
    return trial.user_attrs.get(CONSTRAINTS_ATTR, [0.0])
