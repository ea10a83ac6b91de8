"""A snnTorch MLP for ``studies/snntorch_mlp.yaml``: the network a snnTorch user writes, unchanged.

The toolkit calls ``build(input_shape, num_classes, **options)`` and, with ``step_mode: single``, the network's
``forward`` once per timestep with that step's input [B, ...]; it resets the Leaky neurons before every batch,
counts their spikes with forward hooks and averages the returned logits over the timesteps. ``options`` (and
search-space parameters named ``model.NAME``) are this function's keyword arguments.

    sparsity-search train --model snntorch_mlp:build --set model.beta=0.8 --epochs 5
"""

from __future__ import annotations

import math

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn


class LeakyMLP(nn.Module):
    """Flatten -> (Linear -> Leaky) per hidden layer -> Linear readout (its potential is the logits)."""

    def __init__(self, inputs: int, hidden: list[int], classes: int, beta: float, threshold: float,
                 slope: float) -> None:
        super().__init__()
        sizes = [inputs, *hidden]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.lifs = nn.ModuleList(snn.Leaky(beta=beta, threshold=threshold, spike_grad=surrogate.fast_sigmoid(slope))
                                  for _ in hidden)
        self.readout = nn.Linear(sizes[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for fc, lif in zip(self.fcs, self.lifs):
            x, _ = lif(fc(x))  # Leaky returns (spikes, membrane)
        return self.readout(x)


def build(input_shape: tuple[int, ...], num_classes: int, hidden: int = 128, layers: int = 1, beta: float = 0.9,
          threshold: float = 1.0, slope: float = 5.0) -> LeakyMLP:
    """``layers`` hidden layers of ``hidden`` Leaky neurons (leak ``beta``, ``threshold``, fast-sigmoid ``slope``)."""
    return LeakyMLP(math.prod(input_shape), [hidden] * layers, num_classes, beta, threshold, slope)
