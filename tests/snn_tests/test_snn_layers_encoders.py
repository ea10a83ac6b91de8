"""Stateless multi-step layers (fold/unfold, compute-once on stride-0 input) and the input encodings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsity_search.snn import SeqToANN, encode
from sparsity_search.snn.layers import Readout, fold, unfold


def test_fold_unfold_round_trip() -> None:
    x = torch.rand(3, 4, 2, 5)
    assert fold(x).shape == (12, 2, 5)
    assert torch.equal(unfold(fold(x), 3), x)


def test_seq_to_ann_equals_per_step_calls() -> None:
    torch.manual_seed(0)
    block = SeqToANN(nn.Conv2d(2, 3, 3, padding=1), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 4))
    x_seq = torch.rand(5, 2, 2, 4, 4)
    torch.testing.assert_close(block(x_seq), torch.stack([nn.Sequential(*block)(x) for x in x_seq]))


def _grads(block: nn.Module, x_seq: torch.Tensor, upstream: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    block.zero_grad()
    out = block(x_seq)
    (out * upstream).sum().backward()
    return out.detach(), [p.grad.clone() for p in block.parameters()]


def test_direct_encoding_computes_first_layers_once() -> None:
    torch.manual_seed(0)
    block = SeqToANN(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)).double()
    calls = []
    block[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    x = torch.rand(6, 3, 8, 8, dtype=torch.float64)  # float64: BN's backward cancels, fp32 rounding shows
    x_seq = encode(x, 4, "direct")
    upstream = torch.randn(4, 6, 4, 8, 8, dtype=torch.float64)
    once, grads_once = _grads(block, x_seq, upstream)
    assert calls == [6]  # one call on the 6 samples, not on 4 * 6
    assert once.stride(0) == 0
    every, grads_every = _grads(block, x_seq.contiguous(), upstream)
    assert calls == [6, 24]
    torch.testing.assert_close(once, every)
    for a, b in zip(grads_once, grads_every):
        torch.testing.assert_close(a, b)


def test_readout_averages_potential_over_time() -> None:
    torch.manual_seed(0)
    readout = Readout(6, 3)
    x_seq = torch.rand(4, 2, 6)
    torch.testing.assert_close(readout(x_seq), torch.stack([readout.weight @ x.T for x in x_seq]).mean(0).T
                               + readout.bias)


def test_direct_encoding_is_a_view() -> None:
    x = torch.rand(5, 64)
    x_seq = encode(x, 8, "direct")
    assert x_seq.shape == (8, 5, 64)
    assert x_seq.stride(0) == 0 and x_seq.data_ptr() == x.data_ptr()


def test_poisson_is_deterministic_under_a_seed_and_has_the_right_rate() -> None:
    x = torch.tensor([[0.0, 0.3, 1.0, 1.7, -0.5]])
    a = encode(x, 2000, "poisson", torch.Generator().manual_seed(3))
    b = encode(x, 2000, "poisson", torch.Generator().manual_seed(3))
    c = encode(x, 2000, "poisson", torch.Generator().manual_seed(4))
    assert a.shape == (2000, 1, 5) and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(a.mean(0), torch.tensor([[0.0, 0.3, 1.0, 1.0, 0.0]]), atol=0.04, rtol=0)


def test_unknown_encoding() -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        encode(torch.rand(2, 3), 4, "latency")
