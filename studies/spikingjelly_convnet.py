"""A SpikingJelly conv net in multi-step mode for ``studies/spikingjelly_convnet.yaml``.

With ``step_mode: multi`` the toolkit calls ``forward`` once per batch with the whole sequence x_seq [T, B, C, H, W]
and averages the [T, B, classes] result over T. SpikingJelly's multi-step layers fold T into the batch for the
convolutions, and its LIF nodes run the T steps inside; the toolkit resets every node before each batch (their own
``reset()``) and counts their spikes with forward hooks.

    sparsity-search train --model spikingjelly_convnet:build --set model.tau=3.0 --epochs 5
"""

from __future__ import annotations

from collections import OrderedDict

from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn


def build(input_shape: tuple[int, ...], num_classes: int, channels: int = 16, tau: float = 2.0,
          v_threshold: float = 1.0) -> nn.Module:
    """conv(channels) -> BN -> LIF -> avgpool 2 -> conv(2 channels) -> BN -> LIF -> avgpool 2 -> linear readout."""
    c, h, w = input_shape

    def lif() -> neuron.LIFNode:
        return neuron.LIFNode(tau=tau, v_threshold=v_threshold, detach_reset=True, surrogate_function=surrogate.ATan())

    net = nn.Sequential(OrderedDict(
        conv1=layer.Conv2d(c, channels, 3, padding=1, bias=False), bn1=layer.BatchNorm2d(channels), lif1=lif(),
        pool1=layer.AvgPool2d(2),
        conv2=layer.Conv2d(channels, 2 * channels, 3, padding=1, bias=False), bn2=layer.BatchNorm2d(2 * channels),
        lif2=lif(), pool2=layer.AvgPool2d(2),
        flatten=layer.Flatten(), readout=layer.Linear(2 * channels * (h // 4) * (w // 4), num_classes),
    ))  # named, so the spike columns read spikes_per_sample_lif1 and _lif2
    functional.set_step_mode(net, "m")
    return net

