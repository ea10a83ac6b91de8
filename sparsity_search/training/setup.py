"""What every training run does before its first batch: pick the device and precision, tune the CPU allocator,
set the thread count; and the optimizer a config asks for."""

from __future__ import annotations

from typing import Iterable, NamedTuple

import torch

from ..config import TrainConfig
from ..devices import resolve_device, resolve_precision, tune_cpu_allocator


class Runtime(NamedTuple):
    device: torch.device
    amp: torch.dtype | None  # the autocast dtype, or None for plain fp32


def setup(cfg: TrainConfig) -> Runtime:
    """Resolve ``cfg.device`` and ``cfg.precision`` and prepare the process for training on them."""
    device = resolve_device(cfg.device)
    amp = resolve_precision(cfg.precision, device)
    if device.type == "cpu":
        tune_cpu_allocator()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return Runtime(device, amp)


def make_optimizer(cfg: TrainConfig, params: Iterable[torch.Tensor], lr: float | None = None) -> torch.optim.Optimizer:
    """The torch optimizer ``cfg`` names (Adam, or SGD with ``cfg.momentum``); its state_dict is the checkpoint
    format of every run, population members included."""
    extra = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    opt_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
    return opt_cls(params, lr=cfg.lr if lr is None else lr, weight_decay=cfg.weight_decay, **extra)
