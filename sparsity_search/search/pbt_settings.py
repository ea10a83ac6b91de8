"""The study file's ``pbt`` mapping: population-based training of each population round (``population: {size: K}``).

    population: {size: 16}
    pbt:
      interval: 2                  # epochs between exploit/explore steps
      fraction: 0.25               # the bottom fraction takes over members of the top fraction
      perturb: {lambda_max: [0.8, 1.25], lr: [0.8, 1.25]}   # multiplicative factors, one drawn at random
      resample_probability: 0.25   # or draw the value afresh from the search space
      tie_break: hypervolume       # ranking inside a front, as MO-ASHA's: hypervolume or epsilon_net

The first members of a round come from the study's sampler, and each is a trial; the rules are
``sparsity_search.pbt``'s and the population engine applies them (``population/_pbt.py``). Checked with the rest of
the study file (``check_pbt``), each problem one line naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, field_validator

from ..errors import ConfigError
from ..moasha import Limits, TieBreak
from ..pareto import Direction
from ..pbt import SCHEDULE_FIELDS, Range, Rules
from ..validation import Strict
from .space import SearchSpace


class PBTSettings(Strict):
    interval: int = Field(ge=1)
    fraction: float = Field(default=0.25, gt=0.0, le=0.5)
    perturb: dict[str, list[float]] = Field(min_length=1)
    resample_probability: float = Field(default=0.25, ge=0.0, le=1.0)
    tie_break: TieBreak = "hypervolume"  # measured: docs/benchmarks.md

    @field_validator("perturb")
    @classmethod
    def _factors(cls, perturb: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, factors in perturb.items():
            if len(factors) != 2 or any(not f > 0 for f in factors):
                raise ValueError(f"{name}: expected [low_factor, high_factor], both > 0; got {factors}")
        return perturb

    def rules(self, space: SearchSpace, objectives: Sequence[str], directions: Sequence[Direction],
              limits: Limits | None, seed: int) -> Rules:
        """The pure rules one population applies (``seed``: its random draws)."""
        ranges = {}
        for name in self.perturb:
            p = space.params[name]
            when = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in p.when.items()}
            ranges[name] = Range(float(p.low), float(p.high), p.log, p.step, p.type == "int", when)  # type: ignore
        return Rules(interval=self.interval, fraction=self.fraction,
                     perturb={k: (v[0], v[1]) for k, v in self.perturb.items()}, ranges=ranges,
                     resample_probability=self.resample_probability, objectives=tuple(objectives),
                     directions=tuple(directions), tie_break=self.tie_break, limits=limits, seed=seed)


def check_pbt(pbt: PBTSettings, space: SearchSpace, epochs: int, population: int, early_stopping: str,
              objectives: Sequence[str], source: str) -> None:
    """What the mapping alone cannot check: perturbed names against the search space, the interval against the
    epochs, and the settings PBT needs or cannot run with."""
    for name in pbt.perturb:
        param = space.params.get(name)
        if param is None:
            raise ConfigError("not a parameter of the search space (explore keeps a value within its bounds)",
                              field=f"pbt.perturb.{name}", source=source)
        if param.type == "categorical":
            raise ConfigError("a categorical parameter; only numbers are multiplied", field=f"pbt.perturb.{name}",
                              source=source)
        if name not in SCHEDULE_FIELDS:
            raise ConfigError(f"a retrain could not replay a changed {name} (the learned schedule is exported as "
                              f"piecewise lambda(t) and lr(t)); perturb one of {', '.join(SCHEDULE_FIELDS)}",
                              field=f"pbt.perturb.{name}", source=source)
    if pbt.interval > epochs:
        raise ConfigError(f"must be <= the training epochs ({epochs}); got {pbt.interval}", field="pbt.interval",
                          source=source)
    check_pbt_population(population, "population", source)
    if early_stopping == "moasha":
        raise ConfigError("replaces early_stopping: moasha (the worst members already take over the best every "
                          "interval; a pause or stop would take members out of the population): use one of them",
                          field="pbt", source=source)
    if "test_accuracy" in objectives:
        raise ConfigError("ranks members on every interval's metrics, but test_accuracy is only measured at the "
                          "end; use val_accuracy", field="pbt", source=source)


def check_pbt_population(size: int, field: str, source: str | None = None) -> None:
    """PBT needs members to copy: a population of at least 2."""
    if size < 2:
        raise ConfigError(f"pbt needs a population of at least 2 members to exploit each other; got {size}",
                          field=field, source=source)
