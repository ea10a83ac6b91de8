"""Schedules as pure functions of training time: the sparsity weight lambda(t) and the learning rate.

Time is ``(epoch, step)`` with both 0-based; ``step`` is the optimizer step inside the epoch. A schedule is a small
frozen object so it can be printed, compared, and plotted without running a trainer.

``piecewise`` (``Piecewise``) is the step function that population-based training exports: what a member learned,
replayed exactly by ``train`` (``population/_pbt.py`` holds lambda and lr per epoch so that points can express it).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Protocol

from .config import TrainConfig


class LambdaSchedule(Protocol):
    def lambda_at(self, epoch: int, step: int) -> float: ...


@dataclass(frozen=True)
class _Timeline:
    """Maps (epoch, step) to training progress; lambda is 0 during ``warmup_epochs``."""

    epochs: int
    steps_per_epoch: int
    warmup_epochs: float = 0.0

    def progress(self, epoch: int, step: int) -> float:
        """Fraction in [0, 1] of the post-warm-up part of training reached at this step (1 at the last step)."""
        t = epoch + (step + 1) / self.steps_per_epoch
        span = self.epochs - self.warmup_epochs
        return min(max((t - self.warmup_epochs) / span, 0.0), 1.0) if span > 0 else 1.0


@dataclass(frozen=True)
class Constant:
    """lambda(t) = lambda_max: the plain weighted sum of the paper's first experiments."""

    lambda_max: float

    def lambda_at(self, epoch: int, step: int) -> float:
        return self.lambda_max


@dataclass(frozen=True)
class Linear:
    """0 during warm-up, then a straight ramp reaching lambda_max at the last step."""

    lambda_max: float
    timeline: _Timeline

    def lambda_at(self, epoch: int, step: int) -> float:
        return self.lambda_max * self.timeline.progress(epoch, step)


@dataclass(frozen=True)
class Annealing:
    """The simulated-annealing-inspired weighting: sparsity pressure grows as a temperature cools.

    A temperature cools exponentially with progress p in [0, 1]: ``T(p) = exp(-p / temperature)`` (T(0) = 1, hot).
    While hot, training is free to explore for accuracy; as it cools, the spike term takes over:

        lambda(p) = lambda_max * (1 - T(p)) / (1 - T(1))

    so lambda(0) = 0, lambda(1) = lambda_max, and lambda rises monotonically. ``temperature`` sets the cooling
    rate: small values cool fast (lambda near lambda_max after a fraction of training, leaving epochs to recover
    accuracy under the final weight); large values approach the linear ramp. Normalising by ``1 - T(1)`` keeps
    ``lambda_max`` the weight actually reached, so searches over it and over ``temperature`` stay independent.
    """

    lambda_max: float
    temperature: float
    timeline: _Timeline

    def lambda_at(self, epoch: int, step: int) -> float:
        p = self.timeline.progress(epoch, step)
        return self.lambda_max * math.expm1(-p / self.temperature) / math.expm1(-1.0 / self.temperature)


@dataclass(frozen=True)
class Piecewise:
    """A step function of training time: each point ``[epoch, value]`` holds from its epoch until the next point.

    Points start at epoch 0 and their epochs never decrease (``TrainConfig`` checks both); two points at one epoch
    are a jump there, and the later one wins. Epochs may be fractions: a step at ``(epoch, step)`` reads the last
    point at or before ``epoch + step / steps_per_epoch``, so integer epochs switch exactly at an epoch's first step.
    """

    points: tuple[tuple[float, float], ...]
    steps_per_epoch: int

    def value_at(self, epoch: int, step: int) -> float:
        t = epoch + step / self.steps_per_epoch
        return self.points[bisect.bisect_right([e for e, _ in self.points], t) - 1][1]

    def lambda_at(self, epoch: int, step: int) -> float:
        return self.value_at(epoch, step)


def _piecewise(points: list[list[float]], steps_per_epoch: int) -> Piecewise:
    return Piecewise(tuple((float(e), float(v)) for e, v in points), steps_per_epoch)


def make_lambda_schedule(cfg: TrainConfig, steps_per_epoch: int) -> LambdaSchedule:
    """Build the schedule named by ``cfg.schedule``."""
    timeline = _Timeline(cfg.epochs, steps_per_epoch, cfg.warmup_epochs)
    if cfg.schedule == "piecewise":
        return _piecewise(cfg.lambda_points, steps_per_epoch)
    if cfg.schedule == "constant":
        return Constant(cfg.lambda_max)
    if cfg.schedule == "linear":
        return Linear(cfg.lambda_max, timeline)
    return Annealing(cfg.lambda_max, cfg.temperature, timeline)


def lr_at(cfg: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The learning rate of this step: ``lr_points``' value for ``piecewise``, else ``cfg.lr`` times ``lr_factor``."""
    if cfg.lr_schedule == "piecewise":
        return _piecewise(cfg.lr_points, steps_per_epoch).value_at(epoch, step)
    return cfg.lr * lr_factor(cfg, epoch, step, steps_per_epoch)


def lr_factor(cfg: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Multiplier on ``cfg.lr``: cosine decay to 0 over all steps, step decay every ``lr_step_epochs``, or 1
    (``piecewise`` is absolute: see ``lr_at``)."""
    if cfg.lr_schedule == "cosine":
        t = (epoch * steps_per_epoch + step) / (cfg.epochs * steps_per_epoch)
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if cfg.lr_schedule == "step":
        return cfg.lr_gamma ** (epoch // cfg.lr_step_epochs)
    return 1.0
