"""Neurons: hand-computed sequences, single- vs multi-step, and the fused BPTT against the reference loop."""

from __future__ import annotations

import itertools

import pytest
import torch

from sparsity_search.snn import IF, LIF, BaseNeuron, get_surrogate, reset_net

# Dyadic inputs and leak 0.5 keep every membrane value exact in floating point.
X = [0.75, 0.75, 0.25, 1.5]
CASES = [
    # neuron, reset, inputs, spikes, membrane after reset
    (LIF(leak=0.5, reset="soft"), X, [0, 1, 0, 1], [0.75, 0.125, 0.3125, 0.65625]),
    (LIF(leak=0.5, reset="hard"), X, [0, 1, 0, 1], [0.75, 0.0, 0.25, 0.0]),
    (IF(reset="soft"), [0.75, 0.75, 0.25, 0.5], [0, 1, 0, 1], [0.75, 0.5, 0.75, 0.25]),
    (IF(reset="hard"), [0.75, 0.75, 0.25, 0.5], [0, 1, 0, 0], [0.75, 0.0, 0.25, 0.75]),
    (IF(reset="soft"), [2.5, 0.0, 0.0], [1, 1, 0], [1.5, 0.5, 0.5]),  # soft reset removes one threshold
    (IF(reset="hard"), [2.5, 0.0, 0.0], [1, 0, 0], [0.0, 0.0, 0.0]),
    (LIF(leak=0.5, threshold=0.5), [0.5, 0.25, 0.375], [1, 0, 1], [0.0, 0.25, 0.0]),  # fires at v == threshold
]


@pytest.mark.parametrize("neuron,inputs,spikes,membrane", CASES)
def test_single_step_sequence_by_hand(neuron: BaseNeuron, inputs: list[float], spikes: list[int],
                                      membrane: list[float]) -> None:
    neuron.step_mode = "s"
    neuron.reset()
    got_s, got_v = [], []
    for x in inputs:
        got_s.append(neuron(torch.tensor([x])).item())
        got_v.append(neuron.v.item())
    assert got_s == spikes
    assert got_v == membrane


@pytest.mark.parametrize("implementation", ["fast", "reference"])
@pytest.mark.parametrize("neuron,inputs,spikes,membrane", CASES)
def test_multi_step_sequence_by_hand(neuron: BaseNeuron, inputs: list[float], spikes: list[int],
                                     membrane: list[float], implementation: str) -> None:
    neuron.step_mode = "m"
    neuron.implementation = implementation
    x = torch.tensor(inputs).view(-1, 1, 1).requires_grad_()
    out = neuron(x)
    assert out.flatten().tolist() == spikes
    out.sum().backward()  # the grad path runs too
    assert x.grad is not None


def _neuron(kind: str, surrogate: str, reset: str, implementation: str) -> BaseNeuron:
    sg = get_surrogate(surrogate, 2.0)
    if kind == "if":
        return IF(threshold=1.0, reset=reset, surrogate=sg, implementation=implementation)
    return LIF(leak=0.8, threshold=1.0, reset=reset, surrogate=sg, implementation=implementation)


def _run(neuron: BaseNeuron, x_seq: torch.Tensor, weight: torch.Tensor, upstream: torch.Tensor):
    """A linear layer into the neuron; loss uses both the spikes and their count (as the sparsity loss does)."""
    x = x_seq.clone().requires_grad_()
    w = weight.clone().requires_grad_()
    spikes = neuron(torch.einsum("tbi,oi->tbo", x, w))
    loss = (spikes * upstream).sum() + 0.1 * spikes.sum()
    loss.backward()
    return spikes.detach(), x.grad, w.grad


GRID = list(itertools.product(["lif", "if"], ["fast_sigmoid", "arctan", "triangle"], ["soft", "hard"]))


