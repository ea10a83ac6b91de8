"""Spike statistics and an energy estimate from per-layer spike totals.

Energy uses the 45 nm CMOS figures of Horowitz (ISSCC 2014) for 32-bit floats, as most SNN papers do
(e.g. Rathi & Roy, DIET-SNN; Kundu et al. 2021):

    E_AC  = 0.9 pJ   one accumulate: a spike arriving at a synapse adds the weight to the membrane
    E_MAC = 4.6 pJ   one multiply-accumulate: the first layer under direct encoding sees analog input

Per sample, with ``spikes_l`` the spikes of spiking layer l summed over neurons and timesteps:

    synops     = sum_l spikes_l * fan_out_l
    energy_pJ  = synops * E_AC + input_energy
    input_energy = input_macs * T * E_MAC                 (direct, or none with analog frames: at every step)
                 = input_spikes * input_fan_out * E_AC    (poisson, or none with event counts: the input is spikes)

Event data (``encoding: none`` with non-negative integer inputs, ``DataSplits.event_input``) counts like Poisson
input: a count of k at a pixel is k spikes, each driving the input layer's fan-out.

Membrane updates, resets and the readout's averaging are not counted, as in those papers.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..names import LAYER_PREFIX

E_AC_PJ = 0.9
E_MAC_PJ = 4.6


def input_is_spikes(encoding: str, event_input: bool) -> bool:
    """Whether the first layer's input is spikes (accumulates) rather than analog values (multiply-accumulates)."""
    return encoding == "poisson" or encoding == "none" and event_input


def spike_stats(spike_totals: Sequence[float], n_samples: int, model: nn.Module, timesteps: int, encoding: str,
                input_spikes: float = 0.0, event_input: bool = False) -> dict[str, float]:
    """Per-sample spike counts, firing rates, synaptic ops and energy (µJ) from totals over ``n_samples`` samples.

    ``spike_totals[l]`` is layer l's spike count summed over the whole set; ``input_spikes`` likewise the input
    spikes when the input is spikes (``input_is_spikes``; ignored otherwise). ``model`` supplies
    ``spiking_layers`` and the input layer.
    """
    layers = model.spiking_layers
    if len(spike_totals) != len(layers):
        raise ValueError(f"got {len(spike_totals)} spike totals for {len(layers)} spiking layers")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    stats: dict[str, float] = {}
    total = synops = 0.0
    for layer, spikes in zip(layers, spike_totals):
        per_sample = float(spikes) / n_samples
        stats[f"{LAYER_PREFIX}{layer.name}"] = per_sample
        stats[f"firing_rate_{layer.name}"] = per_sample / (timesteps * layer.neurons)
        total += per_sample
        synops += per_sample * layer.fan_out
    neurons = sum(layer.neurons for layer in layers)
    if input_is_spikes(encoding, event_input):
        input_pj = float(input_spikes) / n_samples * model.input_fan_out * E_AC_PJ
    else:
        input_pj = model.input_macs * timesteps * E_MAC_PJ
    stats.update(spikes_per_sample=total, firing_rate=total / (timesteps * neurons), synops_per_sample=synops,
                 energy_uj=(synops * E_AC_PJ + input_pj) * 1e-6)
    return stats
