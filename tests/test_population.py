"""Population training equals training each config alone (same seed: same split, batch order and Poisson draws),
step by step and after a kill and resume from the members' checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from sparsity_search import TrainConfig, train
from sparsity_search.data import DataSplits, load_data
from sparsity_search.errors import ConfigError, DivergedError
from sparsity_search.population import PopulationNet, population_key, resumable_epoch, train_population
from sparsity_search.snn import SpikingNet, build_model, encode, fused

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


@pytest.mark.parametrize("changes,compile_mode", [
    ({"model": "mlp", "hidden": [32, 16]}, "0"),
    ({"model": "mlp", "encoding": "poisson", "reset": "hard", "surrogate": "triangle"}, "0"),
    ({"model": "convnet"}, "0"),
    ({"model": "convnet", "reset": "hard", "surrogate": "arctan"}, "1"),
])
def test_population_net_equals_its_members_forward_and_backward(changes: dict, compile_mode: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """One step of the K-member net equals the K single nets: logits, per-layer spike counts and every gradient.

    Members differ in threshold, leak and surrogate slope (per-member constants in the shared kernels); compile
    mode 1 runs the compiled kernels with the member axis and the pooling folded into the neuron.
    """
    monkeypatch.setenv("SPARSITY_SEARCH_COMPILE", compile_mode)
    monkeypatch.setattr(fused, "COMPILED", fused._Compiled())
    base = BASE.replace(**changes)
    cfgs = [base.replace(threshold=t, beta=b, surrogate_slope=k)
            for t, b, k in ((1.0, 0.9, 5.0), (0.7, 0.8, 2.0), (1.3, 0.95, 3.0))]
    data = load_data(base)
    singles = [_build(c, data) for c in cfgs]
    net = PopulationNet([_build(c, data) for c in cfgs], cfgs)
    x_seq = encode(data.tensors("train")[0][:32], base.timesteps, base.encoding, torch.Generator().manual_seed(3))
    upstream = torch.randn(len(cfgs), 32, data.num_classes, generator=torch.Generator().manual_seed(4))
    logits, spikes = net(x_seq)
    ((logits * upstream).sum() + 0.01 * spikes.sum()).backward()
    if compile_mode == "1" and fused.COMPILED.failed:
        pytest.skip("torch.compile cannot build here; the eager kernels are tested above")
    assert (fused.COMPILED.forward is not None) == (compile_mode == "1")
    assert spikes.shape == (len(singles[0].spiking_layers), len(cfgs))
    for k, single in enumerate(singles):
        out = single(x_seq)
        ((out.logits * upstream[k]).sum() + 0.01 * torch.stack(out.spikes).sum()).backward()
        torch.testing.assert_close(logits[k].detach(), out.logits.detach(), rtol=1e-4, atol=1e-5)
        assert spikes[:, k].tolist() == pytest.approx([s.item() for s in out.spikes], rel=1e-3)
        grads = dict(single.named_parameters())
        for name, w in zip(net.weight_names, net.weights):
            torch.testing.assert_close(w.grad[k], grads[name].grad, rtol=1e-3, atol=1e-5, msg=name)
        state = net.member_state(k)
        assert state.keys() == single.state_dict().keys()
        assert all(torch.equal(state[n], v) for n, v in single.state_dict().items() if "num_batches" not in n)
    assert spikes[0].unique().numel() == len(cfgs)  # the members really differ


def _build(cfg: TrainConfig, data: DataSplits) -> SpikingNet:
    torch.manual_seed(cfg.seed)  # as train() initialises
    return build_model(cfg, data.input_shape, data.num_classes)


class Killed(BaseException):
    """Stands for the worker being killed: not an ``Exception``, so it is not one member's failure."""


def test_killed_population_resumes_each_member_from_its_last_epoch(tmp_path) -> None:
    cfgs = [c.replace(checkpoint_dir=str(tmp_path / str(k)), resume=True) for k, c in enumerate(members(BASE))]
    data = load_data(BASE)

    def kill_after_two(epoch: int, metrics: dict) -> None:
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train_population(cfgs, [None, None, None, kill_after_two], data=data)
    assert [resumable_epoch(c) for c in cfgs] == [2, 2, 2, 2]
    seen: list[list[int]] = [[] for _ in cfgs]
    resumed = train_population(cfgs, [lambda e, m, k=k: seen[k].append(e) for k in range(len(cfgs))], data=data)
    assert seen == [[3]] * len(cfgs)  # only the last epoch ran again
    fresh = [c.replace(checkpoint_dir="", resume=False) for c in cfgs]
    whole = train_population(fresh, data=data)
    for row, want in zip(resumed, whole):
        assert row["resumed_from_epoch"] == 2 and want["resumed_from_epoch"] == 0
        assert row["config"]["checkpoint_dir"] and {**row["config"], "checkpoint_dir": "", "resume": False} == \
            want["config"]
        assert row.keys() == want.keys()
        for key in KEYS:
            assert row[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key
    # a member's checkpoint is train's: the member resumes alone from it (here: nothing left to train)
    alone = train(cfgs[1], data=data)
    assert alone["resumed_from_epoch"] == 3 and alone["val_accuracy"] == pytest.approx(resumed[1]["val_accuracy"])


def test_population_resumes_from_single_checkpoints_and_rejects_mixed_epochs(tmp_path) -> None:
    cfgs = [c.replace(checkpoint_dir=str(tmp_path / str(k)), resume=True) for k, c in enumerate(members(BASE))][:2]
    data = load_data(BASE)
    for cfg in cfgs:  # each trained alone for one epoch, then killed
        _train_until(cfg, 1, data)
    rows = train_population(cfgs, data=data)
    for cfg, row in zip(cfgs, rows):
        want = train(cfg.replace(checkpoint_dir="", resume=False), data=data)
        assert row["resumed_from_epoch"] == 1
        for key in KEYS:
            assert row[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key
    mixed = [cfgs[0], cfgs[1].replace(checkpoint_dir=str(tmp_path / "new"))]
    with pytest.raises(ConfigError, match="same epoch"):
        train_population(mixed, data=data)


def _train_until(cfg: TrainConfig, epochs: int, data: DataSplits) -> None:
    def stop(epoch: int, metrics: dict) -> None:
        if epoch == epochs:
            raise Killed

    with pytest.raises(Killed):
        train(cfg, stop, data=data)
