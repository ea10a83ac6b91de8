"""User models behind the built-in contract: hook counts against explicit counts for every library, the snnTorch
twin of the built-in ``mlp``, the probe's fan-outs against autograd, state reset between batches, gradients of the
spike term and training with ``trainer.train``."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from sparsity_search import TrainConfig, train
from sparsity_search.data import load_data
from sparsity_search.errors import ConfigError
from sparsity_search.loss import spike_term
from sparsity_search.population import train_population
from sparsity_search.snn import HookedModel, build_model, encode
from user_model_files import write_user_files

T = 4


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_user_files(tmp_path_factory.mktemp("user_models"))


def _build(folder: Path, factory: str, step_mode: str = "single", timesteps: int = T,
           shape: tuple[int, ...] = (1, 8, 8), **model: Any) -> HookedModel:
    cfg = TrainConfig(model={"factory": factory, "module_dir": str(folder), "step_mode": step_mode, **model},
                      timesteps=timesteps)
    built = build_model(cfg, shape, 10)
    assert isinstance(built, HookedModel)
    return built


@dataclass(frozen=True)
class Case:
    library: str
    factory: str
    step_mode: str
    layers: list[str]  # spiking layers expected, in order (voltage-only modules left out)
    neurons: list[int]
    fan_out: list[float]
    spiking: tuple[str, ...] = ()


CASES = [
    Case("snntorch", "ut_snntorch_single:build", "single", ["lif1", "syn2"], [24, 16], [16, 10]),
    Case("snntorch", "ut_snntorch_tutorial:build", "multi", ["lif1", "lif2"], [20, 10], [10, 0]),
    Case("spikingjelly", "ut_sj_single:build", "single", ["lif", "if_"], [24, 12], [12, 10]),
    Case("spikingjelly", "ut_sj_multi:build", "multi", ["lif", "plif"], [6 * 8 * 8, 16], [16, 10]),
    Case("norse", "ut_norse:build", "multi", ["cell", "lif"], [20, 12], [12, 10]),
    Case("sinabs", "ut_sinabs:build", "multi", ["iaf", "lif"], [20, 12], [12, 10]),
    Case("torch", "ut_plain:build", "single", ["n1", "n2"], [24, 12], [12, 10], ("ut_plain:StepNeuron",)),
]


def _case_model(case: Case, folder: Path) -> HookedModel:
    if case.library != "torch":
        pytest.importorskip(case.library)
    torch.manual_seed(0)
    return _build(folder, case.factory, case.step_mode, spiking=list(case.spiking))


def _input(batch: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(T, batch, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.factory.split(":")[0])
def test_hook_counts_equal_an_explicit_count_of_the_spikes(case: Case, user_dir: Path) -> None:
    model = _case_model(case, user_dir)
    assert [(l.name, l.neurons, l.fan_out) for l in model.spiking_layers] == list(
        zip(case.layers, case.neurons, case.fan_out))
    model.module.counts.clear()
    out = model(_input(5))
    explicit = [model.module.counts[name] for name in case.layers]
    assert all(c > 0 for c in explicit), explicit
    assert [s.item() for s in out.spikes] == explicit
    assert out.logits.shape == (5, 10)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.factory.split(":")[0])
def test_state_is_reset_before_every_batch(case: Case, user_dir: Path) -> None:
    """Batches of different sizes train one after the other (no 'backward through the graph a second time', no
    state resampled), and a batch gives the same result whatever came before it."""
    model = _case_model(case, user_dir)
    params = [p for p in model.parameters() if p.requires_grad]
    for batch in (5, 3):
        out = model(_input(batch))
        (out.logits.sum() + torch.stack(out.spikes).sum()).backward()
    again = model(_input(3))
    assert [s.item() for s in again.spikes] == [s.item() for s in out.spikes]
    assert torch.equal(again.logits, out.logits)
    assert all(p.grad is not None for p in params)


def _copy_linears(src: nn.Module, dst: nn.Module) -> None:
    pairs = list(zip([m for m in src.modules() if isinstance(m, nn.Linear)],
                     [m for m in dst.modules() if isinstance(m, nn.Linear)]))
    assert len(pairs) == 3
    with torch.no_grad():
        for a, b in pairs:
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)


@pytest.mark.parametrize("grad", [False, True], ids=["eval", "train"])
def test_a_snntorch_twin_of_the_builtin_mlp_gives_its_spike_counts(grad: bool, tmp_path: Path) -> None:
    """snnTorch 1.0's Leaky with reset_mechanism='zero' and reset_delay=False runs our LIF's hard reset step for step
    (v = leak * v + x, spike when v > threshold, then v = 0); the built-in model's weights are copied in."""
    pytest.importorskip("snntorch")
    (tmp_path / "ut_mlp_twin.py").write_text(MLP_TWIN)
    data = load_data(TrainConfig(model="mlp"))
    x_seq = encode(data.tensors("train")[0][:300], 8, "direct")
    torch.manual_seed(0)
    builtin = build_model(TrainConfig(hidden=[64, 32], beta=0.8, threshold=0.9, reset="hard", timesteps=8), (64,), 10)
    twin = _build(tmp_path, "ut_mlp_twin:build", timesteps=8, shape=(64,),
                  options={"hidden": [64, 32], "beta": 0.8, "threshold": 0.9})
    _copy_linears(builtin, twin)
    assert [(l.neurons, l.fan_out) for l in twin.spiking_layers] == [
        (l.neurons, l.fan_out) for l in builtin.spiking_layers]
    assert twin.input_macs == builtin.input_macs
    with torch.set_grad_enabled(grad):
        x = x_seq.clone().requires_grad_(grad)  # with gradients the built-in model takes its fused path
        ours, theirs = builtin(x), twin(x)
    assert [s.item() for s in theirs.spikes] == [s.item() for s in ours.spikes]
    assert all(s.item() > 0 for s in ours.spikes)
    torch.testing.assert_close(theirs.logits, ours.logits)


