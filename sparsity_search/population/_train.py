"""Train K configs as one population and return each member's ``train()`` result row (or its exception).

    rows = train_population([cfg.replace(lambda_max=l) for l in (0.5, 1, 2, 4)])

Mirrors ``trainer.train`` step for step, with the same shared pieces (``training/``); what differs is documented here:

* Grouping: members must share ``population_key(cfg)``. The key includes ``seed``: the seed fixes the data split
  (``load_data``), the batch order and the Poisson draws (``train``'s generator), so members with one seed see
  exactly the data they would see alone, in the same order, every epoch. Members differ in what ``PER_MEMBER``
  lists: the sparsity schedule, learning-rate schedule and optimizer hyperparameters, and the neuron constants.
* Divergence: a member whose epoch loss is NaN/inf gets a ``DivergedError`` (same epoch and step as ``train``) and
  is removed from the population; the others carry on (members never share an arithmetic op).
* ``reports[k](epoch, metrics)`` is called after each epoch like ``train``'s ``report``; if it raises (e.g. a
  search pruning the trial), that member is removed and its entry is the exception.
* Checkpoints: each member with a ``checkpoint_dir`` gets ``train``'s checkpoint there after every epoch (the same
  format: its own network, optimizer state and history). With ``resume``, members resume from theirs; they must
  all have one from the same epoch, or none (``resumable_epoch`` tells which group a config belongs to).
* ``wall_time_s`` in a member's metrics is the population's elapsed time (its members share every second).
* Population-based training (``pbt``: ``sparsity_search.pbt.Rules``): every ``interval`` epochs the worst members
  copy the best (weights, optimizer state, settings) and explore; lambda and lr are held per epoch, and each
  member's row holds the ``piecewise`` config that replays what its final weights were trained with (``_pbt``).
  Without an exploit step that config's ``train`` row equals the member's row, as for any population.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Hashable, Sequence

import torch

from ..config import TrainConfig
from ..data import DataSplits, load_data
from ..devices import autocast
from ..errors import ConfigError, DivergedError
from ..loss import member_coefficients, member_losses, member_spike_terms
from ..pbt import Rules
from ..schedules import lr_at, make_lambda_schedule
from ..snn import build_model, encode
from ..training import (Report, epoch_metrics, evaluate_members, hold_after, load_checkpoint, result_row,
                        save_checkpoint, setup)
from . import _pbt
from ._net import PopulationNet
from ._optim import PopulationOptimizer

# Fields members may differ in; every other TrainConfig field must be equal across a population.
PER_MEMBER = ("lambda_max", "schedule", "temperature", "warmup_epochs", "layer_weights", "lr", "lr_schedule",
              "lr_step_epochs", "lr_gamma", "momentum", "weight_decay", "beta", "tau", "threshold",
              "surrogate_slope", "lambda_points", "lr_points", "checkpoint_dir", "resume")
USER_MODELS_ALONE = ("a user model trains one trial at a time: its neurons keep state in their modules and the spike "
                     "functions of snnTorch, norse and sinabs do not run under torch.func.vmap; run trials side by "
                     "side with --workers N (or --gpus) instead of a population")


def population_key(cfg: TrainConfig) -> tuple[Hashable, ...]:
    """The population-invariant settings of ``cfg``: configs with equal keys can be trained together.

    That is every field outside ``PER_MEMBER``: dataset and split, architecture, timesteps, encoding, batch size,
    epochs, optimizer kind, neuron kind, reset and surrogate, precision, device, threads and the seed.
    """
    names = [f.name for f in dataclasses.fields(cfg) if f.name not in PER_MEMBER]
    return tuple(zip(names, cfg.key(names)))


def resumable_epoch(cfg: TrainConfig) -> int:
    """The epoch ``cfg``'s run would resume from (0: it starts afresh); configs in one population must agree."""
    state = load_checkpoint(cfg)
    return 0 if state is None else int(state["epoch"])


