"""Population training equals training each config alone (same seed: same split, batch order and Poisson draws)."""

from __future__ import annotations

import math

import pytest

from sparsity_search import TrainConfig, train
from sparsity_search.data import load_data
from sparsity_search.errors import ConfigError, DivergedError
from sparsity_search.population import population_key, train_population

BASE = TrainConfig(dataset="digits", hidden=[32], channels=[4, 8], timesteps=2, epochs=3, batch_size=64,
                   threads=1, device="cpu")
KEYS = ("val_accuracy", "spikes_per_sample", "firing_rate", "energy_uj", "train_loss", "lambda", "lr",
        "test_accuracy", "test_spikes_per_sample", "epochs")


def members(base: TrainConfig) -> list[TrainConfig]:
    """Four members differing in every per-member knob: lambda, schedule/temperature, lr, threshold, leak."""
    return [base.replace(lambda_max=0.5, schedule="constant", lr=2e-3, threshold=1.0, beta=0.9),
            base.replace(lambda_max=2.0, schedule="annealing", temperature=0.2, lr=5e-3, threshold=0.7, beta=0.8),
            base.replace(lambda_max=1.0, schedule="linear", lr=1e-3, threshold=1.3, beta=0.95, surrogate_slope=3.0,
                         lr_schedule="constant"),
            base.replace(lambda_max=0.1, schedule="annealing", temperature=1.0, lr=4e-3, threshold=0.9, tau=3.0,
                         warmup_epochs=1.0)]


def assert_rows_match(pop_row: dict, single_row: dict) -> None:
    assert set(pop_row) == set(single_row)
    for key in KEYS:
        assert pop_row[key] == pytest.approx(single_row[key], rel=1e-4, abs=1e-6), key
    assert pop_row["config"] == single_row["config"]


@pytest.mark.parametrize("changes", [
    {"model": "mlp"},
    {"model": "mlp", "encoding": "poisson", "reset": "hard", "surrogate": "arctan", "optimizer": "sgd",
     "lr": 0.05, "weight_decay": 1e-4},
    {"model": "convnet", "lr": 5e-3},
])
def test_population_rows_equal_single_training(changes: dict) -> None:
    base = BASE.replace(**changes)
    cfgs = members(base) if changes.get("optimizer") != "sgd" else [
        c.replace(lr=c.lr * 10, momentum=m) for c, m in zip(members(base), (0.9, 0.0, 0.5, 0.9))]
    data = load_data(base)
    seen: list[list[dict]] = [[] for _ in cfgs]
    rows = train_population(cfgs, [lambda e, m, k=k: seen[k].append(m) for k in range(len(cfgs))], data=data)
    for k, (cfg, row) in enumerate(zip(cfgs, rows)):
        history: list[dict] = []
        single = train(cfg, lambda e, m: history.append(m), data=data)
        assert_rows_match(row, single)
        assert [m["epoch"] for m in seen[k]] == [1, 2, 3]
        for got, want in zip(seen[k], history):
            assert got["val_accuracy"] == pytest.approx(want["val_accuracy"], rel=1e-4)
            assert got["spikes_per_sample"] == pytest.approx(want["spikes_per_sample"], rel=1e-4)
    assert len({row["spikes_per_sample"] for row in rows}) == len(rows)  # the members really differ


def test_diverging_member_fails_alone() -> None:
    cfgs = members(BASE)
    cfgs[1] = cfgs[1].replace(lr=1e37)
    data = load_data(BASE)
    stopped: list[int] = []

    def stop_at_two(epoch: int, metrics: dict) -> None:
        if epoch == 2:
            stopped.append(epoch)
            raise RuntimeError("pruned")

    rows = train_population(cfgs, [None, None, stop_at_two, None], data=data)
    assert isinstance(rows[1], DivergedError)
    with pytest.raises(DivergedError) as alone:
        train(cfgs[1], data=data)
    assert (rows[1].epoch, rows[1].step) == (alone.value.epoch, alone.value.step)
    assert isinstance(rows[2], RuntimeError) and stopped == [2]  # a member whose report raises is dropped
    for k in (0, 3):
        assert_rows_match(rows[k], train(cfgs[k], data=data))
    assert all(math.isfinite(rows[k]["train_loss"]) for k in (0, 3))


def test_population_key_groups_only_compatible_configs() -> None:
    key = population_key(BASE)
    for per_member in members(BASE):
        assert population_key(per_member) == key
    for change in ({"seed": 1}, {"hidden": [64]}, {"timesteps": 3}, {"batch_size": 32}, {"epochs": 4},
                   {"encoding": "poisson"}, {"neuron": "if"}, {"reset": "hard"}, {"surrogate": "arctan"},
                   {"precision": "bf16"}, {"model": "convnet"}, {"optimizer": "sgd"}, {"dataset": "mnist"}):
        assert population_key(BASE.replace(**change)) != key, change
    hash(key)
    with pytest.raises(ConfigError, match="population"):
        train_population([BASE, BASE.replace(seed=1)])
