"""The fast multi-step neuron: the whole T loop in one autograd node with a hand-written BPTT backward.

Dynamics (identical to ``neurons.BaseNeuron``, bit for bit in the forward):

    h_t = x_t + leak * v_{t-1}                 (v_0 = 0; leak = 1 for IF; two roundings, no fused multiply-add)
    s_t = [h_t >= threshold]
    v_t = h_t - threshold * s_t                (soft reset)   or   h_t * (1 - s_t)   (hard reset to 0)

The reset uses the detached spike, so with ``d_t = surrogate'(h_t - threshold)`` the backward is

    dL/dh_t = dL/ds_t * d_t + leak * m_t * dL/dh_{t+1},    m_t = 1 (soft) or 1 - s_t (hard),   dL/dx_t = dL/dh_t

Only ``h`` (the pre-threshold membrane) is saved; spikes and ``d`` are recomputed from it. State is kept in at least
float32 even when autocast hands in bf16, so low-precision runs still integrate accurately.

Both kernels work on ``[T, N]`` rows laid out in the input's own memory order (channels-last stays channels-last,
no copy). On large layers they run through ``torch.compile``, which turns the whole loop into one pass over memory
(forward: read x, write h and spikes; backward: read h and the incoming gradient, write dL/dx) instead of about ten
eager passes, each allocating a tensor the size of the layer. Small layers, and any failure to compile, use the
eager kernels: same arithmetic, same spikes. ``SPARSITY_SEARCH_COMPILE`` = ``auto`` (default) | ``1`` | ``0``.
A first compile costs seconds (about 4-17 s on 2 CPU cores, less once inductor's on-disk cache is warm), so
``auto`` compiles only layers of at least ``COMPILE_MIN_ELEMENTS`` (T * N) values.

``FusedLIFCount`` also returns the spike count the sparsity loss needs, and, given one step that direct encoding
repeats over T, returns its gradient summed over T: neither the count nor the T per-step gradients of such an input
then cost a pass over memory of their own.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

import torch
from torch import Tensor

from .layers import is_time_constant
from .surrogate import Surrogate

log = logging.getLogger(__name__)

# Below this many elements per call (T * N) an eager step costs less than ~1 ms on a CPU core, so the seconds a
# first compile takes would not pay back within a short trial.
COMPILE_MIN_ELEMENTS = 1 << 20


def state_dtype(x: Tensor) -> torch.dtype:
    """The membrane dtype for input ``x``: float32, or float64 for float64 input."""
    return torch.promote_types(x.dtype, torch.float32)


# --- the kernels, on rows [T, N] (or [1, N] when every step has the same input) -----------------------------------

def _forward_kernel(x: Tensor, steps: int, leak: Tensor, threshold: Tensor,
                    hard: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Spikes in x's dtype, h in the state dtype (both [T, N]) and the spike count (float32, 0-dim).

    Functional, so that ``torch.compile`` fuses it into one pass.
    """
    v = torch.zeros_like(x[0], dtype=leak.dtype)
    spikes, hs = [], []
    for t in range(steps):
        h = x[0 if x.shape[0] == 1 else t] + leak * v
        s = h >= threshold
        v = torch.where(s, 0.0, h) if hard else h - threshold * s.to(h.dtype)
        spikes.append(s.to(x.dtype))
        hs.append(h)
    spikes_t = torch.stack(spikes)
    return spikes_t, torch.stack(hs), spikes_t.sum(dtype=torch.float32)


def _backward_kernel(h: Tensor, grad_spikes: Tensor, grad_count: Tensor, leak: Tensor, threshold: Tensor,
                     hard: bool, surrogate: Surrogate, out_dtype: torch.dtype, sum_steps: bool) -> Tensor:
    """dL/dx [T, N] (or summed over T, [1, N], when every step had the same input) from h, dL/ds and
    dL/dcount (0-dim), last step first (the recurrence above)."""
    grads: list[Tensor] = []
    for t in range(h.shape[0] - 1, -1, -1):
        shifted = h[t] - threshold
        g = surrogate.derivative(shifted) * (grad_spikes[t] + grad_count)
        if grads:
            carry = leak * (shifted < 0).to(h.dtype) if hard else leak
            g = g + carry * grads[-1]
        grads.append(g)
    if sum_steps:
        return torch.stack(grads).sum(0, keepdim=True).to(out_dtype)
    return torch.stack(grads[::-1]).to(out_dtype)


