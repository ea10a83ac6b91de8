"""Models: output shapes and bookkeeping for all five, fast == reference on a whole net, and a digits smoke run."""

from __future__ import annotations

import pytest
import torch

from sparsity_search.config import TrainConfig
from sparsity_search.snn import LayerInfo, build_model, encode

SHAPES = {"mlp": (64,), "convnet": (1, 8, 8), "vgg5": (3, 32, 32), "vgg9": (3, 16, 16), "vgg11": (3, 16, 16)}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_output_shapes_and_differentiable_spike_totals(name: str) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(model=name, hidden=[32, 16], channels=[4, 8], timesteps=2)
    model = build_model(cfg, SHAPES[name], 10)
    out = model(encode(torch.rand(2, *SHAPES[name]), cfg.timesteps, "direct"))
    assert out.logits.shape == (2, 10)
    assert len(out.spikes) == len(model.spiking_layers) > 0
    for spikes in out.spikes:
        assert spikes.dim() == 0 and spikes.requires_grad
    torch.stack(out.spikes).sum().backward()
    assert all(layer.fan_out > 0 and layer.neurons > 0 for layer in model.spiking_layers)
    assert model.input_macs > 0 and model.input_fan_out > 0


def test_convnet_bookkeeping_by_hand() -> None:
    model = build_model(TrainConfig(model="convnet", channels=[4, 6]), (1, 8, 8), 10)
    assert model.spiking_layers == [LayerInfo("conv1", 4 * 8 * 8, 6 * 9), LayerInfo("conv2", 6 * 4 * 4, 10)]
    assert model.input_macs == 8 * 8 * 4 * 1 * 9
    assert model.input_fan_out == 4 * 9
    assert model.readout.in_features == 6 * 2 * 2


def test_mlp_bookkeeping_and_image_input() -> None:
    model = build_model(TrainConfig(hidden=[20, 30]), (1, 8, 8), 10)
    assert model.spiking_layers == [LayerInfo("fc1", 20, 30), LayerInfo("fc2", 30, 10)]
    assert (model.input_macs, model.input_fan_out) == (64 * 20, 20)
    assert model(torch.rand(2, 5, 1, 8, 8)).logits.shape == (5, 10)


def test_vgg11_builds_for_small_inputs() -> None:
    model = build_model(TrainConfig(model="vgg11"), (1, 8, 8), 10)
    assert model(encode(torch.rand(2, 1, 8, 8), 2, "direct")).logits.shape == (2, 10)


def test_conv_model_rejects_flat_input() -> None:
    with pytest.raises(ValueError, match="C, H, W"):
        build_model(TrainConfig(model="convnet"), (64,), 10)


@pytest.mark.parametrize("name,neuron,reset", [("convnet", "lif", "hard"), ("vgg5", "if", "soft")])
def test_fast_equals_reference_on_a_whole_net(name: str, neuron: str, reset: str) -> None:
    shape = SHAPES[name] if name == "convnet" else (3, 8, 8)
    x_seq = encode(torch.rand(4, *shape, generator=torch.Generator().manual_seed(0)), 3, "direct")
    results = []
    for implementation in ("fast", "reference"):
        torch.manual_seed(0)
        cfg = TrainConfig(model=name, neuron=neuron, reset=reset, implementation=implementation)
        model = build_model(cfg, shape, 10)
        out = model(x_seq)
        loss = out.logits.square().sum() + 0.01 * torch.stack(out.spikes).sum()
        loss.backward()
        results.append((out, [p.grad for p in model.parameters()]))
    (fast, fast_grads), (ref, ref_grads) = results
    torch.testing.assert_close(fast.logits, ref.logits, rtol=0, atol=0)
    assert [s.item() for s in fast.spikes] == [s.item() for s in ref.spikes]
    for a, b in zip(fast_grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_forward_backward() -> None:
    torch.manual_seed(0)
    model = build_model(TrainConfig(model="convnet", channels=[4, 4]), (1, 8, 8), 10)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(encode(torch.rand(3, 1, 8, 8), 4, "direct"))
    assert out.spikes[0].dtype == torch.float32
    (out.logits.float().sum() + out.spikes[0]).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("model_name", ["mlp", "convnet"])
def test_digits_trains_above_90_percent(model_name: str) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    if model_name == "convnet":
        x = x.view(-1, 1, 8, 8)
    torch.manual_seed(0)
    cfg = TrainConfig(model=model_name, hidden=[128], channels=[16, 32], timesteps=4, lr=5e-3)
    model = build_model(cfg, tuple(x.shape[1:]), 10)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))  # the file is sorted by writer
    x, y = x[order], y[order]
    train_x, train_y, test_x, test_y = x[:1400], y[:1400], x[1400:], y[1400:]
    for _ in range(10):
        for idx in torch.randperm(1400).split(64):
            out = model(encode(train_x[idx], cfg.timesteps, "direct"))
            loss = torch.nn.functional.cross_entropy(out.logits, train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(encode(test_x, cfg.timesteps, "direct")).logits.argmax(1) == test_y).float().mean()
    assert accuracy > 0.9
