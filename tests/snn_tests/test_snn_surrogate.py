"""Surrogates: the hand-written backward equals the documented formula and autograd of the primitive."""

from __future__ import annotations

import math

import pytest
import torch

from sparsity_search.snn import SURROGATES, get_surrogate

SLOPES = (0.5, 2.0, 5.0)

# The formulas of the module docstring, written out again independently of the classes.
FORMULAS = {
    "fast_sigmoid": lambda x, k: 1.0 / (1.0 + k * x.abs()) ** 2,
    "arctan": lambda x, k: (k / 2) / (1.0 + (math.pi / 2 * k * x) ** 2),
    "triangle": lambda x, k: torch.where(x.abs() < 1 / k, k * (1 - k * x.abs()), torch.zeros_like(x)),
}


def _grid() -> torch.Tensor:
    return torch.linspace(-2.0, 2.0, 801, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("slope", SLOPES)
def test_forward_is_heaviside(name: str, slope: float) -> None:
    x = _grid()
    assert torch.equal(get_surrogate(name, slope)(x), (x >= 0).double())


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("slope", SLOPES)
def test_backward_matches_formula_and_primitive(name: str, slope: float) -> None:
    surrogate = get_surrogate(name, slope)
    x = _grid().requires_grad_()
    upstream = torch.rand_like(x)
    (manual,) = torch.autograd.grad(surrogate(x), x, upstream)
    (smooth,) = torch.autograd.grad(surrogate.primitive(x), x, upstream)
    expected = upstream * FORMULAS[name](x.detach(), slope)
    torch.testing.assert_close(manual, expected)
    torch.testing.assert_close(smooth, expected)


def test_primitives_are_steps_between_their_limits() -> None:
    x = torch.tensor([-1e6, 1e6], dtype=torch.float64)
    for name in ("arctan", "triangle"):
        torch.testing.assert_close(get_surrogate(name, 5.0).primitive(x), torch.tensor([0.0, 1.0], dtype=x.dtype),
                                   atol=1e-6, rtol=0)


def test_unknown_name_and_bad_slope() -> None:
    with pytest.raises(ValueError, match="unknown surrogate"):
        get_surrogate("sigmoid", 1.0)
    with pytest.raises(ValueError, match="slope"):
        get_surrogate("arctan", 0.0)