def _eager_forward(x: Tensor, steps: int, leak: float, threshold: float, hard: bool, h_out: Tensor | None,
                   spike_dtype: torch.dtype) -> Tensor:
    """``_forward_kernel`` with preallocated outputs and four ops per step; returns spikes [T, N] in ``spike_dtype``.

    Everything runs in the state dtype: on CPU an op mixing bf16 and fp32 copies its bf16 operand first, so bf16
    input is cast once up front and spikes once at the end. The resets are exact rewrites of the kernel's:
    threshold * s and h * s are exact for s in {0, 1}.
    """
    sd = state_dtype(x)
    xs = x.to(sd).unbind(0)  # one op for all T views instead of one select per step
    spikes = torch.empty((steps, *x.shape[1:]), dtype=sd, device=x.device)
    hs = h_out.unbind(0) if h_out is not None else (None,) * steps
    v = None
    for t, (s, h) in enumerate(zip(spikes.unbind(0), hs)):
        xt = xs[0 if len(xs) == 1 else t]
        if v is None:
            h = xt.clone() if h is None else h.copy_(xt)
        else:
            if leak != 1.0:
                v.mul_(leak)
            h = torch.add(xt, v, out=h) if h is not None else xt + v
        torch.ge(h, threshold, out=s)
        v = torch.addcmul(h, h, s, value=-1.0) if hard else torch.add(h, s, alpha=-threshold)
    return spikes.to(spike_dtype)


def _eager_backward(h: Tensor, grad_spikes: Tensor, grad_count: Tensor | None, leak: float, threshold: float,
                    hard: bool, surrogate: Surrogate, out_dtype: torch.dtype, sum_steps: bool) -> Tensor:
    shifted = h - threshold
    grad_s = grad_spikes.to(h.dtype) if grad_count is None else grad_spikes.to(h.dtype) + grad_count
    grad = surrogate.derivative(shifted).mul_(grad_s)  # becomes dL/dh in place, last step first
    steps = grad.unbind(0)
    if hard:
        keep = (shifted < 0).to(grad.dtype).mul_(leak).unbind(0)  # leak * (1 - s_t)
        for t in range(len(steps) - 2, -1, -1):
            steps[t].addcmul_(keep[t], steps[t + 1])
    else:
        for t in range(len(steps) - 2, -1, -1):
            steps[t].add_(steps[t + 1], alpha=leak)
    return (grad.sum(0, keepdim=True) if sum_steps else grad).to(out_dtype)


