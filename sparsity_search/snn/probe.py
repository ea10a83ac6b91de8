"""One forward of a user's network at build time, measuring what spike statistics need: neurons per spiking layer,
the fan-out of its spikes and the multiply-accumulates of the layers that see the input.

Which layer feeds which is read from the autograd graph of that forward, so any wiring works (pooling, flatten,
residual additions, concatenation, recurrence): a weight layer (``nn.Linear``, ``nn.Conv1d/2d/3d`` and their
subclasses, e.g. SpikingJelly's ``layer.Linear``/``layer.Conv2d``) is fed by every spiking layer whose spikes reach
its input without passing through another weight layer, and is an input layer when the network's input does.

Per weight layer W, ``fan_out_W`` is the synapses one of its input elements drives, averaged over positions: for a
linear layer ``out_features``; for a convolution ``out_channels / groups`` times, per spatial dimension, the
(output, kernel tap) pairs that land on the input (not on zero padding) per input position. That is exact in total
(every synapse counted once, any stride, padding, dilation or groups); a spike at the border, which drives fewer
synapses than one in the middle, is counted at the average. Average pooling between a neuron and W leaves one
spike's fan-out as W's (each spike reaches one pooled cell). An input layer's MACs are ``fan_out_W`` times its
input elements (padding excluded, unlike the built-in models, which count ``out_channels * 9`` per input pixel).

    fan_out of spiking layer l = sum of fan_out_W over the weight layers l feeds
    input_macs                 = sum of macs of input layers / (B * T)       (per sample per step)
    input_fan_out              = sum of fan_out_W over the input layers

The network runs in eval mode (no BatchNorm statistics updated, no dropout), on an input of its own generator
(the global random state is left as it was), with gradients on to build the graph; nothing of it is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from .libraries import first

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
PROBE_BATCH = 2


@dataclass
class Measured:
    """What the probe forward saw, per spiking layer (in the order given) and for the input."""

    elements: list[int]  # spike-tensor elements over the probe (neurons * B * T when called every step)
    calls: list[int]  # hook calls of each spiking layer in one forward of the network
    fan_out: list[float]
    input_macs: float  # per sample per step
    input_fan_out: float
    outputs: list[Any] = field(default_factory=list)  # what the user's forward returned, per call


@dataclass
class _Weight:
    fan_out: float = 0.0
    feeders: set[int] = field(default_factory=set)
    from_input: bool = False


def measure(module: nn.Module, neurons: list[nn.Module], run: Callable[[Tensor], list[Any]],
            x_seq: Tensor) -> Measured:
    """Run ``run(x_seq)`` (one forward of the network: the user's forward called per step or once) with probing
    hooks on ``neurons`` and on every weight layer, and return what it measured."""
    x_seq = x_seq.detach().requires_grad_(True)
    spike_nodes: dict[Any, int] = {}  # graph nodes of spike outputs -> spiking layer
    spike_leaves: list[tuple[Tensor, int]] = []  # spike outputs without a graph (a step function, no surrogate)
    stops: set[Any] = set()  # graph nodes of weight layers' outputs: a path through one is not fed directly
    elements, calls = [0] * len(neurons), [0] * len(neurons)
    weights: dict[nn.Module, _Weight] = {}
    input_macs = 0.0

    def on_spikes(i: int) -> Callable[..., None]:
        def hook(_: nn.Module, __: Any, output: Any) -> None:
            spikes = first(output)
            elements[i] += spikes.numel()
            calls[i] += 1
            if spikes.grad_fn is not None:
                spike_nodes[spikes.grad_fn] = i
            elif spikes.is_floating_point():
                spike_leaves.append((spikes.requires_grad_(True), i))  # so the layers after it are traced to it
        return hook

    def on_weights(layer: nn.Module, args: tuple[Any, ...], output: Tensor) -> None:
        nonlocal input_macs
        x = args[0]
        info = weights.setdefault(layer, _Weight())
        info.fan_out = _fan_out(layer, x, output)
        macs = info.fan_out * x.numel()
        feeders, from_input = _sources(x, x_seq, spike_nodes, spike_leaves, stops)
        info.feeders |= feeders
        if from_input:
            info.from_input = True
            input_macs += macs
        if output.grad_fn is not None:
            stops.add(output.grad_fn)

    handles = [n.register_forward_hook(on_spikes(i)) for i, n in enumerate(neurons)]
    handles += [m.register_forward_hook(on_weights) for m in module.modules() if isinstance(m, WEIGHT_LAYERS)]
    modes = {m: m.training for m in module.modules()}
    try:
        module.eval()
        with torch.enable_grad():
            outputs = run(x_seq)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    samples_steps = x_seq.shape[0] * x_seq.shape[1]
    fan_out = [sum(w.fan_out for w in weights.values() if i in w.feeders) for i in range(len(neurons))]
    return Measured(elements, calls, fan_out, input_macs / samples_steps,
                    sum(w.fan_out for w in weights.values() if w.from_input), outputs)


def _fan_out(layer: nn.Module, x: Tensor, out: Tensor) -> float:
    """Synapses one input element of ``layer`` drives, averaged over its positions (exact in total)."""
    if isinstance(layer, nn.Linear):
        return float(layer.out_features)
    dims = len(layer.kernel_size)
    return layer.out_channels / layer.groups * math.prod(
        _connected(layer, d, x.shape[d - dims], out.shape[d - dims]) for d in range(dims))


def _connected(conv: nn.Module, d: int, size: int, outputs: int) -> float:
    """Along dimension ``d`` of a convolution: (output, kernel tap) pairs that land on the input, per input position.
    Taps on zero padding connect nothing; other padding modes repeat real inputs, so every tap counts."""
    k, stride, dilation = conv.kernel_size[d], conv.stride[d], conv.dilation[d]
    if conv.padding_mode != "zeros":
        return outputs * k / size
    if isinstance(conv.padding, str):
        before = 0 if conv.padding == "valid" else dilation * (k - 1) // 2
    else:
        before = conv.padding[d]
    pairs = sum(1 for o in range(outputs) for j in range(k) if 0 <= o * stride - before + j * dilation < size)
    return pairs / size


def _sources(x: Tensor, network_input: Tensor, spike_nodes: dict[Any, int], spike_leaves: list[tuple[Tensor, int]],
             stops: set[Any]) -> tuple[set[int], bool]:
    """The spiking layers whose spikes reach ``x`` without passing through a weight layer, and whether the
    network's input does: a walk back through ``x``'s autograd graph."""
    feeders: set[int] = set()
    from_input = False

    def leaf(t: Tensor) -> None:
        nonlocal from_input
        from_input |= t is network_input
        feeders.update(i for spikes, i in spike_leaves if spikes is t)

    if x.grad_fn is None:
        leaf(x)
        return feeders, from_input
    seen: set[Any] = set()
    stack = [x.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if node in spike_nodes:
            feeders.add(spike_nodes[node])
        elif node not in stops:
            variable = getattr(node, "variable", None)  # AccumulateGrad: a leaf (the input, a parameter, spikes)
            if variable is not None:
                leaf(variable)
            else:
                stack.extend(n for n, _ in node.next_functions)
    return feeders, from_input
