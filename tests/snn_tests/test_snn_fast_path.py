"""The fast path's speed-ups keep the reference results: compiled kernels, memory layouts, bf16 and precision choice."""

from __future__ import annotations

import itertools
import os
import shutil
import logging

import pytest
import torch

from sparsity_search import TrainConfig, train
from sparsity_search.data import load_data
from sparsity_search.devices import resolve_precision
from sparsity_search.snn import IF, LIF, BaseNeuron, build_model, encode, fused, get_surrogate
from sparsity_search.snn.layers import SeqToANN
from sparsity_search.snn.neurons import _repeated_step

GRID = list(itertools.product(["lif", "if"], ["fast_sigmoid", "arctan", "triangle"], ["soft", "hard"]))


def _neuron(kind: str, surrogate: str, reset: str, implementation: str) -> BaseNeuron:
    sg = get_surrogate(surrogate, 2.0)
    if kind == "if":
        return IF(reset=reset, surrogate=sg, implementation=implementation)
    return LIF(leak=0.8, reset=reset, surrogate=sg, implementation=implementation)


def _spikes_and_grad(neuron: BaseNeuron, x_seq: torch.Tensor,
                     repeat: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and dL/dx for L = sum(spikes * fixed weights) + 0.1 * spike count, as the sparsity loss has both.

    The count comes from ``forward_with_count`` (fused into the node on the fast path); it must equal the spikes' sum.
    ``repeat``: ``x_seq`` is one step, fed at every step as a stride-0 view (direct encoding); dL/dx is then summed.
    """
    x = x_seq.detach().clone().requires_grad_()
    x_in = x if repeat is None else x.unsqueeze(0).expand(repeat, *x.shape)
    if repeat is not None:
        assert _repeated_step(x_in) is x
    spikes, count = neuron.forward_with_count(x_in)
    assert count.dtype == torch.float32 and count.item() == spikes.detach().sum().item()
    upstream = torch.randn(spikes.shape, generator=torch.Generator().manual_seed(1))
    ((spikes * upstream).sum() + 0.1 * count).backward()
    return spikes.detach(), x.grad


def _cxx_compiler() -> str | None:
    """The C++ compiler inductor would use on CPU, if any (``CXX``, else the usual names)."""
    return shutil.which(os.environ.get("CXX", "")) or shutil.which("g++") or shutil.which("c++") \
        or shutil.which("clang++")


def _check_compiled(kernels: fused._Compiled, runs_before: int) -> None:
    """With compilation asked for, the compiled forward and backward really ran since ``runs_before``; where
    torch.compile cannot build for want of a C++ compiler the test is skipped, saying so."""
    if kernels.failed:
        assert not _cxx_compiler(), "torch.compile failed although a C++ compiler is present (see the warning)"
        pytest.skip("no C++ compiler here: torch.compile cannot build; the eager fallback is tested below")
    assert kernels.runs >= runs_before + 2


@pytest.fixture(scope="module")
def compiled_kernels() -> fused._Compiled:
    """One compiled-kernel cache for these tests (each reuses the others' compilations)."""
    mp = pytest.MonkeyPatch()
    kernels = fused._Compiled()
    mp.setattr(fused, "COMPILED", kernels)
    yield kernels
    mp.undo()


@pytest.mark.parametrize("kind,surrogate,reset", GRID)
def test_compiled_kernels_equal_reference(compiled_kernels: fused._Compiled, monkeypatch: pytest.MonkeyPatch,
                                          kind: str, surrogate: str, reset: str) -> None:
    monkeypatch.setenv("SPARSITY_SEARCH_COMPILE", "1")
    x_seq = torch.rand(6, 4, 33, 5, generator=torch.Generator().manual_seed(0)) * 0.8
    runs = compiled_kernels.runs
    fast = _spikes_and_grad(_neuron(kind, surrogate, reset, "fast"), x_seq)
    _check_compiled(compiled_kernels, runs)
    ref = _spikes_and_grad(_neuron(kind, surrogate, reset, "reference"), x_seq)
    assert 0.05 < fast[0].mean() < 0.95
    assert torch.equal(fast[0], ref[0])
    torch.testing.assert_close(fast[1], ref[1])


@pytest.mark.parametrize("compile_mode", ["0", "1"])
@pytest.mark.parametrize("layout", ["channels_last", "time_constant"])
def test_layouts_equal_reference_and_are_kept(compiled_kernels: fused._Compiled, monkeypatch: pytest.MonkeyPatch,
                                               compile_mode: str, layout: str) -> None:
    """NHWC activations stay NHWC without a copy; a stride-0 time axis (direct encoding) is read once per step."""
    monkeypatch.setenv("SPARSITY_SEARCH_COMPILE", compile_mode)
    gen = torch.Generator().manual_seed(2)
    if layout == "channels_last":
        steps = torch.rand(6 * 2, 4, 5, 6, generator=gen).to(memory_format=torch.channels_last) * 1.2
        x_seq = steps.unflatten(0, (6, 2))
        repeat = None
    else:
        x_seq, repeat = torch.rand(2, 4, 5, 6, generator=gen) * 0.7, 6
    fast_neuron = _neuron("lif", "arctan", "hard", "fast")
    if layout == "channels_last":
        assert fast_neuron(x_seq.detach().requires_grad_()).stride() == x_seq.stride()
    runs = compiled_kernels.runs
    fast = _spikes_and_grad(fast_neuron, x_seq, repeat)
    if compile_mode == "1":
        _check_compiled(compiled_kernels, runs)
    ref = _spikes_and_grad(_neuron("lif", "arctan", "hard", "reference"), x_seq, repeat)
    assert 0.05 < fast[0].mean() < 0.95
    assert torch.equal(fast[0], ref[0])
    torch.testing.assert_close(fast[1], ref[1])


def _pooled_run(neuron: BaseNeuron, x_seq: torch.Tensor, repeat: int | None,
                pool_after: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Output, count and dL/dx for L = sum(output * fixed weights) + 0.1 * count; ``pool_after`` applies
    ``AvgPool2d(2)`` to the neuron's spikes outside it, as a model without folded pooling would."""
    x = x_seq.detach().clone().requires_grad_()
    x_in = x if repeat is None else x.unsqueeze(0).expand(repeat, *x.shape)
    out, count = neuron.forward_with_count(x_in)
    if pool_after:
        out = torch.nn.functional.avg_pool2d(out.flatten(0, 1), 2).unflatten(0, out.shape[:2])
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    ((out * upstream).sum() + 0.1 * count).backward()
    return out.detach(), count.detach(), x.grad


@pytest.mark.parametrize("compile_mode", ["0", "1"])
@pytest.mark.parametrize("layout", ["channels_last", "contiguous", "time_constant", "odd_size"])
@pytest.mark.parametrize("kind,reset", [("lif", "soft"), ("lif", "hard"), ("if", "soft")])
def test_pooling_folded_into_the_neuron_equals_spikes_then_avg_pool(
        compiled_kernels: fused._Compiled, monkeypatch: pytest.MonkeyPatch, compile_mode: str, layout: str,
        kind: str, reset: str) -> None:
    """``pool=True`` (pooled inside the fused node; after it for odd sizes) gives the reference neuron's spikes
    average-pooled 2x2, exactly, with the count of the unpooled spikes and the same gradient."""
    monkeypatch.setenv("SPARSITY_SEARCH_COMPILE", compile_mode)
    gen = torch.Generator().manual_seed(4)
    steps, batch, size = 5, 2, (5, 6) if layout == "odd_size" else (6, 4)
    repeat = steps if layout == "time_constant" else None
    x_seq = torch.rand(batch if repeat else steps * batch, 3, *size, generator=gen) * 0.9
    if layout == "channels_last":
        x_seq = x_seq.to(memory_format=torch.channels_last)
    if repeat is None:
        x_seq = x_seq.unflatten(0, (steps, batch))
    fast_neuron = _neuron(kind, "arctan", reset, "fast")
    fast_neuron.pool = True
    runs = compiled_kernels.runs
    fast = _pooled_run(fast_neuron, x_seq, repeat, pool_after=False)
    if compile_mode == "1":
        _check_compiled(compiled_kernels, runs)
    ref = _pooled_run(_neuron(kind, "arctan", reset, "reference"), x_seq, repeat, pool_after=True)
    assert 0.05 < fast[0].mean() < 0.95
    assert torch.equal(fast[0], ref[0]) and torch.equal(fast[1], ref[1])
    torch.testing.assert_close(fast[2], ref[2])
    if layout == "channels_last":  # pooled per step in the input's layout, no copy to NCHW
        assert fast[0][0].is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():  # evaluation: the plain loop, then pooling
        assert torch.equal(fast_neuron(x_seq if repeat is None else x_seq.expand(steps, *x_seq.shape)), ref[0])


def test_compile_failure_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no C++ compiler")

    kernels = fused._Compiled()
    monkeypatch.setattr(fused, "COMPILED", kernels)
    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setenv("SPARSITY_SEARCH_COMPILE", "1")
    x_seq = torch.rand(4, 3, 50, generator=torch.Generator().manual_seed(3)) * 1.5
    with caplog.at_level(logging.WARNING, logger=fused.__name__):
        fast = _spikes_and_grad(_neuron("if", "triangle", "soft", "fast"), x_seq)
    assert kernels.failed and "no C++ compiler" in caplog.text
    ref = _spikes_and_grad(_neuron("if", "triangle", "soft", "reference"), x_seq)
    assert torch.equal(fast[0], ref[0])
    torch.testing.assert_close(fast[1], ref[1])


def test_small_layers_stay_eager_under_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` compiles only layers big enough to repay the compile time."""
    kernels = fused._Compiled()
    monkeypatch.delenv("SPARSITY_SEARCH_COMPILE", raising=False)
    assert not kernels.wanted(fused.COMPILE_MIN_ELEMENTS - 1)
    assert kernels.wanted(fused.COMPILE_MIN_ELEMENTS)
    monkeypatch.setenv("SPARSITY_SEARCH_COMPILE", "0")
    assert not kernels.wanted(10 * fused.COMPILE_MIN_ELEMENTS)


def test_conv_nets_run_channels_last_with_a_full_precision_input_layer() -> None:
    torch.manual_seed(0)
    model = build_model(TrainConfig(model="vgg5"), (3, 8, 8), 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    seq_layers = [m for m in model.body if isinstance(m, SeqToANN)]
    assert seq_layers[0].full_precision and not any(m.full_precision for m in seq_layers[1:])
    dtypes = []
    hooks = [m.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype)) for m in (convs[0], convs[1],
                                                                                          seq_layers[0])]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(encode(torch.rand(2, 3, 8, 8), 2, "direct"))
    for hook in hooks:
        hook.remove()
    # the first conv computes in fp32, its block hands bf16 on like every other block
    assert dtypes == [torch.float32, torch.bfloat16, torch.bfloat16]


def test_resolve_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr("sparsity_search.devices.cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", cpu) is torch.bfloat16
    monkeypatch.setattr("sparsity_search.devices.cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", cpu) is None


def test_bf16_digits_accuracy_within_half_a_point_of_fp32() -> None:
    """The same training (seed, data order, schedule) in bf16 autocast loses at most 0.5 points of test accuracy.

    One-sided: the test split has 360 digits, so one digit is 0.28 points and bf16 landing a digit or two *above*
    fp32 is noise, not a failure.
    """
    cfg = dict(epochs=5, hidden=[128], timesteps=4, seed=0, device="cpu")
    data = load_data(TrainConfig(**cfg))
    rows = {p: train(TrainConfig(precision=p, **cfg), data=data) for p in ("fp32", "bf16")}
    assert rows["fp32"]["train_loss"] != rows["bf16"]["train_loss"]  # bf16 really ran
    assert rows["fp32"]["test_accuracy"] > 0.8
    assert rows["bf16"]["test_accuracy"] >= rows["fp32"]["test_accuracy"] - 0.005
