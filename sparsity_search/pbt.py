"""Population-based training's rules, exploit and explore, as pure functions the population engine applies.

PBT (Jaderberg et al. 2017) trains K members in lockstep; every ``interval`` epochs the worst members take over the
weights of the best and perturb their hyperparameters, so the population learns a schedule per member instead of
following a fixed one. MO-PBT (Dushatskiy et al., ICML 2023, arXiv:2306.01436) makes the ranking multi-objective:
non-dominated sorting (constraints through a modified domination), an epsilon-net order inside each front, the
bottom quantile copying a uniformly drawn member of the top one, and Ray Tune's explore (resample with a probability,
else multiply by one of two factors). Here the ranking is MO-ASHA's (``moasha.rank_records``): feasible members
first (Deb's constrained domination), then fronts, then ``hypervolume`` or ``epsilon_net`` inside a front.

The engine (``population/_pbt.py``) owns the tensors; this module only decides, from numbers: who copies whom
(``exploit_pairs``), the copy's new values (``explore``), and how a member's per-epoch values become the points of
a ``piecewise`` schedule (``step_points``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .moasha import Limits, TieBreak, rank_records
from .pareto import Direction

# The fields a perturbation may change: they shape lambda(t) or lr(t), which a retrain replays from the exported
# ``piecewise`` points. A changed threshold, leak or optimizer constant could not be replayed from one config.
SCHEDULE_FIELDS = ("lambda_max", "temperature", "warmup_epochs", "lr", "lr_gamma", "lr_step_epochs")


@dataclass(frozen=True)
class Range:
    """Where a perturbed parameter may go: its search-space bounds and grid, and when it is active (``when``: the
    values other config fields must have, as in a search space; an inactive parameter is left alone)."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    integer: bool = False
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def active(self, config: Mapping[str, Any]) -> bool:
        return all(config.get(name) in allowed for name, allowed in self.when.items())

    def snap(self, value: float) -> float | int:
        """``value`` clipped into [low, high] and onto the grid (integers, or ``low + k * step``)."""
        if self.step is not None:
            value = self.low + round((value - self.low) / self.step) * self.step
        value = min(max(value, self.low), self.high)
        return int(round(value)) if self.integer else float(value)

    def sample(self, rng: np.random.Generator) -> float | int:
        """A fresh draw, uniform (log-uniform with ``log``) over the range, as the search space's sampler draws."""
        if self.log:
            return self.snap(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        if self.integer:
            return self.snap(float(rng.integers(int(self.low), int(self.high) + 1)))
        return self.snap(rng.uniform(self.low, self.high))


@dataclass(frozen=True)
class Rules:
    """One population's PBT settings (the study file's ``pbt`` plus what the study ranks on)."""

    interval: int  # epochs between exploit/explore steps
    fraction: float  # the bottom fraction copies members of the top fraction, (0, 0.5]
    perturb: Mapping[str, tuple[float, float]]  # name -> (low_factor, high_factor)
    ranges: Mapping[str, Range]  # name -> its bounds, one per perturbed name
    resample_probability: float = 0.25
    objectives: Sequence[str] = ("val_accuracy", "spikes_per_sample")
    directions: Sequence[Direction] = ("maximize", "minimize")
    tie_break: TieBreak = "hypervolume"
    limits: Limits | None = None
    seed: int = 0

    def is_step(self, epoch: int, epochs: int) -> bool:
        """Whether members exploit and explore after ``epoch`` epochs (never after the last: nothing trains on)."""
        return epoch % self.interval == 0 and epoch < epochs

    def rng(self, epoch: int) -> np.random.Generator:
        """The step's random numbers, a function of the seed and the epoch only: a resumed population draws the same."""
        return np.random.default_rng([self.seed, epoch])


def rank(values: Sequence[Sequence[float]], rules: Rules) -> list[int]:
    """Member positions, best first: feasible ones first, then by non-dominated front, then ``tie_break``.

    A member whose objective vector repeats an earlier member's adds nothing to the front the population covers, so
    it ranks after every distinct one: copies of one network (the silent net at chance accuracy is the usual one:
    every member it overwrites becomes it) are replaced first, and the population stays spread along the front.
    """
    seen: set[tuple[float, ...]] = set()
    distinct, repeats = [], []
    for i, v in enumerate(values):
        key = tuple(float(x) for x in v)
        (repeats if key in seen else distinct).append(i)
        seen.add(key)
    order = rank_records([(i, values[i]) for i in distinct], rules.directions, rules.tie_break, limits=rules.limits)
    return [int(i) for i in order] + repeats


def exploit_pairs(order: Sequence[int], fraction: float, rng: np.random.Generator) -> dict[int, int]:
    """``{loser: winner}``: each of the last ``ceil(n * fraction)`` members of ``order`` (at most n // 2, so the two
    groups never meet) copies a member of as many first ones, drawn uniformly (as Ray Tune's PBT and MO-PBT do)."""
    n = len(order)
    q = min(math.ceil(n * fraction), n // 2)
    if q == 0:
        return {}
    top = list(order[:q])
    return {int(loser): int(top[rng.integers(q)]) for loser in order[n - q:]}


def explore(config: Mapping[str, Any], rules: Rules, rng: np.random.Generator) -> dict[str, float | int]:
    """New values of the perturbed parameters active in ``config`` (a member's config fields): each is drawn afresh
    from its range with ``resample_probability``, else multiplied by one of its two factors (drawn at random) and
    snapped back into its range."""
    changed: dict[str, float | int] = {}
    for name, factors in rules.perturb.items():
        bounds = rules.ranges[name]
        if not bounds.active(config):
            continue
        if rng.random() < rules.resample_probability:
            changed[name] = bounds.sample(rng)
        else:
            changed[name] = bounds.snap(float(config[name]) * factors[int(rng.integers(2))])
    return changed


def step_points(values: Sequence[float]) -> list[list[float]]:
    """``piecewise`` points of a value held per epoch (``values[e]`` during epoch e): one point where it changes."""
    return [[e, float(v)] for e, v in enumerate(values) if e == 0 or v != values[e - 1]]
