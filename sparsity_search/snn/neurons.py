"""Spiking neurons in the SpikingJelly mould: a charge / fire / reset template with single- and multi-step modes.

``step_mode='s'`` takes ``x`` [B, ...] and keeps the membrane ``v`` between calls until ``reset()``;
``step_mode='m'`` takes ``x_seq`` [T, B, ...], starts every call from ``v = 0`` (one call is one whole sequence,
so no ``reset_net`` is needed between batches) and returns spikes [T, B, ...] in ``x_seq``'s dtype.

Multi-step has two implementations with the same forward, bit for bit:
``'reference'`` loops over T calling ``single_step_forward`` (readable, autograd does BPTT), and
``'fast'`` is ``fused.FusedLIFCount`` (one autograd node, hand-written BPTT). Without gradients both use a plain loop.

``pool=True`` makes the neuron's output its spikes average-pooled 2x2 (the model folds an ``AvgPool2d(2)`` that follows
the neuron into it): the fused node then pools inside its kernels, so full-resolution spikes never reach memory.
Spike counts are always of the neuron's own spikes.

The reset uses the detached spike: gradients flow through the charge and the surrogate, not through the reset.
Zenke & Vogels (Neural Computation 2021) found this trains at least as well, and snnTorch does the same; it also
keeps the fused backward to one multiply-add per step. The spike count is never recorded here: callers sum the
spikes ``forward`` returns (see ``models.SpikingNet``).
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fused import FusedLIFCount, lif_loop, state_dtype
from .layers import is_time_constant
from .surrogate import FastSigmoid, Surrogate

STEP_MODES = ("s", "m")
IMPLEMENTATIONS = ("fast", "reference")
RESETS = ("soft", "hard")


class BaseNeuron(nn.Module, abc.ABC):
    """Template: ``neuronal_charge`` (subclass) -> ``neuronal_fire`` -> ``neuronal_reset``."""

    leak: float = 1.0  # per-step decay of v; the fused path reads it, so charge must be x + leak * v

    def __init__(self, threshold: float = 1.0, reset: str = "soft", surrogate: Surrogate | None = None,
                 implementation: str = "fast", step_mode: str = "m", pool: bool = False) -> None:
        super().__init__()
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
        self.threshold = float(threshold)
        self.reset_mode = reset
        self.surrogate = surrogate if surrogate is not None else FastSigmoid(5.0)
        self.implementation = implementation
        self.step_mode = step_mode
        self.pool = pool
        self.v: Tensor | None = None

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        if value not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {STEP_MODES}, got {value!r}")
        self._step_mode = value

    def reset(self) -> None:
        """Forget the single-step membrane state."""
        self.v = None

    @abc.abstractmethod
    def neuronal_charge(self, x: Tensor) -> Tensor:
        """Return the pre-threshold membrane h_t from ``self.v`` (v_{t-1}) and the input ``x``."""

    def neuronal_fire(self, h: Tensor) -> Tensor:
        return self.surrogate(h - self.threshold)

    def neuronal_reset(self, h: Tensor, spike: Tensor) -> Tensor:
        spike = spike.detach()
        if self.reset_mode == "hard":
            return h * (1.0 - spike)
        return h - self.threshold * spike

    def single_step_forward(self, x: Tensor) -> Tensor:
        if self.v is None:
            self.v = torch.zeros(x.shape, dtype=state_dtype(x), device=x.device)
        h = self.neuronal_charge(x)
        spike = self.neuronal_fire(h)
        self.v = self.neuronal_reset(h, spike)
        return spike.to(x.dtype)

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        if self._fused(x_seq):
            return self._fused_forward(x_seq)[0]
        return self._pool_out(self._loop(x_seq))

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "s":
            return self._pool_out(self.single_step_forward(x))
        return self.multi_step_forward(x)

    def forward_with_count(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The output and the differentiable total of the spikes (float32, 0-dim); the fast path counts inside its
        fused node.

        Used by ``models.SpikingNet``; it does not go through ``__call__``, so module hooks do not see it.
        """
        if self.step_mode == "m" and self._fused(x):
            return self._fused_forward(x)
        spikes = self.single_step_forward(x) if self.step_mode == "s" else self._loop(x)
        return self._pool_out(spikes), spikes.sum(dtype=torch.float32)

    def _fused(self, x: Tensor) -> bool:
        return self.implementation == "fast" and torch.is_grad_enabled() and x.requires_grad

    def _fused_forward(self, x_seq: Tensor) -> tuple[Tensor, Tensor]:
        """The fused node's output (pooled inside it when it can) and spike count (free there: counted in-kernel)."""
        fuse = self._fuses_pool(x_seq)
        args = (self.leak, self.threshold, self.reset_mode == "hard", self.surrogate)
        step = _repeated_step(x_seq)
        if step is not None:  # direct encoding: take the one step, its gradient is summed over T in the node
            out, count = FusedLIFCount.apply(step, *args, x_seq.shape[0], fuse)
        else:
            out, count = FusedLIFCount.apply(x_seq, *args, None, fuse)
        return (out if fuse else self._pool_out(out)), count

    def _fuses_pool(self, x_seq: Tensor) -> bool:
        """Whether the fused node can pool: [T, B, C, H, W] with H and W even (odd sizes pool after the node)."""
        return self.pool and x_seq.dim() == 5 and x_seq.shape[-1] % 2 == 0 and x_seq.shape[-2] % 2 == 0

    def _loop(self, x_seq: Tensor) -> Tensor:
        """Spikes [T, B, ...] without the fused node: a plain loop without gradients, else the reference BPTT."""
        if not (torch.is_grad_enabled() and x_seq.requires_grad):
            return lif_loop(x_seq, self.leak, self.threshold, self.reset_mode == "hard")
        self.reset()
        spikes = torch.stack([self.single_step_forward(x) for x in x_seq.unbind(0)])
        self.reset()  # drop the last state so it does not keep the graph alive
        return spikes

    def _pool_out(self, spikes: Tensor) -> Tensor:
        """The spikes 2x2-average-pooled when ``pool`` (one step [B, C, H, W] or a sequence [T, B, C, H, W])."""
        if not self.pool:
            return spikes
        if spikes.dim() == 5:
            return F.avg_pool2d(spikes.flatten(0, 1), 2).unflatten(0, spikes.shape[:2])
        return F.avg_pool2d(spikes, 2)

    def extra_repr(self) -> str:
        return (f"leak={self.leak}, threshold={self.threshold}, reset={self.reset_mode}, "
                f"surrogate={self.surrogate}, implementation={self.implementation}, step_mode={self.step_mode}"
                + (", pool=2x2 average" if self.pool else ""))


