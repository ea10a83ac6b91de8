"""What every network the trainer runs provides: built-in (``models.SpikingNet``) or the user's (``HookedModel``).

    out = model(x_seq)              # x_seq [T, B, *input_shape] -> SNNOutput(logits [B, C], spikes per layer)
    model.spiking_layers            # list[LayerInfo], in the order of out.spikes
    model.input_macs                # multiply-accumulates of the weight layers that see the input, per sample per step
    model.input_fan_out             # synapses one input spike drives (Poisson or event input)

``trainer.train``, ``training.evaluate_members`` and ``accounting.spike_stats`` read only these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor


@dataclass(frozen=True)
class LayerInfo:
    """One spiking layer: ``neurons`` per sample per timestep, ``fan_out`` synapses driven by one of its spikes."""

    name: str
    neurons: int
    fan_out: float


class SNNOutput(NamedTuple):
    logits: Tensor  # [B, num_classes], averaged over T
    spikes: list[Tensor]  # per spiking layer: 0-dim, differentiable, summed over T, batch and neurons
