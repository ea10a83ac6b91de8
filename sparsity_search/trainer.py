"""Train one spiking network on ``cross_entropy + lambda(t) * spikes`` and return one result row.

Read top to bottom: setup, resume, the loop, the test row. Knows nothing of Optuna or Ray; a search backend passes
``report(epoch, metrics)``, called after every epoch, and may raise from it to stop the run. The pieces this loop
shares with population training (setup, evaluation, checkpoints, the row) live in ``training/``.

    from sparsity_search import TrainConfig, train
    row = train(TrainConfig(lambda_max=2.0))
    row["val_accuracy"], row["spikes_per_sample"]
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch

from .config import TrainConfig, with_user_code
from .data import DataSplits, load_data
from .devices import autocast
from .errors import DivergedError
from .loss import layer_weights, sparsity_loss, spike_term
from .schedules import lr_at, make_lambda_schedule
from .snn import SpikingNet, build_model, encode
from .training import (ARCHITECTURE_KEYS, CHECKPOINT, EVAL_BATCH, Report, epoch_metrics, evaluate_members,
                       hold_after, load_checkpoint, make_optimizer, result_row, save_checkpoint, setup)

log = logging.getLogger(__name__)

__all__ = ["ARCHITECTURE_KEYS", "CHECKPOINT", "EVAL_BATCH", "Report", "evaluate", "train"]


def evaluate(model: SpikingNet, data: DataSplits, split: str, cfg: TrainConfig,
             amp: torch.dtype | None) -> tuple[float, dict[str, float]]:
    """Accuracy and spike statistics (``spike_stats``) over a whole split; one host sync at the end."""
    accuracies, stats = evaluate_members(model, model, data, split, cfg, amp)
    return accuracies[0], stats[0]


def train(cfg: TrainConfig, report: Report | None = None, data: DataSplits | Any = None,
          model: Any = None) -> dict[str, Any]:
    """Train per ``cfg``; return the result row (metrics, epochs run, wall time and the resolved config).

    ``model``: the user's model factory (a callable or ``MODULE:FUNCTION``) instead of ``cfg.model``; ``data``:
    the user's dataset factory likewise, or loaded ``DataSplits`` (a caller that trains many configs on one
    dataset loads it once). Raises ``DivergedError`` when the loss becomes NaN/inf, so searches record the trial
    as failed with a reason.
    """
    cfg = with_user_code(cfg, model, data)
    data = data if isinstance(data, DataSplits) else None
    t0 = time.perf_counter()
    device, amp = setup(cfg)
    data = data if data is not None else load_data(cfg, device)
    data.check(cfg)
    torch.manual_seed(cfg.seed)  # after loading: the user's data code may draw from torch's global generator
    model = build_model(cfg, data.input_shape, data.num_classes).to(device)
    neurons = [layer.neurons for layer in model.spiking_layers]
    weights = layer_weights(neurons, cfg.layer_weights)
    optimizer = make_optimizer(cfg, model.parameters())
    n_train = data.size("train")
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    schedule = make_lambda_schedule(cfg, steps_per_epoch)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)  # data order and Poisson input

    start_epoch, history = 0, []
    state = load_checkpoint(cfg)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        start_epoch, history = state["epoch"], state["history"]
        log.info("resumed from %s at epoch %d", cfg.checkpoint_dir, start_epoch)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        lam = 0.0
        for step, (x, y) in enumerate(data.train_batches(cfg.batch_size, gen)):
            lam = schedule.lambda_at(epoch, step)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(cfg, epoch, step, steps_per_epoch)
            x_seq = encode(x, cfg.timesteps, cfg.encoding, gen)
            with autocast(device, amp):
                out = model(x_seq)
            s = spike_term(out.spikes, neurons, weights, len(y), cfg.timesteps)
            loss = sparsity_loss(out.logits, y, s, lam)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        train_loss = float(loss_sum) / steps_per_epoch  # the epoch's only host sync in training
        if not math.isfinite(train_loss):
            raise DivergedError(epoch + 1, steps_per_epoch, train_loss)
        val_accuracy, stats = evaluate(model, data, "val", cfg, amp)
        metrics = epoch_metrics(epoch + 1, train_loss, lam, optimizer.param_groups[0]["lr"], val_accuracy, stats,
                                time.perf_counter() - t0)
        history.append(metrics)
        save_checkpoint(cfg, model=model.state_dict(), optimizer=optimizer.state_dict(), generator=gen.get_state(),
                        epoch=epoch + 1, history=history)
        if report is not None:
            report(epoch + 1, metrics)
        hold_after(epoch + 1, [cfg.checkpoint_dir])

    test_accuracy, test_stats = evaluate(model, data, "test", cfg, amp)
    return result_row(history, test_accuracy, test_stats, start_epoch, time.perf_counter() - t0, cfg)