class LIF(BaseNeuron):
    """Leaky integrate-and-fire: v decays by ``leak`` per step before the input is added."""

    def __init__(self, leak: float = 0.9, **kwargs) -> None:  # noqa: ANN003 - BaseNeuron's arguments
        super().__init__(**kwargs)
        if not 0.0 < leak <= 1.0:
            raise ValueError(f"leak must be in (0, 1], got {leak}")
        self.leak = float(leak)

    def neuronal_charge(self, x: Tensor) -> Tensor:
        return x + self.leak * self.v  # two roundings, as in the fused kernels, so spikes match bit for bit


class IF(BaseNeuron):
    """Integrate-and-fire: no leak."""

    def neuronal_charge(self, x: Tensor) -> Tensor:
        return x + self.v


def _repeated_step(x_seq: Tensor) -> Tensor | None:
    """The one step [B, ...] that ``x_seq`` repeats over time, when it is ``step.unsqueeze(0).expand(T, ...)``.

    ``layers.SeqToANN`` returns such a view under direct encoding; ``_base`` is the tensor it views.
    """
    base = x_seq._base
    if (is_time_constant(x_seq) and base is not None and base.shape == x_seq.shape[1:]
            and base.stride() == x_seq.stride()[1:] and base.data_ptr() == x_seq.data_ptr()):
        return base
    return None


def reset_net(net: nn.Module) -> None:
    """Reset every neuron in ``net`` (only needed for single-step use)."""
    for module in net.modules():
        if isinstance(module, BaseNeuron):
            module.reset()


def set_step_mode(net: nn.Module, step_mode: str) -> None:
    """Switch every neuron in ``net`` to ``step_mode`` ('s' or 'm')."""
    for module in net.modules():
        if isinstance(module, BaseNeuron):
            module.step_mode = step_mode
