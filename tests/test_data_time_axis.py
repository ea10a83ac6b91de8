"""Data with a time axis (event frames [T, ...]) fed step by step with encoding none, and its energy: event counts
are spikes (accumulates), analog frames multiply-accumulates at every step."""

import pytest
import torch
from _fake_datasets import write_data_module, write_npz

from helpers import cli
from sparsity_search import TrainConfig, train
from sparsity_search.data import data_timesteps, load_data
from sparsity_search.errors import ConfigError
from sparsity_search.population import train_population
from sparsity_search.snn import E_AC_PJ, E_MAC_PJ, build_model, encode, spike_stats

TINY = dict(epochs=2, hidden=[16], batch_size=32, device="cpu", threads=1, encoding="none", stream_workers=0)


@pytest.fixture
def frames(tmp_path):
    """A factory spec of event frames [5, 2, 4, 4]; ``analog`` options give float frames instead."""
    write_data_module(tmp_path)

    def spec(**options) -> dict:
        return {"factory": "fake_user_data:frames", "options": options, "module_dir": str(tmp_path)}
    return spec


def test_encode_none_moves_the_time_axis_first():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)  # [B, T, features]
    x_seq = encode(x, 3, "none")
    assert x_seq.shape == (3, 2, 4) and x_seq.is_contiguous()
    assert torch.equal(x_seq[1, 0], x[0, 1])
    with pytest.raises(ValueError, match=r"\[B, 4, \.\.\.\]"):
        encode(x, 4, "none")


def test_event_frames_train_end_to_end_with_the_builtin_mlp(frames):
    cfg = TrainConfig(**TINY, timesteps=5, dataset=frames())
    data = load_data(cfg)
    assert (data.timesteps, data.input_shape, data.num_classes, data.event_input) == (5, (32,), 3, True)
    x, _ = next(data.train_batches(8, torch.Generator().manual_seed(0)))
    assert x.shape == (8, 5, 32)  # each step flattened for the mlp, the time axis kept
    row = train(cfg, data=data)
    assert row["epochs"] == 2 and row["spikes_per_sample"] > 0 and 0 <= row["test_accuracy"] <= 1


def test_event_counts_are_accumulates_like_poisson_input(frames):
    cfg = TrainConfig(**TINY, timesteps=5, dataset=frames())
    data = load_data(cfg)
    row = train(cfg, data=data)
    val_x, _ = data.tensors("val")
    input_pj = float(val_x.sum()) / len(val_x) * cfg.hidden[0] * E_AC_PJ  # every count drives fc1's fan-out
    assert row["energy_uj"] == pytest.approx((row["synops_per_sample"] * E_AC_PJ + input_pj) * 1e-6, rel=1e-5)


def test_analog_frames_are_multiply_accumulates_at_every_step(frames):
    cfg = TrainConfig(**TINY, timesteps=5, dataset=frames(analog=True))
    data = load_data(cfg)
    assert not data.event_input
    row = train(cfg, data=data)
    input_pj = 32 * cfg.hidden[0] * 5 * E_MAC_PJ  # 32 inputs x 16 neurons, 5 steps
    assert row["energy_uj"] == pytest.approx((row["synops_per_sample"] * E_AC_PJ + input_pj) * 1e-6, rel=1e-5)


def test_spike_stats_counts_input_by_its_kind():
    model = build_model(TrainConfig(hidden=[10]), (6,), 3)  # input fan-out 10, 60 input MACs
    events = spike_stats([0.0], 2, model, 4, "none", input_spikes=8.0, event_input=True)
    analog = spike_stats([0.0], 2, model, 4, "none", input_spikes=8.0, event_input=False)
    assert events["energy_uj"] == pytest.approx(8 / 2 * 10 * E_AC_PJ * 1e-6)
    assert analog["energy_uj"] == pytest.approx(60 * 4 * E_MAC_PJ * 1e-6)
    assert spike_stats([0.0], 2, model, 4, "direct", input_spikes=8.0, event_input=True) == analog


def test_a_timesteps_mismatch_says_which_value_to_set(frames):
    cfg = TrainConfig(**TINY, timesteps=4, dataset=frames())
    assert data_timesteps(cfg) == 5
    with pytest.raises(ConfigError) as info:
        train(cfg)
    assert str(info.value).startswith("timesteps: 4, but") and str(info.value).endswith("set timesteps: 5")


def test_encoding_none_needs_a_time_axis(tmp_path):
    with pytest.raises(ConfigError, match="encoding: none feeds samples that already have a time axis"):
        load_data(TrainConfig(encoding="none"))
    write_npz(tmp_path / "flat.npz", shape=(12,))
    with pytest.raises(ConfigError, match=r"encoding: none feeds samples shaped \[T, \.\.\.\] step by step"):
        load_data(TrainConfig(dataset={"path": str(tmp_path / "flat.npz")}, encoding="none"))


def test_data_loaded_with_a_time_axis_refuses_other_encodings(frames):
    data = load_data(TrainConfig(**TINY, timesteps=5, dataset=frames()))
    with pytest.raises(ConfigError, match="encoding"):
        train(TrainConfig(**{**TINY, "encoding": "direct"}, timesteps=5, dataset=frames()), data=data)


def test_cli_timesteps_mismatch_is_one_line_exit_2(tmp_path):
    write_npz(tmp_path / "events.npz", shape=(6, 10))
    proc = cli("train", "--set", "dataset={path: events.npz}", "--set", "encoding=none", "--timesteps", "3", "-q",
               cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "set timesteps: 6" in proc.stderr


def test_population_members_on_event_frames_equal_training_alone(frames):
    cfg = TrainConfig(**TINY, timesteps=5, dataset=frames())
    cfgs = [cfg.replace(lambda_max=0.5), cfg.replace(lambda_max=2.0, lr=3e-3)]
    for member, row in zip(cfgs, train_population(cfgs)):
        alone = train(member)
        for key in ("train_loss", "val_accuracy", "spikes_per_sample", "energy_uj"):
            assert row[key] == pytest.approx(alone[key], rel=1e-4), key
