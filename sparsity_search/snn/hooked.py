"""The user's network (``model: {factory: MODULE:FUNCTION}``) behind the contract of the built-in ones
(``contract.py``), its spikes counted by forward hooks.

    model = build_user_model(cfg, input_shape, num_classes)      # or build_model, which dispatches here
    out = model(x_seq)        # SNNOutput: logits [B, C], differentiable spike totals per spiking layer

The factory is called as ``factory(input_shape, num_classes, **options)`` and its module is used as built (no
re-initialisation, no change of layout). Per forward of the adapter (one batch):

* every stateful module is reset through its own per-module reset (``libraries.Libraries.reset``);
* ``step_mode: single`` calls ``forward(x_t)`` for each of the T steps and averages the logits; ``multi`` calls
  ``forward(x_seq)`` once, and a ``[T, B, C]`` result is averaged over T. A tuple's first element is the logits:
  a snnTorch tutorial network returning ``(spk_rec, mem_rec)`` is trained on its output spikes averaged over T (firing
  rates); return the membrane first (or alone) to train on it instead;
* a forward hook on each spiking module adds ``spikes.sum()`` to that layer's total (no ``.item()``, nothing
  detached, no spike tensor kept), so the totals carry the gradient of the spike term to the weights.

Spiking layers are the spiking modules found (``libraries``), outermost only (a neuron inside another counts with
it), named by their module path (``features.3``; torch.compile's ``_orig_mod.`` removed). Neurons, fan-outs and
the input layer's MACs come from one probe forward (``probe.measure``). Modules never called in it are left out.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..config import TrainConfig, UserModel
from ..errors import ConfigError
from ..factories import call_user, load_callable, load_object
from .contract import LayerInfo, SNNOutput
from .libraries import Libraries, Neuron, first
from .probe import PROBE_BATCH, measure

FACTORY = "model.factory"
COMPILED = "_orig_mod."
_HOOKED: "weakref.WeakKeyDictionary[nn.Module, list[Any]]" = weakref.WeakKeyDictionary()  # module -> its hooks


class _Totals:
    """Per spiking layer, the spike sums of the current forward (0-dim tensors, in the graph)."""

    def __init__(self, layers: int) -> None:
        self.sums: list[list[Tensor]] = [[] for _ in range(layers)]

    def start(self) -> None:
        self.sums = [[] for _ in self.sums]

    def hook(self, i: int, count: Callable[[Tensor], Tensor] | None) -> Callable[..., None]:
        def add(_: nn.Module, __: Any, output: Any) -> None:
            self.sums[i].append(first(output).sum(dtype=torch.float32))

        def add_counted(_: nn.Module, __: Any, output: Any) -> None:
            self.sums[i].append(count(first(output)).sum(dtype=torch.float32))

        return add if count is None else add_counted

    def totals(self, device: torch.device) -> list[Tensor]:
        return [torch.stack(s).sum() if len(s) > 1 else s[0] if s else torch.zeros((), device=device)
                for s in self.sums]


class HookedModel(nn.Module):
    """A user's spiking network with ``SpikingNet``'s contract: ``forward(x_seq) -> SNNOutput``, plus
    ``spiking_layers``, ``input_macs`` and ``input_fan_out``.

    Neuron state is not part of its ``state_dict`` (sinabs keeps it in buffers shaped by the last batch), and when
    it is garbage collected its snnTorch neurons leave snnTorch's class-wide instance list (``Libraries.forget``).
    """

    def __init__(self, module: nn.Module, step_mode: str, neurons: Sequence[tuple[nn.Module, Neuron]],
                 resets: Sequence[Callable[[], None]], spiking_layers: list[LayerInfo], input_macs: float,
                 input_fan_out: float, libraries: Libraries | None = None) -> None:
        super().__init__()
        self.module = module
        self.step_mode = step_mode
        self.spiking_layers = spiking_layers
        self.input_macs = input_macs
        self.input_fan_out = input_fan_out
        self._resets = list(resets)
        self._totals = _Totals(len(neurons))
        for handle in _HOOKED.pop(module, []):  # a factory that hands out one module twice: count it once
            handle.remove()
        _HOOKED[module] = [m.register_forward_hook(self._totals.hook(i, n.count))
                           for i, (m, n) in enumerate(neurons)]
        libraries = libraries or Libraries()
        self._state_keys = {f"module.{k}" for k in libraries.state_buffers(module)}
        weakref.finalize(self, libraries.forget, module)
        if self._state_keys:
            self.register_state_dict_post_hook(_drop_state)
            self.register_load_state_dict_post_hook(_ignore_missing_state)

    def forward(self, x_seq: Tensor) -> SNNOutput:  # type: ignore[override]
        for reset in self._resets:
            reset()
        self._totals.start()
        logits = logits_of(run(self.module, self.step_mode, x_seq), self.step_mode)
        return SNNOutput(logits, self._totals.totals(logits.device))

    def remove_hooks(self) -> None:
        """Detach the counting hooks from the user's module (it no longer counts spikes afterwards)."""
        for handle in _HOOKED.pop(self.module, []):
            handle.remove()


