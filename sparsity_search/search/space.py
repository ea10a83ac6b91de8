"""Search spaces from YAML: typed parameters with optional conditions, sampled define-by-run.

    params:
      lambda_max: {type: float, low: 0.01, high: 10.0, log: true}
      schedule:   {type: categorical, choices: [constant, linear, annealing]}
      temperature: {type: float, low: 0.05, high: 2.0, log: true, when: {schedule: annealing}}

``when`` names earlier parameters and the value(s) they must take for this one to be sampled; a parameter that is
not sampled keeps the study's fixed value or the trainer default. ``suggest`` takes anything with Optuna's
``suggest_*`` methods, so the Optuna backend and Ray's OptunaSearch share this one function.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Protocol, Union

from pydantic import Field, field_validator, model_validator

from ..config import FIELDS, OPTION_PREFIX, from_dict, load_yaml, with_options
from ..errors import ConfigError
from ..validation import Strict, format_validation_error

Scalar = Union[bool, int, float, str]


class Param(Strict):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Scalar] | None = None
    when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "Param":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None:
                raise ValueError("categorical takes 'choices', not low/high")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"{self.type} needs 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log scale needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("'step' cannot be combined with log: true")
        if self.step is not None and self.step <= 0:
            raise ValueError("'step' must be > 0")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError("int parameters need integer low/high")
        return self

    def allowed(self, value: Any) -> bool:
        if self.type == "categorical":
            return value in (self.choices or [])
        return isinstance(value, (int, float)) and self.low <= value <= self.high  # type: ignore[operator]


class SearchSpace(Strict):
    params: dict[str, Param]

    @field_validator("params")
    @classmethod
    def _known_fields(cls, params: dict[str, Param]) -> dict[str, Param]:
        seen: list[str] = []
        for name, p in params.items():
            if name not in FIELDS and not (name.startswith(OPTION_PREFIX) and len(name) > len(OPTION_PREFIX)):
                raise ValueError(f"{name}: not a training config field (or {OPTION_PREFIX}NAME, an option of the "
                                 "user's model factory)")
            for other in p.when:
                if other not in seen:
                    raise ValueError(f"{name}.when: '{other}' must be a parameter defined above '{name}'")
            seen.append(name)
        return params

    def names(self) -> list[str]:
        return list(self.params)

    def suggest(self, trial: "Suggester") -> dict[str, Any]:
        """Sample the active parameters in file order; conditions read the values sampled before them."""
        values: dict[str, Any] = {}
        for name, p in self.params.items():
            if not all(_matches(values.get(k), v) for k, v in p.when.items()):
                continue
            if p.type == "categorical":
                values[name] = trial.suggest_categorical(name, p.choices)
            elif p.type == "int":
                values[name] = trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
            else:
                values[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
        return values

    def check_against(self, fixed: dict[str, Any], source: str) -> None:
        """Every choice and bound must make a valid TrainConfig with the study's fixed settings (a ``model.NAME``
        option needs a user model; whether its factory takes NAME is checked when a run builds the model)."""
        for name, p in self.params.items():
            samples = p.choices if p.type == "categorical" else [p.low, p.high]
            for value in samples:
                if p.type == "int":
                    value = int(value)
                try:
                    from_dict(with_options(fixed, {name: value}) if name.startswith(OPTION_PREFIX)
                              else {**fixed, name: value})
                except ConfigError as exc:
                    raise ConfigError(str(exc), source=source) from None

    def can_widen(self, name: str, side: str, fixed: dict[str, Any]) -> bool:
        """Whether numeric parameter ``name``'s range can grow past its ``side`` ("lower" or "upper") bound: a value
        just beyond it still makes a valid TrainConfig with the study's ``fixed`` settings. A bound at the field's
        own limit (timesteps 1, warmup_epochs 0) cannot move."""
        p = self.params[name]
        bound = float(p.low if side == "lower" else p.high)  # type: ignore[arg-type]
        if p.type == "int":
            value: float = int(bound) + (-1 if side == "lower" else 1)
        else:  # the next float past the bound: whether the range can grow at all
            value = math.nextafter(bound, -math.inf if side == "lower" else math.inf)
        try:
            from_dict({**fixed, name: value})
        except ConfigError:
            return False
        return True


class Suggester(Protocol):
    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def _matches(value: Any, wanted: Scalar | list[Scalar]) -> bool:
    return value in wanted if isinstance(wanted, list) else value == wanted


def parse_space(data: Any, source: str) -> SearchSpace:
    """Validate a search-space mapping; errors name the file and the field."""
    from pydantic import ValidationError

    try:
        return SearchSpace.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc), source=source) from None


def load_space(path: str | Path) -> SearchSpace:
    return parse_space(load_yaml(path), str(path))
