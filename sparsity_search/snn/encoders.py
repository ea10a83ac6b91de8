"""Input encodings: a static image [B, ...] becomes a sequence [T, B, ...].

``direct`` feeds the analog input at every step as a stride-0 view (no copy), which lets the first stateless layer
compute once (``layers.SeqToANN``). ``poisson`` is rate coding: each step fires independently with probability
``clamp(x, 0, 1)``, drawn from ``generator`` so that a seeded generator gives the same spikes every time.
``none`` is for data that already has a time axis (event frames, samples [T, ...]): [B, T, ...] becomes
[T, B, ...] as it is.
"""

from __future__ import annotations

import torch
from torch import Tensor

ENCODINGS = ("direct", "poisson", "none")


def encode(x: Tensor, timesteps: int, kind: str, generator: torch.Generator | None = None) -> Tensor:
    """Return ``x`` encoded over ``timesteps`` steps as [T, *x.shape] in ``x``'s dtype; for ``none``, ``x`` is
    [B, T, ...] already and comes back as [T, B, ...]."""
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    if kind == "direct":
        return x.unsqueeze(0).expand(timesteps, *x.shape)
    if kind == "poisson":
        u = torch.rand((timesteps, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
        return (u < x.clamp(0.0, 1.0)).to(x.dtype)
    if kind == "none":
        if x.dim() < 2 or x.shape[1] != timesteps:
            raise ValueError(f"encoding none needs x shaped [B, {timesteps}, ...], got {tuple(x.shape)}")
        return x.transpose(0, 1).contiguous()
    raise ValueError(f"unknown encoding {kind!r}; choose from {', '.join(ENCODINGS)}")
