"""Which modules of a user's network are spiking neurons, what their spikes are, and how their state is reset.

A library is looked for only when the user's code has imported it (it is in ``sys.modules``); nothing here imports
snnTorch, SpikingJelly, norse or sinabs. Per library (versions read: snntorch 1.0, spikingjelly 2.0, norse 1.1,
sinabs 3.1):

    library       spiking modules                                 spikes = output          state reset, per module
    snntorch      SpikingNeuron subclasses, except StateLeaky /   first element; graded    reset_mem()
                  LinearLeaky with output=False (membrane) and    spikes divided by
                  AssociativeLeaky with use_q_projection          graded_spikes_factor
    spikingjelly  classes of spikingjelly.activation_based.neuron first element; ternary   reset() of every
                  (BaseNode, PSN, GatedLIFNode, ...), except the  spikes (-1/0/1) as their MemoryModule
                  NonSpiking* and LIAF nodes (voltage, analog)    absolute value
    norse         SNNCell, SNNRecurrentCell, SNN, SNNRecurrent,   z of (z, state)          none: state lives in
                  except LICell, LI, LIBoxCell (voltage)                                   the user's forward
    sinabs        StatefulLayer with does_spike                   the output (multi-spike  state buffers emptied:
                                                                  counts)                  see _empty_state
    torch         classes named in model.spiking                  first element            reset(), when defined

``Libraries`` looks the classes up once per model. The libraries' whole-network helpers are avoided on purpose:
snnTorch's ``utils.reset`` walks only top-level children and a class-wide instance list (other networks included),
sinabs' ``reset_states`` skips stateful layers with children, and SpikingJelly's ``reset_net`` caches its module list.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

SJ_NEURON = "spikingjelly.activation_based.neuron"
SJ_NOT_SPIKING = ("NonSpiking", "LIAFNode")  # class names (substrings) of SpikingJelly nodes that emit voltage
SJ_SIGNED = ("TernaryIFNode", "TernaryLIFNode", "STBIFNode")  # emit -1, 0 or 1: a -1 is a spike too


@dataclass(frozen=True)
class Neuron:
    """A spiking module found in the user's network."""

    library: str
    count: Callable[[Tensor], Tensor] | None  # spikes -> the tensor whose sum is the spike count (None: as is)
    single_step: bool | None  # True: one timestep per call; False: a whole sequence per call; None: either


def first(output: Any) -> Tensor:
    """What counts of a module's output: itself, or a tuple's first element (snnTorch's ``(spk, mem)``, norse's
    ``(z, state)``, a tutorial network's ``(spk_rec, mem_rec)``)."""
    return output[0] if isinstance(output, (tuple, list)) else output


