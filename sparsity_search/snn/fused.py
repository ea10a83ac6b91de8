"""The fast multi-step neuron: the whole T loop in one autograd node with a hand-written BPTT backward.

Dynamics (identical to ``neurons.BaseNeuron``, bit for bit in the forward):

    h_t = x_t + leak * v_{t-1}                 (v_0 = 0; leak = 1 for IF)
    s_t = [h_t >= threshold]
    v_t = h_t - threshold * s_t                (soft reset)   or   h_t * (1 - s_t)   (hard reset to 0)

The reset uses the detached spike, so with ``d_t = surrogate'(h_t - threshold)`` the backward is

    dL/dh_t = dL/ds_t * d_t + leak * m_t * dL/dh_{t+1},    m_t = 1 (soft) or 1 - s_t (hard),   dL/dx_t = dL/dh_t

Only ``h`` (the pre-threshold membrane, ``[T, B, ...]``) is saved; spikes and ``d`` are recomputed from it in one
batched op each. Per timestep the forward runs 3 elementwise kernels and the backward 1. State is kept in at least
float32 even when autocast hands in bf16, so low-precision runs still integrate accurately.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .surrogate import Surrogate


def state_dtype(x: Tensor) -> torch.dtype:
    """The membrane dtype for input ``x``: float32, or float64 for float64 input."""
    return torch.promote_types(x.dtype, torch.float32)


def lif_loop(x_seq: Tensor, leak: float, threshold: float, hard: bool,
             h_out: Tensor | None = None) -> Tensor:
    """Run the dynamics over ``x_seq`` [T, B, ...]; return bool spikes, writing ``h_t`` into ``h_out`` if given."""
    spikes = torch.empty(x_seq.shape, dtype=torch.bool, device=x_seq.device)
    v = torch.zeros(x_seq.shape[1:], dtype=state_dtype(x_seq), device=x_seq.device)
    for t in range(x_seq.shape[0]):
        if h_out is None:
            h = torch.add(x_seq[t], v, alpha=leak)
        else:
            h = torch.add(x_seq[t], v, alpha=leak, out=h_out[t])
        s = torch.ge(h, threshold, out=spikes[t])
        v = h.masked_fill(s, 0.0) if hard else torch.add(h, s, alpha=-threshold)
    return spikes


class FusedLIF(torch.autograd.Function):
    """Multi-step LIF/IF as one autograd node: ``FusedLIF.apply(x_seq, leak, threshold, hard, surrogate)``."""

    @staticmethod
    def forward(ctx, x_seq: Tensor, leak: float, threshold: float, hard: bool,  # noqa: ANN001
                surrogate: Surrogate) -> Tensor:
        h = torch.empty(x_seq.shape, dtype=state_dtype(x_seq), device=x_seq.device)
        spikes = lif_loop(x_seq, leak, threshold, hard, h_out=h)
        ctx.save_for_backward(h)
        ctx.params = (leak, threshold, hard, surrogate, x_seq.dtype)
        return spikes.to(x_seq.dtype)

    @staticmethod
    def backward(ctx, grad_spikes: Tensor) -> tuple[Tensor | None, None, None, None, None]:  # noqa: ANN001
        (h,) = ctx.saved_tensors
        leak, threshold, hard, surrogate, in_dtype = ctx.params
        shifted = h - threshold
        grad = surrogate.derivative(shifted).mul_(grad_spikes)  # becomes dL/dh in place, last step first
        if hard:
            keep = (shifted < 0).to(grad.dtype).mul_(leak)  # leak * (1 - s_t)
            for t in range(h.shape[0] - 2, -1, -1):
                grad[t].addcmul_(keep[t], grad[t + 1])
        else:
            for t in range(h.shape[0] - 2, -1, -1):
                grad[t].add_(grad[t + 1], alpha=leak)
        return grad.to(in_dtype), None, None, None, None
