"""Surrogate gradients: a Heaviside step forward, a smooth derivative backward.

The step fires at ``x >= 0`` (``x = v - threshold``). With ``k`` the slope, the backward uses:

    fast_sigmoid  d(x) = 1 / (1 + k|x|)^2                 primitive  x / (1 + k|x|)          (SuperSpike; peak 1)
    arctan        d(x) = (k/2) / (1 + (pi/2 * k * x)^2)   primitive  arctan(pi/2 * k * x) / pi + 1/2   (area 1)
    triangle      d(x) = k * max(0, 1 - k|x|)             primitive  piecewise quadratic, 0 -> 1 on |x| < 1/k (area 1)

The fast sigmoid follows snnTorch's scaling (peak 1, area 2/k); arctan and triangle follow SpikingJelly's ``ATan`` and
``PiecewiseQuadratic`` (area 1, peak k/2 and k). ``primitive`` is the smooth function whose autograd derivative
equals ``derivative``; tests use it to check the hand-written backward (SpikingJelly's ``check_manual_grad``).

``derivative_at(x, slope)`` is the same formula with the slope passed in: the fused kernels call it with the slope
as a tensor (one value, or one per population member laid out to broadcast), so a compiled kernel serves every slope.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor


class _Heaviside(torch.autograd.Function):
    """Step forward; backward multiplies by ``surrogate.derivative(x)``. Saves only ``x``."""

    @staticmethod
    def forward(ctx, x: Tensor, surrogate: "Surrogate") -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(x), None


class Surrogate(abc.ABC):
    """A spike function: call it for the step with surrogate backward; ``derivative`` is also used by fused BPTT."""

    name: str = ""

    def __init__(self, slope: float) -> None:
        if slope <= 0:
            raise ValueError(f"surrogate slope must be > 0, got {slope}")
        self.slope: float | Tensor = float(slope)  # a population sets one slope per member ([K, 1])

    def __call__(self, x: Tensor) -> Tensor:
        return _Heaviside.apply(x, self)

    def derivative(self, x: Tensor) -> Tensor:
        """The closed-form surrogate derivative at ``x = v - threshold``."""
        return self.derivative_at(x, self.slope)

    @staticmethod
    @abc.abstractmethod
    def derivative_at(x: Tensor, slope: float | Tensor) -> Tensor:
        """``derivative`` for a given slope (a float, or a tensor broadcasting against ``x``)."""

    @abc.abstractmethod
    def primitive(self, x: Tensor) -> Tensor:
        """A smooth function whose derivative is ``derivative`` (for checks and non-spiking use)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(slope={self.slope})"


class FastSigmoid(Surrogate):
    name = "fast_sigmoid"

    @staticmethod
    def derivative_at(x: Tensor, slope: float | Tensor) -> Tensor:
        return (1.0 + slope * x.abs()).pow(-2)

    def primitive(self, x: Tensor) -> Tensor:
        return x / (1.0 + self.slope * x.abs())


class ArcTan(Surrogate):
    name = "arctan"

    @staticmethod
    def derivative_at(x: Tensor, slope: float | Tensor) -> Tensor:
        return (slope / 2) / (1.0 + (math.pi / 2 * slope * x).square())

    def primitive(self, x: Tensor) -> Tensor:
        return torch.atan(math.pi / 2 * self.slope * x) / math.pi + 0.5


class Triangle(Surrogate):
    name = "triangle"

    @staticmethod
    def derivative_at(x: Tensor, slope: float | Tensor) -> Tensor:
        return slope * (1.0 - slope * x.abs()).clamp_min(0.0)

    def primitive(self, x: Tensor) -> Tensor:
        u = (self.slope * x).clamp(-1.0, 1.0)
        return 0.5 + u - 0.5 * u * u.abs()


SURROGATES: dict[str, type[Surrogate]] = {cls.name: cls for cls in (FastSigmoid, ArcTan, Triangle)}


def get_surrogate(name: str, slope: float) -> Surrogate:
    """The surrogate called ``name`` (one of ``SURROGATES``) with the given slope."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; choose from {', '.join(SURROGATES)}")
    return SURROGATES[name](slope)