class _Compiled:
    """``torch.compile`` of the kernels, built on first use; any failure switches to eager for the process."""

    def __init__(self) -> None:
        self.forward: Callable | None = None
        self.backward: Callable | None = None
        self.failed = False

    def wanted(self, numel: int) -> bool:
        mode = os.environ.get("SPARSITY_SEARCH_COMPILE", "auto")
        if self.failed or mode == "0":
            return False
        return mode == "1" or numel >= COMPILE_MIN_ELEMENTS

    def run(self, name: str, *args: object) -> object | None:
        """The compiled kernel's result, or None when compiling failed (the caller runs the eager kernel)."""
        try:
            if self.forward is None:
                self.forward = torch.compile(_forward_kernel, dynamic=False)
                self.backward = torch.compile(_backward_kernel, dynamic=False)
            for arg in args:  # one kernel for every batch size and layer width
                if isinstance(arg, Tensor) and arg.dim() == 2:
                    torch._dynamo.mark_dynamic(arg, 1)
            return (self.forward if name == "forward" else self.backward)(*args)
        except Exception as err:  # noqa: BLE001 - any compiler problem: fall back, never fail the training
            self.failed = True
            log.warning("torch.compile of the LIF kernels failed (%s: %s); using the eager kernels",
                        type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            return None


COMPILED = _Compiled()


# --- layout: run on the input's memory order as [T, N] rows --------------------------------------------------------

def _rows(x_seq: Tensor) -> tuple[Tensor, list[int] | None]:
    """``x_seq`` [T, B, ...] as rows [T, N] (or [1, N] when the time axis has stride 0) without copying when possible.

    Also returns the permutation of the non-time dims into memory order (None: already in order), to undo on output.
    """
    x = x_seq[:1] if is_time_constant(x_seq) else x_seq
    if x.is_contiguous():
        return x.reshape(x.shape[0], -1), None
    perm = sorted(range(1, x.dim()), key=lambda d: -x.stride(d))
    xp = x.permute(0, *perm)
    if not xp.is_contiguous():
        return x.reshape(x.shape[0], -1), None
    return xp.reshape(x.shape[0], -1), perm


def _unrows(rows: Tensor, shape: torch.Size, perm: list[int] | None) -> Tensor:
    """Rows [T, N] back to ``shape``, in the memory order ``_rows`` found."""
    if perm is None:
        return rows.view(shape)
    permuted = rows.view(shape[0], *(shape[d] for d in perm))
    inverse = [0] * len(shape)
    for i, d in enumerate(perm, 1):
        inverse[d] = i
    return permuted.permute(inverse)


def lif_loop(x_seq: Tensor, leak: float, threshold: float, hard: bool) -> Tensor:
    """The dynamics without gradients: spikes [T, B, ...] in x's dtype (autograd off, e.g. evaluation)."""
    rows, perm = _rows(x_seq)
    spikes = _eager_forward(rows, x_seq.shape[0], leak, threshold, hard, None, x_seq.dtype)
    return _unrows(spikes, x_seq.shape, perm)


def _lif_forward(ctx, x_seq: Tensor, leak: float, threshold: float, hard: bool,  # noqa: ANN001
                 surrogate: Surrogate, steps: int | None = None) -> tuple[Tensor, Tensor]:
    """The shared forward of both autograd functions: spikes [T, B, ...] and their count.

    ``steps`` given: ``x_seq`` is one step [B, ...], the input at every one of ``steps`` steps (direct encoding),
    and the backward returns dL/dx summed over time, [B, ...], without materialising the T per-step gradients.
    """
    ctx.sum_steps = steps is not None
    if steps is not None:
        x_seq = x_seq.unsqueeze(0).expand(steps, *x_seq.shape)
    steps = x_seq.shape[0]
    rows, perm = _rows(x_seq)
    sd = state_dtype(x_seq)
    compiled = None
    if COMPILED.wanted(steps * rows.shape[1]):
        scalars = [torch.tensor(v, dtype=sd, device=x_seq.device) for v in (leak, threshold)]
        compiled = COMPILED.run("forward", rows, steps, *scalars, hard)
    if compiled is not None:
        spikes, h, count = compiled
    else:
        h = torch.empty((steps, rows.shape[1]), dtype=sd, device=x_seq.device)
        spikes = _eager_forward(rows, steps, leak, threshold, hard, h, x_seq.dtype)
        count = spikes.sum(dtype=torch.float32)
    ctx.save_for_backward(h)
    ctx.params = (leak, threshold, hard, surrogate, x_seq.dtype, perm)
    return _unrows(spikes, x_seq.shape, perm), count


def _lif_backward(ctx, grad_spikes: Tensor, grad_count: Tensor | None) -> Tensor:  # noqa: ANN001
    (h,) = ctx.saved_tensors
    leak, threshold, hard, surrogate, in_dtype, perm = ctx.params
    grad_rows = _grad_rows(grad_spikes, perm)
    grad = None
    if COMPILED.wanted(h.numel()):
        scalars = [torch.tensor(v, dtype=h.dtype, device=h.device) for v in (leak, threshold)]
        gc = grad_count if grad_count is not None else torch.zeros((), dtype=h.dtype, device=h.device)
        grad = COMPILED.run("backward", h, grad_rows, gc.to(h.dtype), *scalars, hard, surrogate, in_dtype,
                            ctx.sum_steps)
    if grad is None:
        grad = _eager_backward(h, grad_rows, grad_count, leak, threshold, hard, surrogate, in_dtype, ctx.sum_steps)
    if ctx.sum_steps:
        return _unrows(grad, (1, *grad_spikes.shape[1:]), perm).squeeze(0)
    return _unrows(grad, grad_spikes.shape, perm)


class FusedLIF(torch.autograd.Function):
    """Multi-step LIF/IF as one autograd node: ``FusedLIF.apply(x_seq, leak, threshold, hard, surrogate)``."""

    @staticmethod
    def forward(ctx, x_seq: Tensor, leak: float, threshold: float, hard: bool,  # noqa: ANN001
                surrogate: Surrogate) -> Tensor:
        return _lif_forward(ctx, x_seq, leak, threshold, hard, surrogate)[0]

    @staticmethod
    def backward(ctx, grad_spikes: Tensor) -> tuple[Tensor | None, None, None, None, None]:  # noqa: ANN001
        return _lif_backward(ctx, grad_spikes, None), None, None, None, None


class FusedLIFCount(torch.autograd.Function):
    """``FusedLIF`` that also returns the differentiable spike count (float32, 0-dim), as the sparsity loss needs:
    ``FusedLIFCount.apply(x_seq, leak, threshold, hard, surrogate)``, or ``apply(x, ..., surrogate, steps)`` for
    one input [B, ...] repeated at every step (see ``_lif_forward``).

    Counting inside the node saves a pass over the spikes in the forward, and in the backward the count's gradient
    (one number) is added inside the kernel instead of autograd materialising ``dL/ds + dL/dcount`` at full size.
    """

    @staticmethod
    def forward(ctx, x: Tensor, leak: float, threshold: float, hard: bool,  # noqa: ANN001
                surrogate: Surrogate, steps: int | None = None) -> tuple[Tensor, Tensor]:
        return _lif_forward(ctx, x, leak, threshold, hard, surrogate, steps)

    @staticmethod
    def backward(ctx, grad_spikes: Tensor,  # noqa: ANN001
                 grad_count: Tensor) -> tuple[Tensor | None, None, None, None, None, None]:
        return _lif_backward(ctx, grad_spikes, grad_count), None, None, None, None, None


def _grad_rows(grad_spikes: Tensor, perm: list[int] | None) -> Tensor:
    """The incoming gradient as rows in the same memory order as the saved ``h``."""
    g = grad_spikes if perm is None else grad_spikes.permute(0, *perm)
    return g.reshape(g.shape[0], -1)
