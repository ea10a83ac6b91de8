"""Multi-step wrappers for stateless layers: fold [T, B, ...] into [T*B, ...], run once, unfold.

Folding turns T small calls into one large one (one GEMM / convolution per layer per batch). When the time axis
is a stride-0 view (direct encoding: ``x.unsqueeze(0).expand(T, ...)``), every step holds the same data, so the
layers run once on step 0 and the result is expanded back, still stride 0. The next stateless layer sees a
stride-0 input again, so a chain like conv -> BN is computed once, and autograd sums the T gradients before the
weight gradient is taken. With BatchNorm in training mode the normalisation is the same either way; only the
running-variance update differs (Bessel's correction uses B*H*W samples instead of T*B*H*W).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def fold(x_seq: Tensor) -> Tensor:
    """[T, B, ...] -> [T*B, ...]."""
    return x_seq.flatten(0, 1)


def unfold(x: Tensor, timesteps: int) -> Tensor:
    """[T*B, ...] -> [T, B, ...]."""
    return x.unflatten(0, (timesteps, -1))


def is_time_constant(x_seq: Tensor) -> bool:
    """True when all T steps are one stored tensor (a stride-0 expand over time)."""
    return x_seq.shape[0] > 1 and x_seq.stride(0) == 0


class SeqToANN(nn.Sequential):
    """Stateless layers (Linear, Conv2d, pooling, BatchNorm, Flatten) applied to every step of ``x_seq``.

    ``full_precision=True`` runs them in float32 even under autocast, then casts the result to the autocast dtype
    (so the neurons and their spikes cost what they would without it). The model uses it for the input layer: it
    sees the analog input, runs once per batch under direct encoding, and oneDNN's bf16 weight gradient for a
    3-channel convolution is pathologically slow on CPUs (docs/benchmarks.md gives the measurement).
    """

    def __init__(self, *layers: nn.Module, full_precision: bool = False) -> None:
        super().__init__(*layers)
        self.full_precision = full_precision

    def forward(self, x_seq: Tensor) -> Tensor:  # type: ignore[override]
        device = x_seq.device.type
        if self.full_precision and torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return self._forward(x_seq.float(), torch.get_autocast_dtype(device))
        return self._forward(x_seq, None)

    def _forward(self, x_seq: Tensor, out_dtype: torch.dtype | None) -> Tensor:
        timesteps = x_seq.shape[0]
        if is_time_constant(x_seq):
            y = super().forward(x_seq[0])
            y = y if out_dtype is None else y.to(out_dtype)  # cast before the expand: one step, not T
            return y.unsqueeze(0).expand(timesteps, *y.shape)
        y = unfold(super().forward(fold(x_seq)), timesteps)
        return y if out_dtype is None else y.to(out_dtype)


class Readout(nn.Linear):
    """Non-spiking output layer: its potential is accumulated over time, logits = mean_t(W s_t + b).

    By linearity this equals ``W mean_t(s_t) + b``, which costs one matmul instead of T (and the mean runs before
    the flatten, which copies only [B, features] when activations are channels-last).
    """

    def forward(self, x_seq: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x_seq.mean(0).flatten(1))


def conv3x3(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias)


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal weights (std sqrt(2 / fan_in)), zero biases, for every Linear/Conv2d in ``module``.

    With inputs in [0, 1] and firing rates around 0.1-0.5 this puts pre-activations near the threshold, so every
    layer spikes from the first step; PyTorch's default (uniform, std 1/sqrt(3 fan_in)) leaves deep layers silent.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)) and not isinstance(m, Readout):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)