def _drop_state(module: HookedModel, state: dict[str, Any], prefix: str, _: Any) -> None:
    for key in module._state_keys:
        state.pop(prefix + key, None)


def _ignore_missing_state(module: HookedModel, keys: Any) -> None:
    keys.missing_keys[:] = [k for k in keys.missing_keys if not any(k.endswith(s) for s in module._state_keys)]


def run(module: nn.Module, step_mode: str, x_seq: Tensor) -> list[Any]:
    """What the user's forward returns: one output per step (``single``) or one for the whole sequence."""
    if step_mode == "single":
        return [module(x) for x in x_seq.unbind(0)]
    return [module(x_seq if x_seq.is_contiguous() else x_seq.contiguous())]


def logits_of(outputs: list[Any], step_mode: str) -> Tensor:
    """Logits [B, C] from ``run``'s outputs: a tuple's first element, averaged over the steps or over T."""
    if step_mode == "single":
        total = first(outputs[0])
        for out in outputs[1:]:
            total = total + first(out)
        return total / len(outputs)
    out = first(outputs[0])
    return out.mean(0) if out.dim() == 3 else out


def build_user_model(cfg: TrainConfig, input_shape: Sequence[int], num_classes: int) -> HookedModel:
    """The user's network ``cfg.model`` names, wrapped, measured and checked; bad input is one ``ConfigError``."""
    user = cfg.user_model
    if user is None:
        raise ValueError("build_user_model needs a user model (model: {factory: MODULE:FUNCTION})")
    module = _call_factory(user, tuple(input_shape), num_classes)
    libraries = Libraries(_spiking_classes(user))
    found = _spiking_modules(module, libraries)
    if not found:
        raise ConfigError(_no_neurons(module, user), field=FACTORY)
    _check_step_modes(found, user.step_mode)
    mods = [m for _, m, _ in found]
    x_seq = torch.rand(cfg.timesteps, PROBE_BATCH, *input_shape, generator=torch.Generator().manual_seed(0))
    x_seq = x_seq.to(_device_of(module))
    with torch.random.fork_rng(devices=[]):
        measured = measure(module, mods, lambda x: run(module, user.step_mode, x), x_seq)
    _check_logits(measured.outputs, user, cfg.timesteps, num_classes)
    _check_calls(found, measured.calls, user.step_mode, cfg.timesteps)
    steps = cfg.timesteps * PROBE_BATCH
    kept = [i for i, calls in enumerate(measured.calls) if calls]
    layers = [LayerInfo(found[i][0], max(1, round(measured.elements[i] / steps)), measured.fan_out[i]) for i in kept]
    resets = [r for m in module.modules() if (r := libraries.reset(m)) is not None]
    return HookedModel(module, user.step_mode, [(found[i][1], found[i][2]) for i in kept], resets, layers,
                       measured.input_macs, measured.input_fan_out, libraries)


def check_user_model(cfg: TrainConfig, input_shape: Sequence[int], num_classes: int) -> None:
    """Build and probe ``cfg``'s user model once and drop it: a broken factory, option or neuron class is refused
    (``ConfigError``) before anything is stored. Does nothing for a built-in model."""
    if cfg.user_model is not None:
        build_user_model(cfg, input_shape, num_classes).remove_hooks()