MLP_TWIN = '''
import math, torch.nn as nn, snntorch as snn
from snntorch import surrogate

class Twin(nn.Module):
    def __init__(self, n_in, hidden, n_out, beta, threshold):
        super().__init__()
        sizes = [n_in, *hidden]
        self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.lifs = nn.ModuleList(snn.Leaky(beta=beta, threshold=threshold, reset_mechanism="zero", reset_delay=False,
                                            spike_grad=surrogate.fast_sigmoid(slope=5)) for _ in hidden)
        self.readout = nn.Linear(sizes[-1], n_out)

    def forward(self, x):
        for fc, lif in zip(self.fcs, self.lifs):
            x, _ = lif(fc(x))
        return self.readout(x)

def build(input_shape, num_classes, hidden=(32,), beta=0.9, threshold=1.0):
    return Twin(math.prod(input_shape), list(hidden), num_classes, beta, threshold)
'''


def _fan_out_by_autograd(conv: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Mean over input elements of the synapses each drives: d(sum of a ones-weight conv)/dx, averaged."""
    ones = type(conv)(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                      dilation=conv.dilation, groups=conv.groups, bias=False, padding_mode=conv.padding_mode)
    nn.init.ones_(ones.weight)
    x = torch.zeros(1, *input_shape, requires_grad=True)
    ones(x).sum().backward()
    return x.grad.mean().item()


def test_fan_outs_follow_the_wiring_and_count_every_synapse_once(user_dir: Path) -> None:
    model = _build(user_dir, "ut_plain:residual", spiking=["ut_plain:StatelessNeuron"])
    net = model.module
    c1, c2, c3 = (_fan_out_by_autograd(conv, (conv.in_channels, 8, 8)) for conv in (net.c1, net.c2, net.c3))
    assert [l.name for l in model.spiking_layers] == ["n1", "n2", "n3"]
    assert [l.neurons for l in model.spiking_layers] == [4 * 64, 4 * 64, 8 * 4 * 4]
    fan_out = [l.fan_out for l in model.spiking_layers]
    assert fan_out == pytest.approx([c2 + c3, c3, 10])
    assert model.input_fan_out == pytest.approx(c1)
    assert model.input_macs == pytest.approx(c1 * 64)


@pytest.mark.parametrize("conv", [
    nn.Conv1d(2, 3, 5, padding="same", dilation=2), nn.Conv2d(2, 3, 3, stride=2, padding=1),
    nn.Conv2d(2, 4, 3, padding=1, padding_mode="circular", groups=2), nn.Conv3d(2, 3, (1, 3, 3), stride=(1, 2, 1)),
], ids=["conv1d_same_dilated", "conv2d_strided", "conv2d_circular_grouped", "conv3d"])
def test_input_fan_out_of_any_convolution(conv: nn.Module, tmp_path: Path) -> None:
    shape = (2, 7) if isinstance(conv, nn.Conv1d) else (2, 7, 6) if isinstance(conv, nn.Conv2d) else (2, 3, 7, 6)
    (tmp_path / "ut_one_conv.py").write_text(ONE_CONV)
    model = _build(tmp_path, "ut_one_conv:build", shape=shape, options={"conv": conv}, spiking=["ut_one_conv:Fire"])
    assert model.input_fan_out == pytest.approx(_fan_out_by_autograd(conv, shape))
    assert model.spiking_layers[0].fan_out == 10


ONE_CONV = '''
import torch, torch.nn as nn

class Fire(nn.Module):
    """Spikes without a gradient (no surrogate): the probe still follows them."""

    def forward(self, x):
        return (x > 0).float()

def build(input_shape, num_classes, conv=None):
    return nn.Sequential(conv, Fire(), nn.Flatten(), nn.LazyLinear(num_classes))
'''


def test_the_spike_term_reaches_the_weights(user_dir: Path) -> None:
    model = _case_model(CASES[0], user_dir)
    out = model(_input(5))
    neurons = [l.neurons for l in model.spiking_layers]
    spike_term(out.spikes, neurons, [0.5, 0.5], 5, T).backward()
    assert model.module.fc1.weight.grad.abs().sum() > 0
    assert model.module.fc2.weight.grad.abs().sum() > 0


def test_lambda_lowers_the_spikes_of_a_snntorch_model_on_digits() -> None:
    pytest.importorskip("snntorch")
    studies = Path(__file__).parents[2] / "studies"
    rows = [train(TrainConfig(model={"factory": "snntorch_mlp:build", "module_dir": str(studies),
                                     "options": {"hidden": 32}},
                              epochs=3, timesteps=4, batch_size=32, lr=5e-3, lambda_max=lam, schedule="constant",
                              device="cpu", threads=1))
            for lam in (0.0, 0.5)]
    assert rows[1]["spikes_per_sample"] < 0.7 * rows[0]["spikes_per_sample"]
    assert rows[0]["spikes_per_sample_lifs.0"] == rows[0]["spikes_per_sample"]
    assert rows[0]["val_accuracy"] > 0.5


def test_a_sinabs_checkpoint_loads_into_a_fresh_model(user_dir: Path) -> None:
    """sinabs keeps its state in buffers shaped by the last batch; they are state, not weights, so a state_dict
    leaves them out and loading one does not miss them."""
    model = _case_model(CASES[5], user_dir)
    model(_input(5))
    state = model.state_dict()
    assert not any(k.endswith("v_mem") for k in state)
    _case_model(CASES[5], user_dir).load_state_dict(state)


def test_a_population_of_user_models_is_refused_in_one_line(user_dir: Path) -> None:
    cfg = TrainConfig(model={"factory": "ut_plain:build", "module_dir": str(user_dir),
                             "spiking": ["ut_plain:StepNeuron"]})
    with pytest.raises(ConfigError, match="--workers") as info:
        train_population([cfg, cfg.replace(lambda_max=1.0)])
    assert info.value.field == "population" and "\n" not in str(info.value)


def test_a_finished_snntorch_model_leaves_the_class_wide_instance_list(user_dir: Path) -> None:
    """snnTorch keeps every neuron ever built in SpikingNeuron.instances; a trial's must not outlive it there."""
    snn = pytest.importorskip("snntorch")
    model = _case_model(CASES[0], user_dir)
    ours = [m for m in model.module.modules() if isinstance(m, snn.SpikingNeuron)]
    assert all(any(n is m for n in snn.SpikingNeuron.instances) for m in ours)
    ids = {id(m) for m in ours}
    del model, ours
    gc.collect()
    assert not any(id(n) in ids for n in snn.SpikingNeuron.instances)
