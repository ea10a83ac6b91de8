"""Train K configs as one population and return each member's ``train()`` result row (or its exception).

    rows = train_population([cfg.replace(lambda_max=l) for l in (0.5, 1, 2, 4)])

Mirrors ``trainer.train`` step for step; what differs is documented here:

* Grouping: members must share ``population_key(cfg)``. The key includes ``seed``: the seed fixes the data split
  (``load_data``), the batch order and the Poisson draws (``train``'s generator), so members with one seed see
  exactly the data they would see alone, in the same order, every epoch. Members differ in what ``PER_MEMBER``
  lists: the sparsity schedule, learning-rate schedule and optimizer hyperparameters, and the neuron constants.
* Divergence: a member whose epoch loss is NaN/inf gets a ``DivergedError`` (same epoch and step as ``train``) and
  is removed from the population; the others carry on (members never share an arithmetic op).
* ``reports[k](epoch, metrics)`` is called after each epoch like ``train``'s ``report``; if it raises (e.g. a
  search pruning the trial), that member is removed and its entry is the exception.
* No checkpoints: ``checkpoint_dir``/``resume`` are ignored (``resumed_from_epoch`` is 0). A search that loses a
  population retries its trials from scratch (see ``search/_population.py``).
* ``wall_time_s`` in a member's metrics is the population's elapsed time (its members share every second).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Hashable, Sequence

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..data import DataSplits, iterate_batches, load_data
from ..devices import autocast, resolve_device, resolve_precision
from ..errors import ConfigError, DivergedError
from ..loss import layer_weights
from ..schedules import lr_factor, make_lambda_schedule
from ..snn import build_model, encode, spike_stats
from ..trainer import EVAL_BATCH
from ._net import PopulationNet
from ._optim import PopulationOptimizer

Report = Callable[[int, dict[str, Any]], None]
# Fields members may differ in; every other TrainConfig field must be equal across a population.
PER_MEMBER = ("lambda_max", "schedule", "temperature", "warmup_epochs", "layer_weights", "lr", "lr_schedule",
              "lr_step_epochs", "lr_gamma", "momentum", "weight_decay", "beta", "tau", "threshold",
              "surrogate_slope", "checkpoint_dir", "resume")


def population_key(cfg: TrainConfig) -> tuple[Hashable, ...]:
    """The population-invariant settings of ``cfg``: configs with equal keys can be trained together.

    That is every field outside ``PER_MEMBER``: dataset and split, architecture, timesteps, encoding, batch size,
    epochs, optimizer kind, neuron kind, reset and surrogate, precision, device, threads and the seed.
    """
    return tuple((f.name, _hashable(getattr(cfg, f.name))) for f in dataclasses.fields(cfg)
                 if f.name not in PER_MEMBER)


def _hashable(value: Any) -> Hashable:
    return tuple(value) if isinstance(value, list) else value


class _Population:
    """The live members: the stacked net and optimizer plus, per member, its config, schedule and spike weights."""

    def __init__(self, cfgs: Sequence[TrainConfig], data: DataSplits, device: torch.device,
                 steps_per_epoch: int) -> None:
        members = []
        for cfg in cfgs:
            torch.manual_seed(cfg.seed)  # exactly train()'s initialisation of this member
            members.append(build_model(cfg, data.input_shape, data.num_classes).to(device))
        self.net = PopulationNet(members, cfgs)
        self.optimizer = PopulationOptimizer(self.net.weights, cfgs)
        self.ids = list(range(len(cfgs)))  # positions in the caller's list
        self.cfgs = list(cfgs)
        self.schedules = [make_lambda_schedule(c, steps_per_epoch) for c in cfgs]
        self.neurons = [layer.neurons for layer in self.net.template.spiking_layers]
        self._device = device
        self._set_weights()

    def _set_weights(self) -> None:
        """Per layer and member: w_l / N_l, so S_k = sum_l coef[l, k] * spikes[l, k] / (B * T) (``loss.spike_term``)."""
        w = [layer_weights(self.neurons, c.layer_weights) for c in self.cfgs]
        self.coef = torch.tensor([[wk[l] / n for wk in w] for l, n in enumerate(self.neurons)],
                                 dtype=torch.float32, device=self._device)

    def drop(self, positions: set[int]) -> None:
        """Remove the members at these positions of the current population."""
        keep = [i for i in range(len(self.ids)) if i not in positions]
        index = torch.tensor(keep, dtype=torch.long, device=self._device)
        self.ids = [self.ids[i] for i in keep]
        self.cfgs = [self.cfgs[i] for i in keep]
        self.schedules = [self.schedules[i] for i in keep]
        if keep:
            self.net.select(index, self.cfgs)
            self.optimizer.select(index, self.cfgs, self.net.weights)
            self._set_weights()


@torch.inference_mode()
def evaluate_population(net: PopulationNet, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
                        amp: torch.dtype | None) -> tuple[list[float], list[dict[str, float]]]:
    """``trainer.evaluate`` for every member: accuracies and ``spike_stats`` per member, one host sync."""
    net.eval()
    gen = torch.Generator(device=x.device).manual_seed(cfg.seed + 1)
    correct = torch.zeros(net.k, device=x.device)
    totals = torch.zeros(len(net.template.spiking_layers), net.k, device=x.device)
    input_spikes = torch.zeros((), device=x.device)
    for idx in iterate_batches(len(y), EVAL_BATCH, shuffle=False, generator=None, device=x.device):
        x_seq = encode(x[idx], cfg.timesteps, cfg.encoding, gen)
        with autocast(x.device, amp):
            logits, spikes = net(x_seq)
        correct += (logits.argmax(2) == y[idx]).sum(1)
        totals += spikes.float()
        if cfg.encoding == "poisson":
            input_spikes += x_seq.sum()
    n = len(y)
    correct_l, totals_l, inp = correct.tolist(), totals.T.tolist(), float(input_spikes)
    stats = [spike_stats(t, n, net.template, cfg.timesteps, cfg.encoding, input_spikes=inp) for t in totals_l]
    return [c / n for c in correct_l], stats


def train_population(cfgs: Sequence[TrainConfig], reports: Sequence[Report | None] | None = None,
                     data: DataSplits | None = None) -> list[dict[str, Any] | Exception]:
    """Train ``cfgs`` (equal ``population_key``) together; entry k is ``train(cfgs[k])``'s row or its exception.

    Exceptions are those ``train`` would raise for that member (``DivergedError``) or what ``reports[k]`` raised;
    anything else (bad data, out of memory) propagates and fails the whole population.
    """
    if not cfgs:
        return []
    keys = {population_key(c) for c in cfgs}
    if len(keys) > 1:
        raise ConfigError("configs of one population must share every setting outside PER_MEMBER",
                          field="population")
    reports = list(reports) if reports is not None else [None] * len(cfgs)
    t0 = time.perf_counter()
    cfg0 = cfgs[0]
    device = resolve_device(cfg0.device)
    amp = resolve_precision(cfg0.precision, device)
    if cfg0.threads:
        torch.set_num_threads(cfg0.threads)
    data = data if data is not None else load_data(cfg0, device)
    n_train = len(data.train_y)
    steps_per_epoch = math.ceil(n_train / cfg0.batch_size)
    pop = _Population(cfgs, data, device, steps_per_epoch)
    gen = torch.Generator(device=device).manual_seed(cfg0.seed)  # shared: every member's own order (same seed)
    results: list[dict[str, Any] | Exception | None] = [None] * len(cfgs)
    histories: list[list[dict[str, Any]]] = [[] for _ in cfgs]
    timesteps = cfg0.timesteps

    for epoch in range(cfg0.epochs):
        if not pop.ids:
            break
        pop.net.train()
        loss_sum = torch.zeros(len(pop.ids), device=device)
        lams = [0.0] * len(pop.ids)
        lrs = [c.lr for c in pop.cfgs]
        for step, idx in enumerate(iterate_batches(n_train, cfg0.batch_size, shuffle=True, generator=gen,
                                                   device=device)):
            lams = [s.lambda_at(epoch, step) for s in pop.schedules]
            lrs = [c.lr * lr_factor(c, epoch, step, steps_per_epoch) for c in pop.cfgs]
            lam_t = torch.tensor(lams, device=device)
            x_seq = encode(data.train_x[idx], timesteps, cfg0.encoding, gen)
            with autocast(device, amp):
                logits, spikes = pop.net(x_seq)
            s = (pop.coef * spikes.float()).sum(0) / (len(idx) * timesteps)  # [K]
            y = data.train_y[idx]
            ce = F.cross_entropy(logits.float().flatten(0, 1), y.repeat(len(pop.ids)), reduction="none")
            loss = ce.view(len(pop.ids), -1).mean(1) + lam_t * s
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
        accs, stats = evaluate_population(pop.net, data.val_x, data.val_y, cfg0, amp)
        elapsed = time.perf_counter() - t0
        for i, member in enumerate(pop.ids):
            if i in gone:
                continue
            metrics = {"epoch": epoch + 1, "train_loss": train_loss[i], "lambda": lams[i], "lr": lrs[i],
                       "val_accuracy": accs[i], **stats[i], "wall_time_s": elapsed}
            histories[member].append(metrics)
            if reports[member] is not None:
                try:
                    reports[member](epoch + 1, metrics)
                except Exception as exc:  # noqa: BLE001 - the caller's decision to stop this member
                    results[member] = exc
                    gone.add(i)
        if gone:
            pop.drop(gone)

    if pop.ids:
        accs, stats = evaluate_population(pop.net, data.test_x, data.test_y, cfg0, amp)
        for i, member in enumerate(pop.ids):
            history = histories[member]
            row = {k: v for k, v in history[-1].items() if k not in ("epoch", "wall_time_s")}
            row.update(test_accuracy=accs[i], test_spikes_per_sample=stats[i]["spikes_per_sample"],
                       test_energy_uj=stats[i]["energy_uj"], epochs=len(history), resumed_from_epoch=0,
                       wall_time_s=time.perf_counter() - t0, config=cfgs[member].to_dict())
            results[member] = row
    return results  # type: ignore[return-value]
