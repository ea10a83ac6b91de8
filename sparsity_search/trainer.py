"""Train one spiking network on ``cross_entropy + lambda(t) * spikes`` and return one result row.

Read top to bottom: setup, evaluation, checkpointing, the loop. Knows nothing of Optuna or Ray; a search
backend passes ``report(epoch, metrics)``, called after every epoch, and may raise from it to stop the run.

    from sparsity_search import TrainConfig, train
    row = train(TrainConfig(lambda_max=2.0))
    row["val_accuracy"], row["spikes_per_sample"]
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch

from .config import TrainConfig
from .data import DataSplits, iterate_batches, load_data
from .devices import autocast, resolve_device, resolve_precision, tune_cpu_allocator
from .errors import ConfigError, DivergedError
from .loss import layer_weights, sparsity_loss, spike_term
from .schedules import lr_factor, make_lambda_schedule
from .snn import build_model, encode, spike_stats

log = logging.getLogger(__name__)

Report = Callable[[int, dict[str, Any]], None]
CHECKPOINT = "checkpoint.pt"
EVAL_BATCH = 1024
# Changing these between a checkpoint and its resume would silently train a different network.
ARCHITECTURE_KEYS = ("dataset", "model", "hidden", "channels", "neuron", "timesteps", "encoding", "seed", "epochs")


@torch.inference_mode()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
             amp: torch.dtype | None) -> tuple[float, dict[str, float]]:
    """Accuracy and spike statistics (``spike_stats``) over a whole split; one host sync at the end."""
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(cfg.seed + 1)  # same Poisson draws at every evaluation
    correct = torch.zeros((), device=x.device)
    totals = torch.zeros(len(model.spiking_layers), device=x.device)
    input_spikes = torch.zeros((), device=x.device)
    for idx in iterate_batches(len(y), EVAL_BATCH, shuffle=False, generator=None, device=x.device):
        x_seq = encode(x[idx], cfg.timesteps, cfg.encoding, gen)
        with autocast(x.device, amp):
            out = model(x_seq)
        correct += (out.logits.argmax(1) == y[idx]).sum()
        totals += torch.stack([s.float() for s in out.spikes])
        if cfg.encoding == "poisson":
            input_spikes += x_seq.sum()
    n = len(y)
    stats = spike_stats(totals.tolist(), n, model, cfg.timesteps, cfg.encoding, input_spikes=float(input_spikes))
    return float(correct) / n, stats


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash while saving leaves the previous epoch's checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(path: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    if not (cfg.resume and path.exists()):
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    saved = state["config"]
    for key in ARCHITECTURE_KEYS:
        if saved.get(key) != getattr(cfg, key):
            raise ConfigError(f"differs from the checkpoint in {path} ({saved.get(key)!r})", field=key)
    return state


def train(cfg: TrainConfig, report: Report | None = None, data: DataSplits | None = None) -> dict[str, Any]:
    """Train per ``cfg``; return the result row (metrics, epochs run, wall time and the resolved config).

    ``data`` lets a caller that trains many configs on one dataset load it once.
    Raises ``DivergedError`` when the loss becomes NaN/inf, so searches record the trial as failed with a reason.
    """
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    amp = resolve_precision(cfg.precision, device)
    if device.type == "cpu":
        tune_cpu_allocator()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    data = data if data is not None else load_data(cfg, device)
    model = build_model(cfg, data.input_shape, data.num_classes).to(device)
    neurons = [layer.neurons for layer in model.spiking_layers]
    weights = layer_weights(neurons, cfg.layer_weights)
    opt_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
    extra = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    optimizer = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)
    n_train = len(data.train_y)
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    schedule = make_lambda_schedule(cfg, steps_per_epoch)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)  # data order and Poisson input

    start_epoch, history = 0, []
    ckpt_path = Path(cfg.checkpoint_dir) / CHECKPOINT if cfg.checkpoint_dir else None
    state = _load_checkpoint(ckpt_path, cfg) if ckpt_path else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        start_epoch, history = state["epoch"], state["history"]
        log.info("resumed from %s at epoch %d", ckpt_path, start_epoch)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        lam = 0.0
        for step, idx in enumerate(iterate_batches(n_train, cfg.batch_size, shuffle=True, generator=gen,
                                                   device=device)):
            lam = schedule.lambda_at(epoch, step)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(cfg, epoch, step, steps_per_epoch)
            x_seq = encode(data.train_x[idx], cfg.timesteps, cfg.encoding, gen)
            with autocast(device, amp):
                out = model(x_seq)
            s = spike_term(out.spikes, neurons, weights, len(idx), cfg.timesteps)
            loss = sparsity_loss(out.logits, data.train_y[idx], s, lam)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
        train_loss = float(loss_sum) / steps_per_epoch  # the epoch's only host sync in training
        if not math.isfinite(train_loss):
            raise DivergedError(epoch + 1, steps_per_epoch, train_loss)
        # Validation metrics are the search objectives: spike statistics are those of the validation split.
        val_accuracy, stats = evaluate(model, data.val_x, data.val_y, cfg, amp)
        metrics = {"epoch": epoch + 1, "train_loss": train_loss, "lambda": lam,
                   "lr": optimizer.param_groups[0]["lr"], "val_accuracy": val_accuracy, **stats,
                   "wall_time_s": time.perf_counter() - t0}
        history.append(metrics)
        if ckpt_path:
            ckpt_path.parent.mkdir(parents=True, exist_ok=True)
            _save_checkpoint(ckpt_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                         "generator": gen.get_state(), "epoch": epoch + 1, "history": history,
                                         "config": cfg.to_dict()})
        if report is not None:
            report(epoch + 1, metrics)

    row = {k: v for k, v in history[-1].items() if k not in ("epoch", "wall_time_s")}
    test_accuracy, test_stats = evaluate(model, data.test_x, data.test_y, cfg, amp)
    row.update(test_accuracy=test_accuracy, test_spikes_per_sample=test_stats["spikes_per_sample"],
               test_energy_uj=test_stats["energy_uj"], epochs=len(history), resumed_from_epoch=start_epoch,
               wall_time_s=time.perf_counter() - t0, config=cfg.to_dict())
    return row
