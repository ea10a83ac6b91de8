"""The loss of Allred et al. (arXiv 2003.01250): ``loss = cross_entropy + lambda(t) * S``.

S is the spike-count term, normalised so that lambda means the same thing for any network, batch or T:

    rate_l = spikes_l / (B * T * N_l)          (spikes per neuron per timestep in spiking layer l)
    S      = sum_l w_l * rate_l, with sum_l w_l = 1

By default ``w_l = N_l / sum_k N_k``, so S is the network's mean firing rate, i.e. total spikes divided by
B * T * (all spiking neurons): minimising S minimises the spike count itself. Explicit ``layer_weights`` are
rescaled to sum to 1, letting a user press harder on layers whose spikes cost more (e.g. large fan-out).

The ``member_*`` functions compute the same loss for K networks trained as one (``population``): every tensor has
a member axis, and member k's loss depends on member k's outputs only.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .errors import ConfigError


def layer_weights(neurons: Sequence[int], weights: Sequence[float] = ()) -> list[float]:
    """Per-layer weights summing to 1; the default weighs each layer by its neuron count."""
    if weights:
        if len(weights) != len(neurons):
            raise ConfigError(f"has {len(weights)} entries but the model has {len(neurons)} spiking layers",
                              field="layer_weights")
        total = float(sum(weights))
        if total <= 0:
            raise ConfigError("must not be all zero", field="layer_weights")
        return [w / total for w in weights]
    total = float(sum(neurons))
    return [n / total for n in neurons]


def spike_term(spikes: Sequence[torch.Tensor], neurons: Sequence[int], weights: Sequence[float],
               batch: int, timesteps: int) -> torch.Tensor:
    """S as documented above, from the per-layer spike totals a model's forward returns (differentiable)."""
    terms = [w / (batch * timesteps * n) * s for s, n, w in zip(spikes, neurons, weights)]
    return torch.stack(terms).sum()


def sparsity_loss(logits: torch.Tensor, targets: torch.Tensor, s: torch.Tensor, lam: float) -> torch.Tensor:
    """cross_entropy(logits, targets) + lam * S, computed in fp32 even under autocast."""
    return F.cross_entropy(logits.float(), targets) + lam * s.float()


def member_coefficients(neurons: Sequence[int], weights: Sequence[Sequence[float]],
                        device: torch.device | None = None) -> torch.Tensor:
    """[L, K] per layer and member: ``w_lk / N_l`` (``weights[k]`` is member k's ``layer_weights`` setting)."""
    w = [layer_weights(neurons, wk) for wk in weights]
    return torch.tensor([[wk[l] / n for wk in w] for l, n in enumerate(neurons)], dtype=torch.float32, device=device)


def member_spike_terms(spikes: torch.Tensor, coef: torch.Tensor, batch: int, timesteps: int) -> torch.Tensor:
    """S per member [K] from per-layer, per-member spike totals [L, K] (differentiable)."""
    return (coef * spikes.float()).sum(0) / (batch * timesteps)


def member_losses(logits: torch.Tensor, targets: torch.Tensor, s: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``sparsity_loss`` per member [K]: logits [K, B, C], targets [B] (shared), S and lambda [K]; fp32."""
    k = logits.shape[0]
    ce = F.cross_entropy(logits.float().flatten(0, 1), targets.repeat(k), reduction="none")
    return ce.view(k, -1).mean(1) + lam * s.float()