class Libraries:
    """The neuron classes of the libraries imported now, plus the plain-torch classes the user named."""

    def __init__(self, named: tuple[type, ...] = ()) -> None:
        self.named = named
        self.snntorch = _module("snntorch")
        self.sj_base = _module("spikingjelly.activation_based.base")
        self.sj_neurons = _spikingjelly_classes()
        self.norse = _module("norse.torch.module.snn")
        self.norse_voltage = tuple(getattr(_module(path), name) for path, name in _NORSE_VOLTAGE
                                   if hasattr(_module(path), name))
        self.sinabs = _module("sinabs.layers")

    def neuron(self, m: nn.Module) -> Neuron | None:
        """``m`` as a spiking neuron, or None; classes the user named come first."""
        if self.named and isinstance(m, self.named):
            return Neuron("torch", None, None)
        if self.snntorch is not None and isinstance(m, self.snntorch.SpikingNeuron):
            return _snntorch(self.snntorch, m)
        if self.sj_neurons and isinstance(m, self.sj_neurons):
            return _spikingjelly(m)
        if self.norse is not None:
            if self.norse_voltage and isinstance(m, self.norse_voltage):
                return None
            if isinstance(m, (self.norse.SNNCell, self.norse.SNNRecurrentCell)):
                return Neuron("norse", None, True)
            if isinstance(m, (self.norse.SNN, self.norse.SNNRecurrent)):
                return Neuron("norse", None, False)
        if self.sinabs is not None and isinstance(m, self.sinabs.StatefulLayer) and m.does_spike:
            squeeze = getattr(self.sinabs, "SqueezeMixin", ())
            return Neuron("sinabs", None, None if isinstance(m, squeeze) else False)
        return None

    def reset(self, m: nn.Module) -> Callable[[], None] | None:
        """The call that puts ``m`` back in its initial state through its own reset, or None when it keeps none."""
        if self.named and isinstance(m, self.named) and callable(getattr(m, "reset", None)):
            return m.reset
        if self.snntorch is not None and isinstance(m, self.snntorch.SpikingNeuron):
            return getattr(m, "reset_mem", None)
        if self.sj_base is not None and isinstance(m, self.sj_base.MemoryModule):
            return m.reset
        if self.sinabs is not None and isinstance(m, self.sinabs.StatefulLayer):
            return lambda: _empty_state(m)
        return None

    def forget(self, model: nn.Module) -> None:
        """Take ``model``'s snnTorch neurons out of ``SpikingNeuron.instances``, the class-wide list snnTorch 1.0
        appends every neuron to and never empties: without this, every trial's neurons and their last state (a
        whole evaluation batch) would stay alive for the life of a worker process. Called when ``model`` is done."""
        if self.snntorch is None:
            return
        ours = {id(m) for m in model.modules()}
        instances = self.snntorch.SpikingNeuron.instances
        instances[:] = [n for n in instances if id(n) not in ours]

    def state_buffers(self, model: nn.Module) -> list[str]:
        """Names (in ``model.state_dict()``) of buffers holding neuron state, not weights: sinabs' states, whose
        shape follows the last batch, so a checkpoint holding them would not load into a freshly built model."""
        if self.sinabs is None:
            return []
        return [f"{prefix}.{name}" if prefix else name for prefix, m in model.named_modules()
                if isinstance(m, self.sinabs.StatefulLayer) for name, _ in m.named_buffers(recurse=False)]


_NORSE_VOLTAGE = (("norse.torch.module.leaky_integrator", "LICell"), ("norse.torch.module.leaky_integrator", "LI"),
                  ("norse.torch.module.leaky_integrator_box", "LIBoxCell"))


def _empty_state(layer: nn.Module) -> None:
    """Give a sinabs layer's state buffers no shape, so its next forward creates them as zeros of the input's shape
    (``StatefulLayer.init_state_with_shape``). Its own ``reset_states`` zeroes them in place, which fails on the
    inference tensors evaluation leaves behind, and a batch of another size would then resample old states at
    random; new tensors also leave the previous batch's graph alone."""
    for name, buffer in list(layer.named_buffers(recurse=False)):
        layer.register_buffer(name, torch.zeros(0, dtype=buffer.dtype, device=buffer.device))


def _module(name: str) -> Any:
    return sys.modules.get(name)


def _snntorch(snn: Any, m: nn.Module) -> Neuron | None:
    state_leaky = getattr(snn, "StateLeaky", ())
    if isinstance(m, state_leaky) and not m.output:
        return None  # returns the membrane only
    if getattr(m, "use_q_projection", False):
        return None  # AssociativeLeaky: returns a projection of its spikes, not spikes
    factor = getattr(m, "graded_spikes_factor", None)
    graded = isinstance(factor, nn.Parameter) or (isinstance(factor, Tensor) and bool((factor != 1).any()))
    parallel = isinstance(m, state_leaky) or isinstance(m, getattr(snn, "AssociativeLeaky", ()))
    return Neuron("snntorch", (lambda s: s / m.graded_spikes_factor) if graded else None, not parallel)


def _spikingjelly_classes() -> tuple[type, ...]:
    neuron = _module(SJ_NEURON)
    if neuron is None:
        return ()
    return tuple(c for c in vars(neuron).values() if isinstance(c, type) and issubclass(c, nn.Module)
                 and c.__module__.startswith(SJ_NEURON)
                 and not any(s in c.__name__ for s in SJ_NOT_SPIKING))


def _spikingjelly(m: nn.Module) -> Neuron | None:
    if any(s in c.__name__ for c in type(m).__mro__ for s in SJ_NOT_SPIKING):
        return None
    signed = any(c.__name__ in SJ_SIGNED for c in type(m).__mro__)
    step_mode = getattr(m, "step_mode", None)
    return Neuron("spikingjelly", torch.abs if signed else None, {"s": True, "m": False}.get(step_mode))
