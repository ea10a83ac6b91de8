"""What every training run does before its first batch: pick the device and precision, tune the CPU allocator,
set the thread count; and the optimizer a config asks for."""

from __future__ import annotations

from typing import Iterable, NamedTuple

import torch

from ..config import TrainConfig
from ..devices import resolve_device, resolve_precision, tune_cpu_allocator


PROCESS_THREADS = torch.get_num_threads()  # torch's own count, before any run set one (``process_state``)


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
        set_threads(cfg.threads)
    return Runtime(device, amp)


def get_threads() -> int:
    return torch.get_num_threads()


def set_threads(n: int) -> None:
    """torch's intra-op thread count, process-wide (``process_state.command_scope`` puts it back after a command)."""
    if n != torch.get_num_threads():
        torch.set_num_threads(n)


def make_optimizer(cfg: TrainConfig, params: Iterable[torch.Tensor], lr: float | None = None) -> torch.optim.Optimizer:
    """The torch optimizer ``cfg`` names (Adam, or SGD with ``cfg.momentum``); its state_dict is the checkpoint
    format of every run, population members included."""
    extra = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    opt_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
    return opt_cls(params, lr=cfg.lr if lr is None else lr, weight_decay=cfg.weight_decay, **extra)
