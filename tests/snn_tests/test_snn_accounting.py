"""Spike accounting: a fixed net's spike counts against an independent numpy simulation, and the energy formula."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sparsity_search.config import TrainConfig
from sparsity_search.snn import E_AC_PJ, E_MAC_PJ, LayerInfo, build_model, encode, spike_stats


def _numpy_spike_counts(weights: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, timesteps: int,
                        leak: float, threshold: float) -> list[float]:
    """LIF MLP with soft reset, written out as plain loops over time and layers."""
    counts = [0.0] * (len(weights) - 1)
    v = [np.zeros((x.shape[0], w.shape[0])) for w, _ in weights[:-1]]
    for _ in range(timesteps):
        inp = x
        for layer, (w, b) in enumerate(weights[:-1]):
            h = leak * v[layer] + inp @ w.T + b
            spikes = (h >= threshold).astype(np.float64)
            v[layer] = h - threshold * spikes
            counts[layer] += spikes.sum()
            inp = spikes
    return counts


@pytest.mark.parametrize("implementation", ["fast", "reference"])
def test_spike_counts_match_a_hand_simulation(implementation: str) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(hidden=[12, 7], beta=0.75, threshold=0.8, implementation=implementation)
    model = build_model(cfg, (9,), 4).double()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    weights = [(m.weight.detach().numpy(), m.bias.detach().numpy() + 0.1) for m in linears]
    with torch.no_grad():
        for m in linears:
            m.bias += 0.1  # non-zero biases, so they are counted in
    x = torch.rand(5, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = model(encode(x, 6, "direct"))
    expected = _numpy_spike_counts(weights, x.numpy(), 6, 0.75, 0.8)
    assert all(c > 0 for c in expected)
    assert [s.item() for s in out.spikes] == expected


class _Model(SimpleNamespace):
    pass


def test_spike_stats_formulas() -> None:
    model = _Model(spiking_layers=[LayerInfo("a", 100, 50), LayerInfo("b", 20, 10)], input_macs=1000,
                   input_fan_out=100)
    stats = spike_stats([800.0, 40.0], n_samples=4, model=model, timesteps=5, encoding="direct")
    assert stats["spikes_per_sample_a"] == 200.0 and stats["spikes_per_sample_b"] == 10.0
    assert stats["spikes_per_sample"] == 210.0
    assert stats["firing_rate_a"] == pytest.approx(200 / (5 * 100))
    assert stats["firing_rate_b"] == pytest.approx(10 / (5 * 20))
    assert stats["firing_rate"] == pytest.approx(210 / (5 * 120))
    assert stats["synops_per_sample"] == 200 * 50 + 10 * 10
    assert stats["energy_uj"] == pytest.approx((10100 * 0.9 + 1000 * 5 * 4.6) * 1e-6)
    poisson = spike_stats([800.0, 40.0], 4, model, 5, "poisson", input_spikes=60.0)
    assert poisson["energy_uj"] == pytest.approx((10100 + 15 * 100) * E_AC_PJ * 1e-6)
    assert (E_AC_PJ, E_MAC_PJ) == (0.9, 4.6)


def test_spike_stats_rejects_mismatched_totals() -> None:
    model = build_model(TrainConfig(hidden=[4]), (3,), 2)
    with pytest.raises(ValueError, match="spike totals"):
        spike_stats([1.0, 2.0], 1, model, 1, "direct")