def _resume_states(cfgs: Sequence[TrainConfig]) -> list[dict[str, Any]] | None:
    """Every member's checkpoint, or None when no member has one; members resume together or not at all."""
    states = [load_checkpoint(c) for c in cfgs]
    if all(s is None for s in states):
        return None
    epochs = {None if s is None else s["epoch"] for s in states}
    if len(epochs) > 1 or any(not torch.equal(s["generator"], states[0]["generator"]) for s in states):
        raise ConfigError(f"members of one population must resume from the same epoch (checkpoints at "
                          f"{sorted(epochs, key=str)}); group them by resumable_epoch", field="resume")
    return states  # type: ignore[return-value]


class _Population:
    """The live members: the stacked net and optimizer plus, per member, its config, schedule and spike weights.

    With ``held`` (PBT) lambda and lr are constant per epoch, configs and lineages resume from the checkpoints, and
    ``copy_member`` lets one member take over another (``_pbt``).
    """

    def __init__(self, cfgs: Sequence[TrainConfig], data: DataSplits, device: torch.device, steps_per_epoch: int,
                 states: Sequence[dict[str, Any]] | None, held: bool = False) -> None:
        members = []
        for k, cfg in enumerate(cfgs):
            torch.manual_seed(cfg.seed)  # exactly train()'s initialisation of this member
            members.append(build_model(cfg, data.input_shape, data.num_classes).to(device))
            if states is not None:
                members[-1].load_state_dict(states[k]["model"])
        self.held = held
        self.lineage: list[list[list[float]]] = [[] for _ in cfgs]  # PBT: [[lambda, lr], ...] of each one's weights
        if held and states is not None:
            cfgs, self.lineage = (list(x) for x in zip(*(_pbt.resumed(c, s, PER_MEMBER) for c, s in zip(cfgs, states))))
        self.net = PopulationNet(members, cfgs)
        self.optimizer = PopulationOptimizer(self.net.weights, cfgs)
        # torch numbers a member's optimizer state by its parameters' order; ours are stacked in layer order
        names = [name for name, _ in members[0].named_parameters()]
        self.order = [self.net.weight_names.index(name) for name in names]
        if states is not None:
            self.optimizer.load_members([s["optimizer"] for s in states], self.order)
        self.ids = list(range(len(cfgs)))  # positions in the caller's list
        self.cfgs = list(cfgs)
        self.steps_per_epoch = steps_per_epoch
        self.schedules = [make_lambda_schedule(c, steps_per_epoch) for c in cfgs]
        self.neurons = [layer.neurons for layer in self.net.template.spiking_layers]
        self._device = device
        self._set_weights()

    def _set_weights(self) -> None:
        """Per layer and member: w_l / N_l (``loss.member_coefficients``)."""
        self.coef = member_coefficients(self.neurons, [c.layer_weights for c in self.cfgs], self._device)

    def lambda_at(self, i: int, epoch: int, step: int) -> float:
        return self.schedules[i].lambda_at(epoch, self.steps_per_epoch - 1 if self.held else step)

    def lr_at(self, i: int, epoch: int, step: int) -> float:
        return lr_at(self.cfgs[i], epoch, 0 if self.held else step, self.steps_per_epoch)

    def set_config(self, i: int, cfg: TrainConfig) -> None:
        """Member ``i`` trains on with ``cfg``'s per-member settings."""
        self.cfgs[i] = cfg
        self.schedules[i] = make_lambda_schedule(cfg, self.steps_per_epoch)
        self.net.set_members(self.cfgs)
        self.optimizer.set_members(self.cfgs)
        self._set_weights()

    def copy_member(self, dst: int, src: int) -> None:
        """Member ``dst`` takes over member ``src``: weights, statistics, optimizer state, settings, lineage."""
        self.cfgs[dst] = _pbt.inherited(self.cfgs[src], self.cfgs[dst], PER_MEMBER)
        self.net.copy_member(dst, src, self.cfgs)
        self.optimizer.copy_member(dst, src, self.cfgs)
        self.lineage[dst] = [list(p) for p in self.lineage[src]]
        self.set_config(dst, self.cfgs[dst])

    def save(self, i: int, gen: torch.Generator, epoch: int, history: list[dict[str, Any]], lr: float) -> None:
        """Write the checkpoint of the member at position ``i``, as ``train`` would after ``epoch`` epochs (its current
        config; in PBT mode with its lineage)."""
        cfg = self.cfgs[i]
        if cfg.checkpoint_dir:
            extra = {_pbt.LINEAGE: self.lineage[i]} if self.held else {}
            save_checkpoint(cfg, model=self.net.member_state(i),
                            optimizer=self.optimizer.member_state(i, cfg, self.order, lr),
                            generator=gen.get_state(), epoch=epoch, history=history, **extra)

    def drop(self, positions: set[int]) -> None:
        """Remove the members at these positions of the current population."""
        keep = [i for i in range(len(self.ids)) if i not in positions]
        index = torch.tensor(keep, dtype=torch.long, device=self._device)
        self.ids = [self.ids[i] for i in keep]
        self.cfgs = [self.cfgs[i] for i in keep]
        self.schedules = [self.schedules[i] for i in keep]
        self.lineage = [self.lineage[i] for i in keep]
        if keep:
            self.net.select(index, self.cfgs)
            self.optimizer.select(index, self.cfgs, self.net.weights)
            self._set_weights()


