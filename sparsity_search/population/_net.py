"""K copies of one ``SpikingNet`` as a single computation: every weight gets a leading population dimension.

Built from K ordinary models (each made by ``build_model`` under its own seed, so member k starts exactly where
``train`` would start it) and mirrors ``SpikingNet.forward`` layer by layer. Activations carry the member axis:

    before the first weight layer   [N, *sample]          shared by all members (N = B, or T*B for Poisson input)
    conv blocks                     [N, K*C, H, W]        members side by side in the channels: grouped convs
    linear blocks                   [N, K, F]             per-member matmul (``baddbmm``)

The first weight layer sees the same input for every member, so its K weight matrices (or conv kernels) are
concatenated and run as one GEMM (one convolution). With direct encoding that input is the same at every step, and
as in ``layers.SeqToANN`` it is computed once and expanded over T (stride 0). BatchNorm over K*C channels is exactly
K independent BatchNorms.

Why not ``torch.func.vmap``: the neuron's autograd Functions (``FusedLIFCount``, the surrogate's Heaviside) have no
vmap rule, so vmap needs a pure-function network with a per-step surrogate; measured on the shared 2-core machine
(1 thread, digits MLP 64-128-10, T=4, B=64, K=8, forward + backward) that took 14.7-18.9 ms per step against
11.7-12.0 ms here, and it cannot share the first GEMM.

Neurons follow ``snn.fused.FusedLIFCount`` (same forward ops, same detached-reset BPTT) with the threshold, leak and
surrogate slope given per member as tensors broadcast over the member axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import TrainConfig
from ..snn import BaseNeuron, SeqToANN, SpikingNet, get_surrogate
from ..snn.layers import is_time_constant
from ..snn.fused import state_dtype
from ..snn.surrogate import Surrogate


def _lif_forward(x_seq: Tensor, leak: Tensor, threshold: Tensor, hard: bool,
                 h_out: Tensor | None = None) -> Tensor:
    """``fused.lif_loop`` with per-member ``leak``/``threshold`` broadcast against ``x_seq[t]`` ([B, K, M]).

    Spikes come back in ``x_seq``'s dtype and in its memory layout (so views stay views). They are written as
    0/1 floats directly and the resets use float arithmetic, which on CPU is 3-4x faster per step than bool
    spikes with a mixed-dtype reset; the values are the same: h - threshold * s, and h - h * s (= 0 or h).
    """
    spikes = torch.empty_like(x_seq)
    v = torch.zeros(x_seq.shape[1:], dtype=state_dtype(x_seq), device=x_seq.device)
    for t in range(x_seq.shape[0]):
        h = torch.addcmul(x_seq[t], v, leak, out=h_out[t]) if h_out is not None else torch.addcmul(x_seq[t], v, leak)
        s = torch.ge(h, threshold, out=spikes[t])
        v = torch.addcmul(h, h, s, value=-1.0) if hard else torch.addcmul(h, s, threshold, value=-1.0)
    return spikes


class PopulationLIF(torch.autograd.Function):
    """Multi-step LIF/IF for K members at once: ``x_seq`` [T, B, K, M], parameters [K, 1]."""

    @staticmethod
    def forward(ctx, x_seq: Tensor, leak: Tensor, threshold: Tensor, hard: bool,  # noqa: ANN001
                surrogate: Surrogate) -> Tensor:
        h = torch.empty_like(x_seq, dtype=state_dtype(x_seq))
        spikes = _lif_forward(x_seq, leak, threshold, hard, h_out=h)
        ctx.save_for_backward(h, leak, threshold)
        ctx.params = (hard, surrogate, x_seq.dtype)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: Tensor) -> tuple[Tensor | None, None, None, None, None]:  # noqa: ANN001
        h, leak, threshold = ctx.saved_tensors
        hard, surrogate, in_dtype = ctx.params
        shifted = h - threshold
        grad = surrogate.derivative(shifted).mul_(grad_spikes)
        if hard:
            keep = (shifted < 0).to(grad.dtype).mul_(leak)
            for t in range(h.shape[0] - 2, -1, -1):
                grad[t].addcmul_(keep[t], grad[t + 1])
        else:
            for t in range(h.shape[0] - 2, -1, -1):
                grad[t].addcmul_(grad[t + 1], leak)
        return grad.to(in_dtype), None, None, None, None


@dataclass
class _Act:
    """An activation: ``x`` plus whether it is still shared by all members and whether it is constant over T."""

    x: Tensor
    shared: bool
    time_constant: bool


class PopulationNet(nn.Module):
    """K ``SpikingNet``s of one architecture, trained as one. ``forward`` returns logits [K, B, C], spikes [L, K]."""

    def __init__(self, members: Sequence[SpikingNet], cfgs: Sequence[TrainConfig]) -> None:
        super().__init__()
        self.k = len(members)
        self.template = members[0]  # its layer bookkeeping feeds spike_stats
        self.stages: list[tuple[str, list]] = []  # ("stateless", [layers, full_precision]) | ("neuron", [hard])
        self.weights: list[Tensor] = []  # stacked leaf tensors [K, ...]; layers refer to them by index
        self.stats: list[Tensor] = []  # BatchNorm running statistics, [K, C], also by index
        for parts in zip(*(m.body for m in members)):
            if isinstance(parts[0], SeqToANN):
                # full_precision: the model's input block runs in float32 under autocast (see layers.SeqToANN)
                mods = [self._stack(list(mods)) for mods in zip(*parts)]
                self.stages.append(("stateless", [mods, getattr(parts[0], "full_precision", False)]))
            elif isinstance(parts[0], BaseNeuron):
                self.stages.append(("neuron", [parts[0].reset_mode == "hard", parts[0].pool]))
            else:
                raise ValueError(f"population training cannot stack {type(parts[0]).__name__}")
        self.readout = self._stack([m.readout for m in members])
        self.surrogate = get_surrogate(cfgs[0].surrogate, 1.0)  # slope set per member by set_members
        self.set_members(cfgs)

    def set_members(self, cfgs: Sequence[TrainConfig]) -> None:
        """Per-member neuron constants as [K, 1] tensors; the surrogate's slope too (the formulas broadcast)."""
        dev = self.weights[0].device
        col = lambda values: torch.tensor(values, dtype=torch.float32, device=dev).unsqueeze(1)  # noqa: E731
        self.leak = col([c.leak for c in cfgs])
        self.threshold = col([c.threshold for c in cfgs])
        slopes = {c.surrogate_slope for c in cfgs}  # a float when shared: scalar kernels are cheaper
        self.surrogate.slope = slopes.pop() if len(slopes) == 1 else col([c.surrogate_slope for c in cfgs])

    def _param(self, tensors: list[Tensor]) -> int:
        self.weights.append(torch.stack([t.detach() for t in tensors]).contiguous().requires_grad_())
        return len(self.weights) - 1

    def _stack(self, mods: list[nn.Module]) -> tuple:
        m = mods[0]
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            kind = "linear" if isinstance(m, nn.Linear) else "conv"
            bias = self._param([x.bias for x in mods]) if m.bias is not None else None
            return (kind, self._param([x.weight for x in mods]), bias, m)
        if isinstance(m, nn.BatchNorm2d):
            self.stats += [torch.stack([x.running_mean for x in mods]), torch.stack([x.running_var for x in mods])]
            stats = (len(self.stats) - 2, len(self.stats) - 1)
            return ("bn", self._param([x.weight for x in mods]), self._param([x.bias for x in mods]), m, stats)
        if isinstance(m, nn.Flatten):
            return ("same", m)
        raise ValueError(f"population training cannot stack {type(m).__name__}")

    def select(self, keep: Tensor, cfgs: Sequence[TrainConfig]) -> None:
        """Keep only the members at ``keep`` (indices into the current population)."""
        with torch.no_grad():
            self.weights = [w[keep].contiguous().requires_grad_() for w in self.weights]
            self.stats = [s[keep].contiguous() for s in self.stats]
        self.k = len(keep)
        self.set_members(cfgs)

    def _get(self, index: int | None) -> Tensor | None:
        return None if index is None else self.weights[index]

    # --- forward -----------------------------------------------------------------------------------------------
    def _weight_layer(self, spec: tuple, a: _Act) -> _Act:
        kind, w, b = spec[0], self.weights[spec[1]], self._get(spec[2])
        k = self.k
        if kind == "linear":
            if a.shared:  # one GEMM for all members: [N, F] @ [F, K*O]
                y = F.linear(a.x, w.reshape(-1, w.shape[-1]), None if b is None else b.reshape(-1))
                return _Act(y.unflatten(1, (k, -1)), False, a.time_constant)
            x = a.x.transpose(0, 1)  # [K, N, F]
            y = (torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)) if b is not None
                 else torch.bmm(x, w.transpose(1, 2)))
            return _Act(y.transpose(0, 1), False, a.time_constant)
        conv = spec[3]
        groups = 1 if a.shared else k
        y = F.conv2d(a.x, w.flatten(0, 1), None if b is None else b.flatten(), conv.stride, conv.padding,
                     conv.dilation, groups)
        return _Act(y, False, a.time_constant)

    def _stateless(self, mods: list[tuple], a: _Act) -> _Act:
        for spec in mods:
            kind = spec[0]
            if kind in ("linear", "conv"):
                a = self._weight_layer(spec, a)
            elif kind == "bn":
                w, b, bn = self.weights[spec[1]], self.weights[spec[2]], spec[3]
                mean, var = (self.stats[i] for i in spec[4])
                y = F.batch_norm(a.x, mean.view(-1), var.view(-1), w.flatten(), b.flatten(),
                                 self.training, bn.momentum, bn.eps)
                a = _Act(y, a.shared, a.time_constant)
            elif isinstance(spec[1], nn.Flatten) and not a.shared:  # [N, K*C, H, W] -> [N, K, C*H*W]
                a = _Act(a.x.unflatten(1, (self.k, -1)).flatten(2), False, a.time_constant)
            else:
                a = _Act(spec[1](a.x), a.shared, a.time_constant)
        return a

    def _stateless_stage(self, mods: list[tuple], full_precision: bool, a: _Act) -> _Act:
        device = a.x.device.type
        if not (full_precision and torch.is_autocast_enabled(device)):
            return self._stateless(mods, a)
        with torch.autocast(device, enabled=False):
            out = self._stateless(mods, _Act(a.x.float(), a.shared, a.time_constant))
        return _Act(out.x.to(torch.get_autocast_dtype(device)), out.shared, out.time_constant)

    def _neuron(self, hard: bool, pool: bool, a: _Act, timesteps: int) -> tuple[_Act, Tensor]:
        shape = a.x.shape
        x = a.x.reshape(shape[0], self.k, -1)  # [N, K, M]
        x_seq = x.unsqueeze(0).expand(timesteps, *x.shape) if a.time_constant else x.unflatten(0, (timesteps, -1))
        if torch.is_grad_enabled() and x_seq.requires_grad:
            s = PopulationLIF.apply(x_seq, self.leak, self.threshold, hard, self.surrogate)
        else:
            s = _lif_forward(x_seq, self.leak, self.threshold, hard)
        counts = s.sum(dim=(0, 1, 3), dtype=torch.float32)  # [K]
        out = s.flatten(0, 1)  # [T*B, K, M]
        if len(shape) == 4:  # conv layout [N, K*C, H, W]
            out = out.reshape(out.shape[0], *shape[1:])
            out = F.avg_pool2d(out, 2) if pool else out  # the single net pools inside its neuron (BaseNeuron.pool)
        return _Act(out, False, False), counts

    def forward(self, x_seq: Tensor) -> tuple[Tensor, Tensor]:
        timesteps = x_seq.shape[0]
        tc = is_time_constant(x_seq)
        a = _Act(x_seq[0] if tc else x_seq.flatten(0, 1), True, tc)
        spikes = []
        for kind, payload in self.stages:
            if kind == "stateless":
                a = self._stateless_stage(payload[0], payload[1], a)
            else:
                a, counts = self._neuron(*payload, a, timesteps)
                spikes.append(counts)
        x = a.x.reshape(timesteps, -1, self.k, a.x[0].numel() // self.k).mean(0)  # [B, K, F]: Readout's mean_t
        w, b = self.weights[self.readout[1]], self.weights[self.readout[2]]
        logits = torch.baddbmm(b.unsqueeze(1), x.transpose(0, 1), w.transpose(1, 2))  # [K, B, C]
        return logits, torch.stack(spikes)
