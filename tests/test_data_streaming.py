"""Streaming through a DataLoader gives the same numbers as holding the data on the device: same batch order
(drawn from the training generator), same inputs, same rows."""

import pytest
import torch
from _fake_datasets import write_data_module

from sparsity_search import TrainConfig, train
from sparsity_search.data import load_data
from sparsity_search.data.placement import HOLD_FRACTION, hold_on_device
from sparsity_search.population import train_population

TINY = dict(epochs=2, hidden=[16], channels=[4], timesteps=2, batch_size=32, device="cpu", threads=1)


def _same_rows(streamed: dict, held: dict) -> None:
    """Every number equal (not close): only the wall time and the ``stream`` setting itself may differ."""
    assert streamed["config"] == {**held["config"], "stream": True}
    assert {k: v for k, v in streamed.items() if k not in ("wall_time_s", "config")} == \
           {k: v for k, v in held.items() if k not in ("wall_time_s", "config")}


def _factory(tmp_path, name: str, **options) -> dict:
    write_data_module(tmp_path)
    return {"factory": f"fake_user_data:{name}", "options": options, "module_dir": str(tmp_path)}


@pytest.mark.parametrize("changes", [
    dict(model="mlp", encoding="poisson"),
    dict(model="convnet", augment=True),
], ids=["digits-mlp-poisson", "digits-convnet-augmented"])
def test_streamed_builtin_data_trains_to_the_same_row(changes):
    cfg = TrainConfig(**TINY, **changes)
    held, streamed = load_data(cfg), load_data(cfg.replace(stream=True))
    assert not held.streamed and streamed.streamed
    _same_rows(train(cfg.replace(stream=True), data=streamed), train(cfg, data=held))


def test_streamed_factory_data_with_workers_trains_to_the_same_row(tmp_path):
    cfg = TrainConfig(**TINY, model="convnet", augment=True, stream_workers=2,
                      dataset=_factory(tmp_path, "images", n_train=90, n_test=30))
    _same_rows(train(cfg.replace(stream=True)), train(cfg.replace(stream=False)))


def test_streamed_event_frames_train_to_the_same_row(tmp_path):
    cfg = TrainConfig(**{**TINY, "timesteps": 5}, encoding="none", stream_workers=1,
                      dataset=_factory(tmp_path, "frames", n_train=60, n_test=20, n_val=20))
    _same_rows(train(cfg.replace(stream=True)), train(cfg.replace(stream=False)))


def test_streamed_batches_equal_held_batches_split_by_split(tmp_path):
    cfg = TrainConfig(dataset=_factory(tmp_path, "images", n_train=70, n_test=25), model="convnet",
                      stream_workers=0, augment=True)
    held, streamed = load_data(cfg.replace(stream=False)), load_data(cfg.replace(stream=True))
    assert streamed.streamed and not held.streamed
    for split in ("val", "test"):
        pairs = zip(held.eval_batches(split, 16), streamed.eval_batches(split, 16), strict=True)
        assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in pairs)
    gens = [torch.Generator().manual_seed(5) for _ in range(2)]
    pairs = zip(held.train_batches(16, gens[0]), streamed.train_batches(16, gens[1]), strict=True)
    assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in pairs)
    assert torch.equal(gens[0].get_state(), gens[1].get_state())  # the same draws, in the same number


def test_population_members_on_streamed_data_equal_training_alone():
    cfg = TrainConfig(**TINY, model="mlp", stream=True)
    cfgs = [cfg.replace(lambda_max=0.5), cfg.replace(lambda_max=2.0, lr=3e-3)]
    rows = train_population(cfgs, data=load_data(cfg))
    for member, row in zip(cfgs, rows):
        alone = train(member.replace(stream=False))
        assert row["val_accuracy"] == pytest.approx(alone["val_accuracy"], rel=1e-4)
        assert row["spikes_per_sample"] == pytest.approx(alone["spikes_per_sample"], rel=1e-4)


def test_placement_holds_what_fits_in_half_the_free_memory(monkeypatch):
    monkeypatch.setattr("sparsity_search.data.placement.free_bytes", lambda device: 1000)
    cpu = torch.device("cpu")
    assert hold_on_device(int(1000 * HOLD_FRACTION), cpu, None)
    assert not hold_on_device(int(1000 * HOLD_FRACTION) + 1, cpu, None)
    assert hold_on_device(10**12, cpu, False) and not hold_on_device(1, cpu, True)  # forced either way
    monkeypatch.setattr("sparsity_search.data.placement.free_bytes", lambda device: None)
    assert hold_on_device(10**12, cpu, None)  # unknown free memory: held, as before streaming existed


def test_data_too_large_for_the_device_streams_by_itself(monkeypatch):
    monkeypatch.setattr("sparsity_search.data.placement.free_bytes", lambda device: 100_000)
    assert load_data(TrainConfig()).streamed  # digits: 1797 * 64 * 4 bytes > 50 kB
    assert not load_data(TrainConfig(stream=False)).streamed


@pytest.mark.parametrize("stream", [False, True])
def test_reading_data_leaves_torch_global_generator_alone(tmp_path, stream):
    """A run that loads its own data initialises its network as one given the loaded data does."""
    cfg = TrainConfig(**TINY, model="convnet", stream=stream, stream_workers=1,
                      dataset=_factory(tmp_path, "images", n_train=60, n_test=20))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    data = load_data(cfg)
    list(data.train_batches(16, torch.Generator().manual_seed(0)))
    assert torch.equal(torch.rand(3), expected)
    assert train(cfg, data=data)["train_loss"] == train(cfg)["train_loss"]