def _pbt_step(pop: _Population, rules: Rules, epoch: int, epochs: int, metrics: dict[int, dict[str, Any]],
              labels: Sequence[Any]) -> None:
    """PBT after ``epoch`` epochs: record each member's perturbed values in its metrics, extend its lineage, and at an
    exploit step let the losers take over the winners and explore (``weights_from`` names the winner)."""
    for i, m in metrics.items():
        m["pbt"] = _pbt.values(pop.cfgs[i], rules)
        pop.lineage[i].append([m["lambda"], m["lr"]])
    if not rules.is_step(epoch, epochs):
        return
    pairs, rng = _pbt.ranked_pairs(rules, epoch, metrics)
    for dst, src in pairs.items():
        pop.copy_member(dst, src)
        pop.set_config(dst, _pbt.explored(pop.cfgs[dst], rules, rng))
        metrics[dst]["pbt"]["weights_from"] = labels[pop.ids[src]]


def evaluate_population(net: PopulationNet, data: DataSplits, split: str, cfg: TrainConfig,
                        amp: torch.dtype | None) -> tuple[list[float], list[dict[str, float]]]:
    """``trainer.evaluate`` for every member: accuracies and ``spike_stats`` per member, one host sync."""
    return evaluate_members(net, net.template, data, split, cfg, amp)


