"""The fast multi-step neuron: the whole T loop in one autograd node with a hand-written BPTT backward.

Dynamics (identical to ``neurons.BaseNeuron``, bit for bit in the forward):

    h_t = x_t + leak * v_{t-1}                 (v_0 = 0; leak = 1 for IF; two roundings, no fused multiply-add)
    s_t = [h_t >= threshold]
    v_t = h_t - threshold * s_t                (soft reset)   or   h_t * (1 - s_t)   (hard reset to 0)

The reset uses the detached spike, so with ``d_t = surrogate'(h_t - threshold)`` the backward is

    dL/dh_t = dL/ds_t * d_t + leak * m_t * dL/dh_{t+1},    m_t = 1 (soft) or 1 - s_t (hard),   dL/dx_t = dL/dh_t

The compiled kernels save only the input ``x``: the backward recomputes ``h`` (and from it the spikes and ``d``)
with the forward's own arithmetic, so the recomputed values are the forward's, bit for bit. Recomputing costs a few
flops per element and saves writing and re-reading ``h`` in float32; ``x`` is the smaller tensor (bf16 under
autocast, one step under direct encoding). The eager kernels (small layers) save ``h``, which is cheaper for them
than a second loop of eager ops. State is kept in at least float32 even when autocast hands in bf16, so
low-precision runs still integrate accurately.

``pool=True`` folds a following 2x2 average pooling (``AvgPool2d(2)`` on [T, B, C, H, W], H and W even) into the
node: it returns the pooled spikes, the backward spreads their gradient back over the 2x2 cells inside the kernel,
and the full-resolution spikes never reach memory. The count is still that of the neuron's own spikes.

The kernels work on the input in its own memory order (channels-last stays channels-last, no copy): [T, N] rows,
or [T, *dims in memory order] when pooling. On large layers they run through ``torch.compile``, which turns the
whole loop into one pass over memory (forward: read x, write spikes; backward: read x and the incoming gradient,
write dL/dx) instead of about ten eager passes, each allocating a tensor the size of the layer. Small layers, and
any failure to compile, use the eager kernels: same arithmetic, same spikes.
``SPARSITY_SEARCH_COMPILE`` = ``auto`` (default) | ``1`` | ``0``.
A first compile costs seconds (tens on 2 CPU cores with a cold cache: docs/benchmarks.md), so
``auto`` compiles only layers of at least ``COMPILE_MIN_ELEMENTS`` (T * N) values.

``FusedLIFCount`` also returns the spike count the sparsity loss needs, and, given one step that direct encoding
repeats over T, returns its gradient summed over T: neither the count nor the T per-step gradients of such an input
then cost a pass over memory of their own.

One kernel serves one network and a population of K (``population.PopulationNet``): with ``members=True`` the dim
after the batch is the member axis ([T, B, K, ...]), leak, threshold and surrogate slope may each be a float or one
value per member (K values, e.g. [K, 1]), and the count comes back per member, [K]. A single network is the float
case with one count. Constants reach the compiled kernels as tensors, so one compilation serves every value.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Callable

import torch
from torch import Tensor

from .layers import is_time_constant
from .surrogate import Surrogate

log = logging.getLogger(__name__)

# Below this many elements per call (T * N) an eager step is cheap enough on a CPU core that the seconds a first
# compile takes would not pay back within a short trial (docs/benchmarks.md).
COMPILE_MIN_ELEMENTS = 1 << 20


def state_dtype(x: Tensor) -> torch.dtype:
    """The membrane dtype for input ``x``: float32, or float64 for float64 input."""
    return torch.promote_types(x.dtype, torch.float32)


Constant = float | Tensor  # one value for every neuron, or (``members=True``) one per member: K values, e.g. [K, 1]


# --- the kernels, on [T, ...] in memory order (or [1, ...] when every step has the same input) ----------------------

Pooling = tuple[int, int] | None  # positions of H and W among the non-time dims of the kernel's input, or no pooling
Member = int | None  # position of the member axis among the non-time dims of the kernel's input, or one network


def _pool_split(x: Tensor, pool: tuple[int, int]) -> Tensor:
    """``x`` [T, ...] with the H and W dims (``pool``, non-time positions) each split into (size // 2, 2)."""
    for d in sorted(pool, reverse=True):  # the later dim first, so the earlier position stays valid
        x = x.unflatten(d + 1, (x.shape[d + 1] // 2, 2))
    return x


def _pair_dims(pool: tuple[int, int]) -> tuple[int, int]:
    """Positions of the two size-2 pair dims in one step of ``_pool_split``'s output."""
    first, second = sorted(pool)
    return first + 1, second + 2


def _split_member(member: Member, pool: Pooling) -> Member:
    """The member axis's position in one step of ``_pool_split``'s output."""
    if member is None or pool is None:
        return member
    return member + sum(d < member for d in pool)


def _count_step(s: Tensor, member: Member) -> Tensor:
    """Spikes of one step (bool or 0/1) summed as float32: in all (0-dim), or per member ([K])."""
    if member is None:
        return s.sum(dtype=torch.float32)
    return s.sum([d for d in range(s.dim()) if d != member], dtype=torch.float32)


def _states(x: Tensor, steps: int, leak: Tensor, threshold: Tensor, hard: bool) -> list[tuple[Tensor, Tensor]]:
    """(h_t, s_t) for every step: the recurrence both compiled kernels trace, so both compute the same h."""
    v = torch.zeros_like(x[0], dtype=leak.dtype)
    out = []
    for t in range(steps):
        h = x[0 if x.shape[0] == 1 else t] + leak * v
        s = h >= threshold
        v = torch.where(s, 0.0, h) if hard else h - threshold * s.to(h.dtype)
        out.append((h, s))
    return out


def _forward_kernel(x: Tensor, steps: int, leak: Tensor, threshold: Tensor, hard: bool,
                    pool: Pooling, member: Member) -> tuple[Tensor, Tensor]:
    """Spikes (pooled when ``pool``) in x's dtype, [T, ...], and the spike count (float32, 0-dim or [K]).

    ``member`` is the member axis's position in one step of the (split) input. Functional, so that
    ``torch.compile`` fuses it into one pass.
    """
    xs = x if pool is None else _pool_split(x, pool)
    outs, count = [], None
    for _, s in _states(xs, steps, leak, threshold, hard):
        spikes = s.to(x.dtype)
        n = _count_step(s, member)
        count = n if count is None else count + n
        outs.append(spikes if pool is None else spikes.sum(_pair_dims(pool)) * 0.25)
    return torch.stack(outs), count


def _backward_kernel(x: Tensor, grad_out: Tensor, grad_count: Tensor, steps: int, leak: Tensor, threshold: Tensor,
                     slope: Tensor, derivative: Callable[[Tensor, Tensor], Tensor], hard: bool, sum_steps: bool,
                     pool: Pooling) -> Tensor:
    """dL/dx [T, ...] (or summed over T, [1, ...], when every step had the same input) from x (h recomputed),
    dL/d(output) ([T, ...], or [1, ...] when the same at every step) and dL/dcount (laid out to broadcast against
    one step), last step first (the recurrence above)."""
    xs = x if pool is None else _pool_split(x, pool)
    states = _states(xs, steps, leak, threshold, hard)
    grads: list[Tensor] = []  # in x's dtype, last step first
    g = total = None
    for t in range(len(states) - 1, -1, -1):
        h, s = states[t]
        g_out = grad_out[0 if len(grad_out) == 1 else t].to(h.dtype)
        if pool is not None:  # each pooled value is the mean of its 2x2 cell: a quarter of its gradient to each
            for d in _pair_dims(pool):
                g_out = g_out.unsqueeze(d)
            g_out = g_out * 0.25
        carry = None if g is None else (leak * (~s).to(h.dtype) if hard else leak) * g
        g = derivative(h - threshold, slope) * (g_out + grad_count)
        g = g if carry is None else g + carry
        if sum_steps:
            total = g if total is None else total + g  # a running sum: stacking then summing would store all T
        else:
            grads.append(g.to(x.dtype))
    out = total.to(x.dtype).unsqueeze(0) if sum_steps else torch.stack(grads[::-1])
    return out if pool is None else _pool_merge(out, pool)


def _pool_merge(x: Tensor, pool: tuple[int, int]) -> Tensor:
    """Undo ``_pool_split``: merge each (size // 2, 2) pair back into one dim."""
    for d in sorted(pool):
        x = x.flatten(d + 1, d + 2)
    return x


def _eager_forward(x: Tensor, steps: int, leak: Constant, threshold: Constant, hard: bool, h_out: Tensor | None,
                   spike_dtype: torch.dtype) -> Tensor:
    """``_forward_kernel`` with preallocated outputs and four ops per step; returns spikes [T, ...] in
    ``spike_dtype``. Tensor constants are laid out to broadcast against one step; floats take the scalar ops.

    Everything runs in the state dtype: on CPU an op mixing bf16 and fp32 copies its bf16 operand first, so bf16
    input is cast once up front and spikes once at the end. The resets are exact rewrites of the kernel's:
    threshold * s and h * s are exact for s in {0, 1}.
    """
    sd = state_dtype(x)
    xs = x.to(sd).unbind(0)  # one op for all T views instead of one select per step
    spikes = torch.empty((steps, *x.shape[1:]), dtype=sd, device=x.device)
    hs = h_out.unbind(0) if h_out is not None else (None,) * steps
    decays = isinstance(leak, Tensor) or leak != 1.0
    v = None
    for t, (s, h) in enumerate(zip(spikes.unbind(0), hs)):
        xt = xs[0 if len(xs) == 1 else t]
        if v is None:
            h = xt.clone() if h is None else h.copy_(xt)
        else:
            if decays:
                v.mul_(leak)
            h = torch.add(xt, v, out=h) if h is not None else xt + v
        torch.ge(h, threshold, out=s)
        if hard:
            v = torch.addcmul(h, h, s, value=-1.0)
        elif isinstance(threshold, Tensor):
            v = torch.addcmul(h, s, threshold, value=-1.0)
        else:
            v = torch.add(h, s, alpha=-threshold)
    return spikes.to(spike_dtype)


def _eager_backward(h: Tensor, grad_spikes: Tensor, grad_count: Tensor, leak: Constant, threshold: Constant,
                    slope: Constant, derivative: Callable[[Tensor, Constant], Tensor], hard: bool,
                    out_dtype: torch.dtype, sum_steps: bool) -> Tensor:
    shifted = h - threshold
    grad_s = grad_spikes.to(h.dtype) + grad_count
    grad = derivative(shifted, slope).mul_(grad_s)  # becomes dL/dh in place, last step first
    steps = grad.unbind(0)
    if hard:
        keep = (shifted < 0).to(grad.dtype).mul_(leak).unbind(0)  # leak * (1 - s_t)
        for t in range(len(steps) - 2, -1, -1):
            steps[t].addcmul_(keep[t], steps[t + 1])
    elif isinstance(leak, Tensor):
        for t in range(len(steps) - 2, -1, -1):
            steps[t].addcmul_(steps[t + 1], leak)
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
        self.runs = 0  # compiled kernel calls that returned: whether compiled code really ran (tests, debugging)

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
            for arg in args[:2]:  # x and dL/d(out): one kernel for every batch size (and, for rows, layer width)
                if isinstance(arg, Tensor) and arg.dim() >= 2 and arg.shape[1] > 1:
                    torch._dynamo.mark_dynamic(arg, 1)
            out = (self.forward if name == "forward" else self.backward)(*args)
            self.runs += 1
            return out
        except Exception as err:  # noqa: BLE001 - any compiler problem: fall back, never fail the training
            self.failed = True
            log.warning("torch.compile of the LIF kernels failed (%s: %s); using the eager kernels",
                        type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            return None


COMPILED = _Compiled()


# --- layout: run on the input's memory order ------------------------------------------------------------------------

def _memory_order(x_seq: Tensor) -> tuple[Tensor, list[int] | None]:
    """``x_seq`` [T, B, ...] (only its first step, [1, B, ...], when the time axis has stride 0) with the non-time
    dims permuted into memory order, so that it is contiguous without a copy when possible (channels-last included);
    and that permutation of the non-time dims (None: already in order), to undo on the results."""
    x = x_seq[:1] if is_time_constant(x_seq) else x_seq
    if x.is_contiguous():
        return x, None
    perm = sorted(range(1, x.dim()), key=lambda d: -x.stride(d))
    xp = x.permute(0, *perm)
    if not xp.is_contiguous():
        return x.contiguous(), None
    return xp, perm


def _restore(y: Tensor, perm: list[int] | None) -> Tensor:
    """Undo ``_memory_order``'s permutation on a tensor laid out like its output."""
    if perm is None:
        return y
    inverse = [0] * y.dim()
    for i, d in enumerate(perm, 1):
        inverse[d] = i
    return y.permute(inverse)


def _pooling(perm: list[int] | None, dim: int) -> tuple[int, int]:
    """Positions of H and W (the last two dims of a ``dim``-dim input) among the non-time dims in memory order."""
    order = perm if perm is not None else list(range(1, dim))
    return order.index(dim - 2), order.index(dim - 1)


def _member_axis(perm: list[int] | None) -> int:
    """Position of the member axis (dim 2 of [T, B, K, ...]) among the non-time dims in memory order."""
    return 1 if perm is None else perm.index(2)


def _pool_mean(spikes: Tensor, pool: tuple[int, int]) -> Tensor:
    """2x2 average pooling of ``spikes`` [T, ...] (eager kernels)."""
    return _pool_split(spikes, pool).sum(tuple(d + 1 for d in _pair_dims(pool))) * 0.25


def _pool_spread(grad: Tensor, pool: tuple[int, int]) -> Tensor:
    """The gradient of ``_pool_mean``: each pooled cell's gradient, a quarter to each of its 2x2 inputs."""
    for d in _pair_dims(pool):
        grad = grad.unsqueeze(d + 1)
    shape = list(grad.shape)
    for d in _pair_dims(pool):
        shape[d + 1] = 2
    return _pool_merge(grad.expand(shape) * 0.25, pool)


def _kernel_view(x: Tensor, pool: Pooling, member: Member) -> tuple[Tensor, Member]:
    """What the kernels take, and the member axis's position in it: [T, N] rows (one dynamic dim, best vectorised),
    [T, N, K, M] for members, or [T, ...] in memory order when pooling."""
    if pool is not None:
        return x, member
    if member is None:
        return x.reshape(x.shape[0], -1), None
    return x.reshape(x.shape[0], math.prod(x.shape[1:member + 1]), x.shape[member + 1], -1), 1


def _constants(x: Tensor, values: tuple[Constant, ...], member: Member, pool: Pooling,
               as_tensors: bool) -> list[Constant]:
    """``values`` for the kernels on ``x``: per-member tensors laid out along the member axis of one step (split
    for pooling when ``pool``), 0-dim tensors in the state dtype, floats as they are or (``as_tensors``, compiled
    kernels) as 0-dim tensors."""
    rank = x.dim() - 1 + (2 if pool is not None else 0)
    axis = _split_member(member, pool)
    out: list[Constant] = []
    for v in values:
        if isinstance(v, Tensor) and v.dim() > 0:
            if member is None:
                raise ValueError("per-member constants need members=True")
            shape = [1] * rank
            shape[axis] = -1
            out.append(v.to(device=x.device, dtype=state_dtype(x)).reshape(shape))
        elif isinstance(v, Tensor):
            out.append(v.to(device=x.device, dtype=state_dtype(x)))
        else:
            out.append(torch.tensor(v, dtype=state_dtype(x), device=x.device) if as_tensors else v)
    return out


def lif_loop(x_seq: Tensor, leak: Constant, threshold: Constant, hard: bool, members: bool = False) -> Tensor:
    """The dynamics without gradients: spikes [T, B, ...] in x's dtype (autograd off, e.g. evaluation)."""
    return _run_forward(None, x_seq, leak, threshold, hard, None, None, False, members)[0]


def lif_count(x_seq: Tensor, leak: Constant, threshold: Constant, hard: bool, surrogate: Surrogate,
              steps: int | None = None, pool: bool = False, members: bool = False) -> tuple[Tensor, Tensor]:
    """``FusedLIFCount`` when gradients flow to ``x_seq``; otherwise the same outputs from the plain loop."""
    if torch.is_grad_enabled() and x_seq.requires_grad:
        return FusedLIFCount.apply(x_seq, leak, threshold, hard, surrogate, steps, pool, members)
    return _run_forward(None, x_seq, leak, threshold, hard, surrogate, steps, pool, members)


def _run_forward(ctx, x_seq: Tensor, leak: Constant, threshold: Constant, hard: bool,  # noqa: ANN001
                 surrogate: Surrogate | None, steps: int | None, pool: bool, members: bool) -> tuple[Tensor, Tensor]:
    """The forward of ``FusedLIFCount`` (with ``ctx``) and of the plain loop (``ctx`` None: eager, nothing saved):
    spikes [T, B, ...] (pooled when ``pool``) and their count (0-dim, or [K] with ``members``).

    ``steps`` given: ``x_seq`` is one step [B, ...], the input at every one of ``steps`` steps (direct encoding),
    and the backward returns dL/dx summed over time, [B, ...], without materialising the T per-step gradients.
    """
    sum_steps = steps is not None
    if steps is not None:
        x_seq = x_seq.unsqueeze(0).expand(steps, *x_seq.shape)
    steps = x_seq.shape[0]
    x, perm = _memory_order(x_seq)
    pooling = _pooling(perm, x_seq.dim()) if pool else None
    view, member = _kernel_view(x, pooling, _member_axis(perm) if members else None)
    result = None
    if ctx is not None and COMPILED.wanted(steps * x[0].numel()):
        result = COMPILED.run("forward", view, steps, *_constants(view, (leak, threshold), member, pooling, True),
                              hard, pooling, _split_member(member, pooling))
    if result is not None:  # the compiled backward recomputes h from x
        out, count = result
        saved = view
    else:  # small layer: h costs little to keep, and recomputing it would cost a loop of eager ops
        h = None if ctx is None else torch.empty((steps, *view.shape[1:]), dtype=state_dtype(x), device=x.device)
        out = _eager_forward(view, steps, *_constants(view, (leak, threshold), member, None, False), hard, h, x.dtype)
        count = out.sum(dtype=torch.float32) if member is None else out.sum(
            [d for d in range(out.dim()) if d != member + 1], dtype=torch.float32)
        out = out if pooling is None else _pool_mean(out, pooling)
        saved = h
    out = out.view(steps, *x.shape[1:]) if pooling is None else out
    if ctx is not None:
        ctx.save_for_backward(saved)
        ctx.recompute = result is not None
        ctx.sum_steps = sum_steps
        ctx.params = (leak, threshold, hard, surrogate, perm, pooling, member, steps, x.dtype, x.shape[1:])
    return _restore(out, perm), count


def _lif_backward(ctx, grad_out: Tensor, grad_count: Tensor | None) -> Tensor:  # noqa: ANN001
    (saved,) = ctx.saved_tensors  # x (the kernel's view) when the forward was compiled, else h
    leak, threshold, hard, surrogate, perm, pooling, member, steps, in_dtype, x_shape = ctx.params
    grad_out = grad_out if perm is None else grad_out.permute(0, *perm)  # the memory order of x
    # One layout for the kernels (no strided reads, no recompiles); a gradient that is the same at every step
    # (the readout's mean over T hands one in) is passed as that one step.
    grad_out = (grad_out[:1] if is_time_constant(grad_out) else grad_out).contiguous()
    if pooling is None:
        grad_out = grad_out.view(grad_out.shape[0], *saved.shape[1:])
    gc = torch.zeros((), device=saved.device) if grad_count is None else grad_count
    constants = (leak, threshold, surrogate.slope)
    grad = None
    if ctx.recompute and COMPILED.wanted(steps * math.prod(x_shape)):
        compiled = _constants(saved, (*constants, gc), member, pooling, True)
        grad = COMPILED.run("backward", saved, grad_out, compiled[3], steps, *compiled[:3], surrogate.derivative_at,
                            hard, ctx.sum_steps, pooling)
    if grad is None:
        h = saved
        if ctx.recompute:  # compiling the backward failed: recompute h with the eager kernel
            h = torch.empty((steps, *saved.shape[1:]), dtype=state_dtype(saved), device=saved.device)
            _eager_forward(saved, steps, *_constants(saved, constants[:2], member, None, False), hard, h, in_dtype)
        grad_spikes = grad_out if pooling is None else _pool_spread(grad_out, pooling)
        eager = _constants(h, (*constants, gc), member, None, False)
        grad = _eager_backward(h, grad_spikes, eager[3], *eager[:3], surrogate.derivative_at, hard, in_dtype,
                               ctx.sum_steps)
    grad = _restore(grad.view(grad.shape[0], *x_shape), perm)
    return grad.squeeze(0) if ctx.sum_steps else grad


class FusedLIFCount(torch.autograd.Function):
    """Multi-step LIF/IF as one autograd node, returning the spikes (2x2-average-pooled when ``pool``) and their
    differentiable count (float32, 0-dim, or [K] per member with ``members``), as the sparsity loss needs:
    ``FusedLIFCount.apply(x_seq, leak, threshold, hard, surrogate, None, pool, members)``, or
    ``apply(x, ..., surrogate, steps, pool, members)`` for one input [B, ...] repeated at every step (see
    ``_run_forward``). Leak, threshold and ``surrogate.slope`` are floats, or with ``members`` one value per member.

    Counting inside the node saves a pass over the spikes in the forward, and in the backward the count's gradient
    (one number per member) is added inside the kernel instead of autograd materialising ``dL/ds + dL/dcount`` at
    full size.
    """

    @staticmethod
    def forward(ctx, x: Tensor, leak: Constant, threshold: Constant, hard: bool,  # noqa: ANN001
                surrogate: Surrogate, steps: int | None = None, pool: bool = False,
                members: bool = False) -> tuple[Tensor, Tensor]:
        return _run_forward(ctx, x, leak, threshold, hard, surrogate, steps, pool, members)

    @staticmethod
    def backward(ctx, grad_out: Tensor,  # noqa: ANN001
                 grad_count: Tensor) -> tuple[Tensor | None, None, None, None, None, None, None, None]:
        return _lif_backward(ctx, grad_out, grad_count), None, None, None, None, None, None, None
