"""Population-based training on the population engine: exploit copies a member exactly, a member's learned
``piecewise`` config replays its training with ``train``, and a killed PBT population resumes as if never killed."""

from __future__ import annotations

import math

import pytest
import torch

from sparsity_search import TrainConfig, train
from sparsity_search.data import load_data
from sparsity_search.pbt import Range, Rules
from sparsity_search.population import PopulationNet, train_population
from sparsity_search.population._optim import PopulationOptimizer
from sparsity_search.schedules import lr_at, make_lambda_schedule
from sparsity_search.snn import build_model, encode

from test_population import BASE, KEYS, Killed, members

RULES = Rules(interval=1, fraction=0.5, perturb={"lambda_max": (0.8, 1.25), "lr": (0.8, 1.25)},
              ranges={"lambda_max": Range(0.01, 10.0, log=True), "lr": Range(5e-4, 1e-2, log=True)},
              resample_probability=0.25, seed=3)


def _replayed(row: dict, data) -> dict:
    cfg = TrainConfig(**{**row["config"], "checkpoint_dir": "", "resume": False})
    return train(cfg, data=data)


def _assert_same(row: dict, want: dict) -> None:
    for key in KEYS:
        assert row[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("changes", [{"model": "mlp"}, {"model": "convnet", "optimizer": "sgd", "lr": 0.05}])
def test_exploit_copies_weights_statistics_optimizer_state_and_neuron_constants(changes: dict) -> None:
    base = BASE.replace(**changes)
    cfgs = [base.replace(threshold=t, beta=b, surrogate_slope=k, momentum=m)
            for t, b, k, m in ((1.0, 0.9, 5.0, 0.9), (0.7, 0.8, 2.0, 0.5), (1.3, 0.95, 3.0, 0.0))]
    data = load_data(base)
    nets = []
    for cfg in cfgs:
        torch.manual_seed(cfg.seed + len(nets))  # members start apart, so a copy is visible
        nets.append(build_model(cfg, data.input_shape, data.num_classes))
    net = PopulationNet(nets, cfgs)
    opt = PopulationOptimizer(net.weights, cfgs)
    order = [net.weight_names.index(name) for name, _ in nets[0].named_parameters()]
    net.train()
    for step in range(2):  # optimizer state and BatchNorm statistics that differ per member
        x = data.tensors("train")[0][step * 32:(step + 1) * 32]
        logits, spikes = net(encode(x, base.timesteps, base.encoding, None))
        (logits.square().mean() + 0.01 * spikes.sum()).backward()
        opt.step(torch.tensor([c.lr for c in cfgs]))
        opt.zero_grad()
    before = net.member_state(1)
    after = [cfgs[0], cfgs[1], cfgs[0].replace(checkpoint_dir="elsewhere")]  # member 2 takes member 0's settings
    net.copy_member(2, 0, after)
    opt.copy_member(2, 0, after)
    copy, source = net.member_state(2), net.member_state(0)
    assert all(torch.equal(copy[name], source[name]) for name in source)
    assert all(torch.equal(before[name], v) for name, v in net.member_state(1).items())  # others untouched
    want, got = opt.member_state(0, cfgs[0], order, 0.1), opt.member_state(2, after[2], order, 0.1)
    assert want["param_groups"] == got["param_groups"]
    for i, entry in want["state"].items():
        assert all(torch.equal(v, got["state"][i][k]) for k, v in entry.items())
    for constant in (net.threshold, net.leak, net.surrogate.slope):
        assert torch.equal(constant[2], constant[0]) and not torch.equal(constant[1], constant[0])
    assert opt.momentum[2] == opt.momentum[0] != opt.momentum[1]


def test_without_an_exploit_step_a_pbt_population_is_todays_population_on_its_held_schedules() -> None:
    cfgs = members(BASE)
    data = load_data(BASE)
    steps = math.ceil(data.size("train") / BASE.batch_size)
    rows = train_population(cfgs, data=data, pbt=Rules(**{**RULES.__dict__, "interval": BASE.epochs}))
    learned = [TrainConfig(**row["config"]) for row in rows]
    for cfg, held in zip(cfgs, learned):  # lambda at each epoch's last step, lr at its first, held all epoch
        lam, lr = make_lambda_schedule(cfg, steps), [lr_at(cfg, e, 0, steps) for e in range(cfg.epochs)]
        assert make_lambda_schedule(held, steps).lambda_at(1, 0) == lam.lambda_at(1, steps - 1)
        assert [lr_at(held, e, s, steps) for e in range(cfg.epochs) for s in (0, steps - 1)] == \
            [v for v in lr for _ in range(2)]
        assert {k: v for k, v in held.to_dict().items() if "schedule" not in k and "points" not in k} == \
            {k: v for k, v in cfg.to_dict().items() if "schedule" not in k and "points" not in k}
    for row, today, alone in zip(rows, train_population(learned, data=data), (train(c, data=data) for c in learned)):
        _assert_same(row, today)
        _assert_same(row, alone)


def test_members_replay_their_learned_schedules_through_every_exploit_step() -> None:
    cfgs = members(BASE)
    data = load_data(BASE)
    seen: list[list[dict]] = [[] for _ in cfgs]
    rows = train_population(cfgs, [lambda e, m, k=k: seen[k].append(m) for k in range(4)], data=data, pbt=RULES,
                            labels=[10, 11, 12, 13])
    copied = [m["pbt"]["weights_from"] for history in seen for m in history if "weights_from" in m["pbt"]]
    assert len(copied) == 2 * (BASE.epochs - 1) and set(copied) <= {10, 11, 12, 13}  # 2 losers per step
    assert all(set(m["pbt"]) - {"weights_from"} == {"lambda_max", "lr"} for h in seen for m in h)
    for k, (row, history) in enumerate(zip(rows, seen)):
        assert row["config"]["schedule"] == row["config"]["lr_schedule"] == "piecewise"
        assert [m["epoch"] for m in history] == [1, 2, 3]
        _assert_same(row, _replayed(row, data))
    # members that took others' weights took their first epochs too: fewer distinct starts than members
    assert len({r["config"]["lambda_points"][0][1] for r in rows}) < len(rows)


def test_a_population_of_one_holds_its_values_per_epoch() -> None:
    data = load_data(BASE)
    row = train_population(members(BASE)[1:2], data=data, pbt=RULES)[0]
    assert len(row["config"]["lr_points"]) == BASE.epochs  # cosine: one value per epoch
    _assert_same(row, _replayed(row, data))


def test_killed_pbt_population_resumes_from_its_checkpoints_as_if_never_killed(tmp_path) -> None:
    cfgs = [c.replace(checkpoint_dir=str(tmp_path / str(k)), resume=True) for k, c in enumerate(members(BASE))]
    data = load_data(BASE)

    def kill_after_two(epoch: int, metrics: dict) -> None:
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):  # after the exploit step of epoch 2 and every member's checkpoint
        train_population(cfgs, [None, None, None, kill_after_two], data=data, pbt=RULES)
    seen: list[list[int]] = [[] for _ in cfgs]
    resumed = train_population(cfgs, [lambda e, m, k=k: seen[k].append(e) for k in range(4)], data=data, pbt=RULES)
    assert seen == [[3]] * len(cfgs)
    whole = train_population([c.replace(checkpoint_dir="", resume=False) for c in cfgs], data=data, pbt=RULES)
    for row, want in zip(resumed, whole):
        assert row["resumed_from_epoch"] == 2
        assert {**row["config"], "checkpoint_dir": "", "resume": False} == want["config"]  # same lineage
        _assert_same(row, want)