@pytest.mark.parametrize("kind,surrogate,reset", GRID)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_equals_reference(kind: str, surrogate: str, reset: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    x_seq = torch.rand(8, 16, 12, generator=gen, dtype=dtype)
    weight = torch.randn(20, 12, generator=gen, dtype=dtype) * 0.5
    upstream = torch.randn(8, 16, 20, generator=gen, dtype=dtype)
    fast = _run(_neuron(kind, surrogate, reset, "fast"), x_seq, weight, upstream)
    ref = _run(_neuron(kind, surrogate, reset, "reference"), x_seq, weight, upstream)
    assert 0.05 < fast[0].mean() < 0.95  # the check means something only if some, not all, neurons fire
    assert torch.equal(fast[0], ref[0])
    torch.testing.assert_close(fast[1], ref[1])
    torch.testing.assert_close(fast[2], ref[2])


@pytest.mark.parametrize("implementation", ["fast", "reference"])
@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_single_step_loop_equals_multi_step(implementation: str, reset: str) -> None:
    gen = torch.Generator().manual_seed(1)
    x_seq = (torch.rand(6, 4, 3, 5, generator=gen, dtype=torch.float64) * 1.5).requires_grad_()
    multi = _neuron("lif", "arctan", reset, implementation)
    single = _neuron("lif", "arctan", reset, implementation)
    single.step_mode = "s"
    out_m = multi(x_seq)
    (grad_m,) = torch.autograd.grad(out_m.sum(), x_seq)
    reset_net(single)
    out_s = torch.stack([single(x) for x in x_seq])
    (grad_s,) = torch.autograd.grad(out_s.sum(), x_seq)
    assert torch.equal(out_m, out_s)
    torch.testing.assert_close(grad_m, grad_s)


def test_fast_bptt_by_hand() -> None:
    """gradcheck is meaningless through a step; check the BPTT recurrence of one neuron by hand instead."""
    neuron = _neuron("lif", "triangle", "soft", "fast")  # slope 2: d(x) = 2 * max(0, 1 - 2|x|)
    x = torch.tensor([0.5, 0.3, 0.9], dtype=torch.float64).view(3, 1).requires_grad_()
    spikes = neuron(x)  # h = 0.5, 0.7, 1.46 -> spikes 0, 0, 1
    assert spikes.flatten().tolist() == [0.0, 0.0, 1.0]
    spikes.sum().backward()
    d = [2 * max(0.0, 1 - 2 * abs(h - 1.0)) for h in (0.5, 0.7, 1.46)]
    g3 = d[2]
    g2 = d[1] + 0.8 * g3
    g1 = d[0] + 0.8 * g2
    torch.testing.assert_close(x.grad.flatten(), torch.tensor([g1, g2, g3], dtype=torch.float64))


@pytest.mark.parametrize("implementation", ["fast", "reference"])
def test_bf16_input_keeps_fp32_state_and_returns_input_dtype(implementation: str) -> None:
    x = torch.full((4, 2, 3), 0.3, dtype=torch.bfloat16, requires_grad=True)
    out = _neuron("lif", "fast_sigmoid", "soft", implementation)(x)
    assert out.dtype == torch.bfloat16
    out.sum().backward()
    assert x.grad.dtype == torch.bfloat16


def test_no_grad_path_equals_grad_path() -> None:
    x = torch.rand(5, 3, 7, dtype=torch.float64) * 2
    neuron = _neuron("if", "arctan", "hard", "fast")
    with torch.no_grad():
        plain = neuron(x)
    assert torch.equal(plain, neuron(x.clone().requires_grad_()).detach())


def test_stride0_input_in_fused_path() -> None:
    x = torch.rand(3, 7, dtype=torch.float64) * 0.6
    neuron = _neuron("lif", "arctan", "soft", "fast")
    xr = x.unsqueeze(0).expand(5, 3, 7).clone().requires_grad_()
    xe = x.clone().requires_grad_()
    a = neuron(xr)
    b = neuron(xe.unsqueeze(0).expand(5, 3, 7))
    assert torch.equal(a, b)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(xr.grad.sum(0), xe.grad)


def test_validation() -> None:
    with pytest.raises(ValueError, match="step_mode"):
        LIF(step_mode="x")
    with pytest.raises(ValueError, match="reset"):
        IF(reset="zero")
    with pytest.raises(ValueError, match="implementation"):
        IF(implementation="cuda")
    with pytest.raises(ValueError, match="leak"):
        LIF(leak=1.5)