def _call_factory(user: UserModel, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    factory = load_callable(user.factory, user.module_dir, FACTORY)
    _check_options(factory, user)
    module = call_user(factory, user.factory, FACTORY, input_shape, num_classes, **user.options)
    if not isinstance(module, nn.Module):
        raise ConfigError(f"{user.factory} returned a {type(module).__name__}, not a torch.nn.Module", field=FACTORY)
    return module


def _check_options(factory: Callable[..., Any], user: UserModel) -> None:
    """Every option must be a keyword the factory takes (unless it takes ``**kwargs``), named ``model.NAME``."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable: its own call reports bad arguments
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)][2:]
    for name in user.options:
        if name not in accepted:
            raise ConfigError(f"{user.factory} takes no option {name!r} (its options: "
                              f"{', '.join(accepted) or 'none'})", field=f"model.{name}")


def _spiking_classes(user: UserModel) -> tuple[type, ...]:
    classes = []
    for text in user.spiking:
        obj = load_object(text, user.module_dir, "model.spiking")
        if isinstance(obj, type) and not issubclass(obj, nn.Module):
            raise ConfigError(f"{text} is a class but not a torch.nn.Module subclass", field="model.spiking")
        if not isinstance(obj, type):
            raise ConfigError(f"{text} is a {type(obj).__name__}, not a torch.nn.Module class", field="model.spiking")
        classes.append(obj)
    return tuple(classes)


def _spiking_modules(module: nn.Module, libraries: Libraries) -> list[tuple[str, nn.Module, Neuron]]:
    """(name, module, neuron) of each outermost spiking module, in definition order; a module reached twice (shared)
    is one layer."""
    found: list[tuple[str, nn.Module, Neuron]] = []
    for name, m in module.named_modules():
        if any(name.startswith(f + ".") for f, _, _ in found) or any(m is g for _, g, _ in found):
            continue
        neuron = libraries.neuron(m)
        if neuron is not None:
            found.append((name.replace(COMPILED, "") or type(m).__name__.lower(), m, neuron))
    return found


def _no_neurons(module: nn.Module, user: UserModel) -> str:
    seen = list(dict.fromkeys(type(m).__name__ for m in module.modules()))
    mine = [type(m) for m in module.modules() if m is not module and type(m).__module__ == user.factory.split(":")[0]]
    example = f"{mine[-1].__module__}:{mine[-1].__name__}" if mine else "my_module:MyNeuron"
    return (f"no spiking neuron found in the model {user.factory} returned (its modules: {', '.join(seen)}); snnTorch, "
            f"SpikingJelly, norse and sinabs neurons are found when imported, other neuron classes must be named: "
            f"model.spiking: [{example}]")


def _check_step_modes(found: list[tuple[str, nn.Module, Neuron]], step_mode: str) -> None:
    for name, m, neuron in found:
        if step_mode == "single" and neuron.single_step is False:
            raise ConfigError(f"{name} ({type(m).__name__}) takes a whole sequence per call, but forward is called "
                              "once per timestep; set model.step_mode: multi", field="model.step_mode")


def _check_calls(found: list[tuple[str, nn.Module, Neuron]], calls: list[int], step_mode: str, steps: int) -> None:
    for (name, m, neuron), n in zip(found, calls):
        if step_mode == "multi" and steps > 1 and n == 1 and neuron.single_step:
            raise ConfigError(f"{name} ({type(m).__name__}) is a single-step neuron but was called once for all "
                              f"{steps} timesteps, so it saw time as batch; loop over x_seq in forward, switch it "
                              "to multi-step, or set model.step_mode: single", field="model.step_mode")


def _check_logits(outputs: list[Any], user: UserModel, steps: int, num_classes: int) -> None:
    """Each output must be logits [B, C] (single) or [B, C] / [T, B, C] (multi), or a tuple starting with them."""
    good = {"[B, C]": [PROBE_BATCH, num_classes]}
    if user.step_mode == "multi":
        good["[T, B, C]"] = [steps, PROBE_BATCH, num_classes]
    expected = " or ".join(f"{name} = {shape}" for name, shape in good.items())
    for out in outputs:
        logits = first(out)
        if not isinstance(logits, Tensor):
            raise ConfigError(f"the model's forward returned a {type(logits).__name__}; expected logits {expected} "
                              "(a tensor, or a tuple whose first element is)", field=FACTORY)
        shape = list(logits.shape)
        if shape not in good.values():
            hint = " (a [T, B, C] result needs model.step_mode: multi)" if len(shape) == 3 and len(good) == 1 else ""
            raise ConfigError(f"the model's forward returned logits of shape {shape} for a batch of {PROBE_BATCH}, "
                              f"T = {steps} and {num_classes} classes; expected {expected}{hint}", field=FACTORY)


def _device_of(module: nn.Module) -> torch.device:
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")
