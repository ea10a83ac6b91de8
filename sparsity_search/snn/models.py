"""The five networks ``build_model`` knows, and the bookkeeping (neurons, fan-out, input MACs) spike statistics need.

Every spiking block is weight layer -> (BatchNorm) -> neuron; the last block feeds a non-spiking ``Readout``.
Layer lists (``A`` = 2x2 average pooling, numbers = 3x3 conv channels, ``fcN`` = spiking linear layer):

    mlp      flatten, fc(h) for h in cfg.hidden, readout
    convnet  conv(cfg.channels[0]), A, conv(cfg.channels[1]), A, readout  (one conv per entry of cfg.channels)
    vgg5     64, A, 128, 128, A, fc1024, readout
    vgg9     64, A, 128, 256, A, 256, 512, A, 512, A, 512, fc1024, readout
    vgg11    64, A, 128, 256, A, 512, 512, A, 512, A, 512, 512, fc1024, readout

The VGG feature lists are those of Rathi et al. (ICLR 2020, hybrid conversion + STDB) for CIFAR-10. For direct
training we add BatchNorm after each conv (as tdBN, Zheng et al. AAAI 2021, does; convs then have no bias) and use
one 1024-wide spiking classifier layer instead of their 4096-wide pair, to keep trials cheap. A pooling layer
is skipped once the feature map is 1 pixel wide, so small inputs (8x8 digits) still build.

Speed, without changing what is computed: conv nets are built channels-last (NHWC), the input block runs in float32
under autocast (``SeqToANN(full_precision=True)``), each neuron returns its spike count from inside its fused
node (``BaseNeuron.forward_with_count``), and a pooling layer is folded into the neuron before it
(``BaseNeuron.pool``), which pools inside its fused node.

Fan-out (synapses one spike drives in the next weight layer): conv ``out_channels * 3 * 3`` (border pixels drive
fewer; ignored), linear ``out_features``. Average pooling puts each spike into exactly one pooled cell, and the
pool's 1/4 folds into the next layer's weights, so pooling leaves the fan-out unchanged.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from ..config import TrainConfig
from .contract import LayerInfo, SNNOutput
from .hooked import HookedModel, build_user_model
from .layers import Readout, SeqToANN, conv3x3, init_weights
from .neurons import IF, LIF, BaseNeuron
from .surrogate import get_surrogate

VGG_FEATURES: dict[str, list[int | str]] = {
    "vgg5": [64, "A", 128, 128, "A"],
    "vgg9": [64, "A", 128, 256, "A", 256, 512, "A", 512, "A", 512],
    "vgg11": [64, "A", 128, 256, "A", 512, 512, "A", 512, "A", 512, 512],
}
VGG_CLASSIFIER = 1024


class SpikingNet(nn.Module):
    """A chain of multi-step modules ending in a ``Readout``; returns logits and per-layer spike totals."""

    def __init__(self, body: Sequence[nn.Module], readout: Readout, spiking_layers: list[LayerInfo],
                 input_macs: int, input_fan_out: int) -> None:
        super().__init__()
        self.body = nn.ModuleList(body)
        self.readout = readout
        self.spiking_layers = spiking_layers
        self.input_macs = input_macs
        self.input_fan_out = input_fan_out

    def forward(self, x_seq: Tensor) -> SNNOutput:
        spikes = []
        x = x_seq
        for layer in self.body:
            if isinstance(layer, BaseNeuron):
                x, count = layer.forward_with_count(x)
                spikes.append(count)
            else:
                x = layer(x)
        return SNNOutput(self.readout(x), spikes)


def make_neuron(cfg: TrainConfig) -> BaseNeuron:
    """The neuron ``cfg`` describes (type, leak, threshold, reset, surrogate, implementation)."""
    kwargs = dict(threshold=cfg.threshold, reset=cfg.reset, implementation=cfg.implementation,
                  surrogate=get_surrogate(cfg.surrogate, cfg.surrogate_slope))
    return IF(**kwargs) if cfg.neuron == "if" else LIF(leak=cfg.leak, **kwargs)


class _Builder:
    """Appends layers while tracking the per-sample shape, so neuron counts and fan-outs come out exact."""

    def __init__(self, input_shape: Sequence[int], cfg: TrainConfig) -> None:
        self.shape = tuple(input_shape)
        self.cfg = cfg
        self.body: list[nn.Module] = []
        self.stateless: list[nn.Module] = []  # merged into one SeqToANN before the next neuron
        self.infos: list[LayerInfo] = []
        self.pending: tuple[str, int] | None = None  # last spiking layer, waiting for its fan-out
        self.input_macs = 0
        self.input_fan_out = 0

    def _connect(self, fan_out: int, macs: int) -> None:
        if self.pending is None:
            self.input_macs, self.input_fan_out = macs, fan_out
        else:
            self.infos.append(LayerInfo(self.pending[0], self.pending[1], fan_out))

    def _spike(self, name: str) -> None:
        self.body += [SeqToANN(*self.stateless, full_precision=not self.body), make_neuron(self.cfg)]
        self.stateless = []
        self.pending = (name, math.prod(self.shape))

    def conv(self, channels: int, name: str, bn: bool) -> None:
        if len(self.shape) != 3:
            raise ValueError(f"conv layers need a (C, H, W) input shape, got {self.shape}")
        c, h, w = self.shape
        self._connect(fan_out=channels * 9, macs=h * w * channels * c * 9)
        self.stateless.append(conv3x3(c, channels, bias=not bn))
        if bn:
            self.stateless.append(nn.BatchNorm2d(channels))
        self.shape = (channels, h, w)
        self._spike(name)

    def pool(self) -> None:
        """2x2 average pooling of the last neuron's spikes, folded into that neuron (``BaseNeuron.pool``)."""
        c, h, w = self.shape
        if min(h, w) >= 2:
            neuron = self.body[-1] if self.body and not self.stateless else None
            if not isinstance(neuron, BaseNeuron) or neuron.pool:
                raise ValueError("a pooling layer must directly follow a spiking conv layer")
            neuron.pool = True
            self.shape = (c, h // 2, w // 2)

    def linear(self, features: int, name: str) -> None:
        if len(self.shape) != 1:
            self.stateless.append(nn.Flatten())
            self.shape = (math.prod(self.shape),)
        self._connect(fan_out=features, macs=self.shape[0] * features)
        self.stateless.append(nn.Linear(self.shape[0], features))
        self.shape = (features,)
        self._spike(name)

    def finish(self, num_classes: int) -> SpikingNet:
        self._connect(fan_out=num_classes, macs=0)
        if self.stateless:
            self.body.append(SeqToANN(*self.stateless))
        readout = Readout(math.prod(self.shape), num_classes)
        net = SpikingNet(self.body, readout, self.infos, self.input_macs, self.input_fan_out)
        init_weights(net)
        if any(isinstance(m, nn.Conv2d) for m in net.modules()):
            # oneDNN's convolutions, BatchNorm and pooling are faster on NHWC; the neurons keep whatever layout
            # they get, so activations stay NHWC from the first conv on (the input itself may be NCHW).
            net = net.to(memory_format=torch.channels_last)
        return net


def build_model(cfg: TrainConfig, input_shape: Sequence[int], num_classes: int) -> SpikingNet | HookedModel:
    """The network ``cfg.model`` names, for inputs shaped ``input_shape`` per sample (x_seq is [T, B, *shape]): a
    built-in one, or the user's (``cfg.user_model``) behind the same contract (``hooked.py``)."""
    if cfg.user_model is not None:
        return build_user_model(cfg, input_shape, num_classes)
    b = _Builder(input_shape, cfg)
    if cfg.model == "mlp":
        for i, width in enumerate(cfg.hidden, 1):
            b.linear(width, f"fc{i}")
    elif cfg.model == "convnet":
        for i, channels in enumerate(cfg.channels, 1):
            b.conv(channels, f"conv{i}", bn=False)
            b.pool()
    elif cfg.model in VGG_FEATURES:
        i = 0
        for item in VGG_FEATURES[cfg.model]:
            if item == "A":
                b.pool()
            else:
                i += 1
                b.conv(int(item), f"conv{i}", bn=True)
        b.linear(VGG_CLASSIFIER, "fc1")
    else:
        raise ValueError(f"unknown model {cfg.model!r}")
    return b.finish(num_classes)