def train_population(cfgs: Sequence[TrainConfig], reports: Sequence[Report | None] | None = None,
                     data: DataSplits | None = None, pbt: Rules | None = None,
                     labels: Sequence[Any] | None = None) -> list[dict[str, Any] | Exception]:
    """Train ``cfgs`` (equal ``population_key``) together; entry k is ``train(cfgs[k])``'s row or its exception.

    Exceptions are those ``train`` would raise for that member (``DivergedError``) or what ``reports[k]`` raised;
    anything else (bad data, out of memory, members' checkpoints at different epochs) propagates and fails the
    whole population. With ``pbt`` the members exploit and explore (module docstring); a row's ``config`` is then
    the learned ``piecewise`` config, and ``labels[k]`` (default: k) names member k in the others' records.
    """
    if not cfgs:
        return []
    if cfgs[0].user_model is not None:
        raise ConfigError(USER_MODELS_ALONE, field="population")
    keys = {population_key(c) for c in cfgs}
    if len(keys) > 1:
        raise ConfigError("configs of one population must share every setting outside PER_MEMBER",
                          field="population")
    reports = list(reports) if reports is not None else [None] * len(cfgs)
    t0 = time.perf_counter()
    cfg0 = cfgs[0]
    device, amp = setup(cfg0)
    data = data if data is not None else load_data(cfg0, device)
    data.check(cfg0)
    n_train = data.size("train")
    steps_per_epoch = math.ceil(n_train / cfg0.batch_size)
    states = _resume_states(cfgs)
    pop = _Population(cfgs, data, device, steps_per_epoch, states, held=pbt is not None)
    labels = list(range(len(cfgs))) if labels is None else list(labels)
    gen = torch.Generator(device=device).manual_seed(cfg0.seed)  # shared: every member's own order (same seed)
    start_epoch, histories = 0, [[] for _ in cfgs]
    if states is not None:
        gen.set_state(states[0]["generator"])
        start_epoch, histories = states[0]["epoch"], [s["history"] for s in states]
    results: list[dict[str, Any] | Exception | None] = [None] * len(cfgs)
    timesteps = cfg0.timesteps

    for epoch in range(start_epoch, cfg0.epochs):
        if not pop.ids:
            break
        pop.net.train()
        loss_sum = torch.zeros(len(pop.ids), device=device)
        lams = [0.0] * len(pop.ids)
        lrs = [c.lr for c in pop.cfgs]
        for step, (x, y) in enumerate(data.train_batches(cfg0.batch_size, gen)):
            lams = [pop.lambda_at(i, epoch, step) for i in range(len(pop.ids))]
            lrs = [pop.lr_at(i, epoch, step) for i in range(len(pop.ids))]
            lam_t = torch.tensor(lams, device=device)
            x_seq = encode(x, timesteps, cfg0.encoding, gen)
            with autocast(device, amp):
                logits, spikes = pop.net(x_seq)
            s = member_spike_terms(spikes, pop.coef, len(y), timesteps)
            loss = member_losses(logits, y, s, lam_t)
            pop.optimizer.zero_grad()
            loss.sum().backward()  # members share no parameter: each slice gets its own loss's gradient
            pop.optimizer.step(torch.tensor(lrs, device=device))
            loss_sum += loss.detach()
        train_loss = [v / steps_per_epoch for v in loss_sum.tolist()]  # the epoch's only host sync in training
        gone = set()
        for i, value in enumerate(train_loss):
            if not math.isfinite(value):
                results[pop.ids[i]] = DivergedError(epoch + 1, steps_per_epoch, value)
                gone.add(i)
        accs, stats = evaluate_population(pop.net, data, "val", cfg0, amp)
        elapsed = time.perf_counter() - t0
        metrics = {i: epoch_metrics(epoch + 1, train_loss[i], lams[i], lrs[i], accs[i], stats[i], elapsed)
                   for i in range(len(pop.ids)) if i not in gone}
        if pbt is not None:
            _pbt_step(pop, pbt, epoch + 1, cfg0.epochs, metrics, labels)
        for i, m in metrics.items():
            member = pop.ids[i]
            histories[member].append(m)
            pop.save(i, gen, epoch + 1, histories[member], lrs[i])
            if reports[member] is not None:
                try:
                    reports[member](epoch + 1, m)
                except Exception as exc:  # noqa: BLE001 - the caller's decision to stop this member
                    results[member] = exc
                    gone.add(i)
        hold_after(epoch + 1, [cfgs[pop.ids[i]].checkpoint_dir for i in metrics if i not in gone])
        if gone:
            pop.drop(gone)

    if pop.ids:
        accs, stats = evaluate_population(pop.net, data, "test", cfg0, amp)
        for i, member in enumerate(pop.ids):
            cfg = cfgs[member] if pbt is None else _pbt.learned_config(pop.cfgs[i], pop.lineage[i])
            results[member] = result_row(histories[member], accs[i], stats[i], start_epoch,
                                         time.perf_counter() - t0, cfg)
    return results  # type: ignore[return-value]
