"""K copies of one ``SpikingNet`` as a single computation: every weight gets a leading population dimension.

Built from K ordinary models (each made by ``build_model`` under its own seed, so member k starts exactly where
``train`` would start it) and mirrors ``SpikingNet.forward`` layer by layer. Activations carry the member axis:

    before the first weight layer   [N, *sample]          shared by all members (N = B, or T*B for Poisson input)
    conv blocks                     [N, K*C, H, W]        members side by side in the channels: grouped convs,
                                                          channels-last like the single network's
    linear blocks                   [N, K, F]             per-member matmul (``baddbmm``)

The first weight layer sees the same input for every member, so its K weight matrices (or conv kernels) are
concatenated and run as one GEMM (one convolution). With direct encoding that input is the same at every step, and
as in ``layers.SeqToANN`` it is computed once and expanded over T (stride 0). BatchNorm over K*C channels is exactly
K independent BatchNorms.

The neurons are the single network's kernels (``snn.fused``) with the member axis declared (``members=True``):
threshold, leak and surrogate slope per member, spike counts per member, pooling folded in, compiled for large
layers. ``member_state(k)`` unstacks member k into its ``SpikingNet`` state_dict (its checkpoint).

Why not ``torch.func.vmap``: the neuron's autograd Functions (``FusedLIFCount``, the surrogate's Heaviside) have no
vmap rule, so vmap needs a pure-function network with a per-step surrogate, which measured slower per step than
the stacked weights here (docs/benchmarks.md, "Measurements behind design choices"), and it cannot share the
first GEMM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import TrainConfig
from ..snn import BaseNeuron, SeqToANN, SpikingNet, get_surrogate
from ..snn.fused import lif_count
from ..snn.layers import is_time_constant


class WeightLayer(NamedTuple):
    """A stacked ``nn.Linear`` or ``nn.Conv2d``: indices into ``PopulationNet.weights``; ``module`` is member 0's
    (its stride, padding and dilation)."""

    weight: int
    bias: int | None
    module: nn.Linear | nn.Conv2d


class BatchNorm(NamedTuple):
    """A stacked ``nn.BatchNorm2d``: affine parameters in ``weights``, running statistics in ``stats``."""

    weight: int
    bias: int
    mean: int
    var: int
    module: nn.BatchNorm2d


class Flatten(NamedTuple):
    module: nn.Flatten


Layer = WeightLayer | BatchNorm | Flatten


class StatelessStage(NamedTuple):
    """One ``SeqToANN``: its layers, and whether they run in float32 under autocast (the input block)."""

    layers: list[Layer]
    full_precision: bool


class NeuronStage(NamedTuple):
    """One neuron layer: hard (else soft) reset; ``pool``: a 2x2 average pooling folded into it."""

    hard: bool
    pool: bool


@dataclass
class _Act:
    """An activation: ``x`` plus whether it is still shared by all members and whether it is constant over T."""

    x: Tensor
    shared: bool
    time_constant: bool


def _per_member(values: list[float], device: torch.device) -> float | Tensor:
    """A float when every member has the same value (the kernels' scalar ops are cheaper), else a [K, 1] tensor."""
    if len(set(values)) == 1:
        return values[0]
    return torch.tensor(values, dtype=torch.float32, device=device).unsqueeze(1)


class PopulationNet(nn.Module):
    """K ``SpikingNet``s of one architecture, trained as one. ``forward`` returns logits [K, B, C], spikes [L, K]."""

    def __init__(self, members: Sequence[SpikingNet], cfgs: Sequence[TrainConfig]) -> None:
        super().__init__()
        self.k = len(members)
        self.template = members[0]  # its layer bookkeeping feeds spike_stats; its state_dict keys name checkpoints
        self._names = {id(m): name for name, m in members[0].named_modules()}
        self.stages: list[StatelessStage | NeuronStage] = []
        self.weights: list[Tensor] = []  # stacked leaf tensors [K, ...]; layers refer to them by index
        self.weight_names: list[str] = []  # each one's key in a member's state_dict
        self.stats: list[Tensor] = []  # BatchNorm running statistics, [K, C], also by index
        self.stat_names: list[str] = []
        self.bn_batches = int(next((m.num_batches_tracked for m in members[0].modules()
                                    if isinstance(m, nn.BatchNorm2d)), 0))
        for parts in zip(*(m.body for m in members)):
            if isinstance(parts[0], SeqToANN):
                # full_precision: the model's input block runs in float32 under autocast (see layers.SeqToANN)
                layers = [self._stack(list(mods)) for mods in zip(*parts)]
                self.stages.append(StatelessStage(layers, getattr(parts[0], "full_precision", False)))
            elif isinstance(parts[0], BaseNeuron):
                self.stages.append(NeuronStage(parts[0].reset_mode == "hard", parts[0].pool))
            else:
                raise ValueError(f"population training cannot stack {type(parts[0]).__name__}")
        readout = self._stack([m.readout for m in members])
        assert isinstance(readout, WeightLayer)
        self.readout = readout
        self.surrogate = get_surrogate(cfgs[0].surrogate, 1.0)  # slope set per member by set_members
        self.set_members(cfgs)

    def set_members(self, cfgs: Sequence[TrainConfig]) -> None:
        """Per-member neuron constants (a float when shared, else [K, 1]); the surrogate's slope too."""
        dev = self.weights[0].device
        self.leak = _per_member([c.leak for c in cfgs], dev)
        self.threshold = _per_member([c.threshold for c in cfgs], dev)
        self.surrogate.slope = _per_member([c.surrogate_slope for c in cfgs], dev)

    def _param(self, tensors: list[Tensor], owner: nn.Module, name: str) -> int:
        self.weights.append(torch.stack([t.detach() for t in tensors]).contiguous().requires_grad_())
        self.weight_names.append(f"{self._names[id(owner)]}.{name}")
        return len(self.weights) - 1

    def _stat(self, tensors: list[Tensor], owner: nn.Module, name: str) -> int:
        self.stats.append(torch.stack(tensors))
        self.stat_names.append(f"{self._names[id(owner)]}.{name}")
        return len(self.stats) - 1

    def _stack(self, mods: list[nn.Module]) -> Layer:
        m = mods[0]
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            bias = self._param([x.bias for x in mods], m, "bias") if m.bias is not None else None
            return WeightLayer(self._param([x.weight for x in mods], m, "weight"), bias, m)
        if isinstance(m, nn.BatchNorm2d):
            return BatchNorm(self._param([x.weight for x in mods], m, "weight"),
                             self._param([x.bias for x in mods], m, "bias"),
                             self._stat([x.running_mean for x in mods], m, "running_mean"),
                             self._stat([x.running_var for x in mods], m, "running_var"), m)
        if isinstance(m, nn.Flatten):
            return Flatten(m)
        raise ValueError(f"population training cannot stack {type(m).__name__}")

    def select(self, keep: Tensor, cfgs: Sequence[TrainConfig]) -> None:
        """Keep only the members at ``keep`` (indices into the current population)."""
        with torch.no_grad():
            self.weights = [w[keep].contiguous().requires_grad_() for w in self.weights]
            self.stats = [s[keep].contiguous() for s in self.stats]
        self.k = len(keep)
        self.set_members(cfgs)

    def copy_member(self, dst: int, src: int, cfgs: Sequence[TrainConfig]) -> None:
        """Member ``dst`` becomes a copy of member ``src``: weights and BatchNorm statistics, slice to slice on their
        device (PBT's exploit); ``cfgs`` hold the members' settings afterwards (the neuron constants follow them)."""
        with torch.no_grad():
            for t in (*self.weights, *self.stats):
                t[dst] = t[src]
        self.set_members(cfgs)

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member k as its ``SpikingNet``'s state_dict: what ``train`` would checkpoint for it."""
        values = {name: w[k].detach().clone() for name, w in zip(self.weight_names, self.weights)}
        values.update((name, s[k].clone()) for name, s in zip(self.stat_names, self.stats))
        # every other entry is a BatchNorm's num_batches_tracked
        return {key: values.get(key, torch.tensor(self.bn_batches)) for key in self.template.state_dict()}

    # --- forward -----------------------------------------------------------------------------------------------
    def _weight_layer(self, layer: WeightLayer, a: _Act) -> _Act:
        w = self.weights[layer.weight]
        b = None if layer.bias is None else self.weights[layer.bias]
        k = self.k
        if isinstance(layer.module, nn.Linear):
            if a.shared:  # one GEMM for all members: [N, F] @ [F, K*O]
                y = F.linear(a.x, w.reshape(-1, w.shape[-1]), None if b is None else b.reshape(-1))
                return _Act(y.unflatten(1, (k, -1)), False, a.time_constant)
            x = a.x.transpose(0, 1)  # [K, N, F]
            y = (torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2)) if b is not None
                 else torch.bmm(x, w.transpose(1, 2)))
            return _Act(y.transpose(0, 1), False, a.time_constant)
        conv = layer.module
        # channels-last weights make the convolutions (and everything after them) run NHWC, as the single net does
        weight = w.flatten(0, 1).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(a.x, weight, None if b is None else b.flatten(), conv.stride, conv.padding, conv.dilation,
                     1 if a.shared else k)
        return _Act(y, False, a.time_constant)

    def _stateless(self, layers: list[Layer], a: _Act) -> _Act:
        for layer in layers:
            if isinstance(layer, WeightLayer):
                a = self._weight_layer(layer, a)
            elif isinstance(layer, BatchNorm):
                w, b, bn = self.weights[layer.weight], self.weights[layer.bias], layer.module
                y = F.batch_norm(a.x, self.stats[layer.mean].view(-1), self.stats[layer.var].view(-1), w.flatten(),
                                 b.flatten(), self.training, bn.momentum, bn.eps)
                a = _Act(y, a.shared, a.time_constant)
            elif not a.shared:  # Flatten: [N, K*C, H, W] -> [N, K, C*H*W]
                a = _Act(a.x.unflatten(1, (self.k, -1)).flatten(2), False, a.time_constant)
            else:
                a = _Act(layer.module(a.x), a.shared, a.time_constant)
        return a

    def _stateless_stage(self, stage: StatelessStage, a: _Act) -> _Act:
        device = a.x.device.type
        if not (stage.full_precision and torch.is_autocast_enabled(device)):
            return self._stateless(stage.layers, a)
        with torch.autocast(device, enabled=False):
            out = self._stateless(stage.layers, _Act(a.x.float(), a.shared, a.time_constant))
        return _Act(out.x.to(torch.get_autocast_dtype(device)), out.shared, out.time_constant)

    def _neuron(self, stage: NeuronStage, a: _Act, timesteps: int) -> tuple[_Act, Tensor]:
        """The fused neuron on [T, B, K, ...] (one step and ``steps`` when constant over T); counts [K]."""
        conv = a.x.dim() == 4  # [N, K*C, H, W], else [N, K, F]
        x = a.x.unflatten(1, (self.k, -1)) if conv else a.x
        fuse = stage.pool and conv and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0
        x_seq = x if a.time_constant else x.unflatten(0, (timesteps, -1))
        s, counts = lif_count(x_seq, self.leak, self.threshold, stage.hard, self.surrogate,
                              timesteps if a.time_constant else None, fuse, members=True)
        out = s.flatten(0, 1)  # [T*B, K, ...]
        if conv:
            out = out.flatten(1, 2)
            out = F.avg_pool2d(out, 2) if stage.pool and not fuse else out  # odd sizes pool after the neuron
        return _Act(out, False, False), counts

    def forward(self, x_seq: Tensor) -> tuple[Tensor, Tensor]:
        timesteps = x_seq.shape[0]
        tc = is_time_constant(x_seq)
        a = _Act(x_seq[0] if tc else x_seq.flatten(0, 1), True, tc)
        if self.training and any(isinstance(layer, BatchNorm) for stage in self.stages
                                 if isinstance(stage, StatelessStage) for layer in stage.layers):
            self.bn_batches += 1
        spikes = []
        for stage in self.stages:
            if isinstance(stage, StatelessStage):
                a = self._stateless_stage(stage, a)
            else:
                a, counts = self._neuron(stage, a, timesteps)
                spikes.append(counts)
        x = a.x.unflatten(0, (timesteps, -1)).mean(0)  # Readout's mean over T, before the flatten (as SpikingNet)
        x = x.reshape(x.shape[0], self.k, -1)  # [B, K, F]
        w, b = self.weights[self.readout.weight], self.weights[self.readout.bias]
        logits = torch.baddbmm(b.unsqueeze(1), x.transpose(0, 1), w.transpose(1, 2))  # [K, B, C]
        return logits, torch.stack(spikes)
