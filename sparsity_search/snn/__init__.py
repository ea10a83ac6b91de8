"""Spiking networks: surrogate spikes, multi-step neurons and layers, the five models, the user's
models (hooked), encodings and spike accounting.

    model = build_model(cfg, input_shape, num_classes)          # built-in, or the user's behind the same contract
    out = model(encode(x, cfg.timesteps, cfg.encoding, generator))   # out.logits [B, C], out.spikes per layer
    stats = spike_stats(totals, n_samples, model, cfg.timesteps, cfg.encoding)
"""

from .accounting import E_AC_PJ, E_MAC_PJ, spike_stats
from .contract import LayerInfo, SNNOutput
from .encoders import ENCODINGS, encode
from .hooked import HookedModel, check_user_model
from .layers import Readout, SeqToANN
from .models import SpikingNet, build_model, make_neuron
from .neurons import IF, LIF, BaseNeuron, reset_net, set_step_mode
from .surrogate import SURROGATES, Surrogate, get_surrogate

__all__ = ["E_AC_PJ", "E_MAC_PJ", "ENCODINGS", "IF", "LIF", "BaseNeuron", "HookedModel", "LayerInfo", "Readout",
           "SNNOutput", "SURROGATES", "SeqToANN", "SpikingNet", "Surrogate", "build_model", "check_user_model",
           "encode", "get_surrogate", "make_neuron", "reset_net", "set_step_mode", "spike_stats"]
