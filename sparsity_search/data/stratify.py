"""Seeded, stratified splits of a labelled pool: the validation split, the test split of digits, ``train_subset``."""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from torch import Tensor

from ..config import TrainConfig
from ..errors import DataError

log = logging.getLogger(__name__)


class PoolSplit(NamedTuple):
    train: Tensor  # sorted indices into the pool
    val: Tensor | None  # sorted indices into the pool; None when the data brings its own validation split


def stratified_split(y: Tensor, n_held: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Split ``range(len(y))`` into sorted (kept, held) indices with exactly ``n_held`` held.

    Systematic sampling over a random order grouped by class: each class gives its proportional share to within
    one sample. Unlike scikit-learn's stratified split it works for classes with a single sample, so tiny files
    and small subsets split the same way as full datasets.
    """
    n = len(y)
    order = torch.randperm(n, generator=gen)
    order = order[torch.sort(y[order], stable=True).indices]  # grouped by class, random within each class
    pos = torch.arange(n)
    held = (pos + 1) * n_held // n > pos * n_held // n  # exactly n_held positions, evenly spaced
    return order[~held].sort().values, order[held].sort().values


def count(name: str, n: int, fraction: float, what: str) -> int:
    """``round(fraction * n)``, which must leave at least one sample on each side."""
    k = round(fraction * n)
    if not 0 < k < n:
        raise DataError(f"{name}: {n} samples are too few to split off {what}={fraction}")
    return k


def split_pool(name: str, y: Tensor, cfg: TrainConfig, gen: torch.Generator, split_val: bool) -> PoolSplit:
    """The training pool's split: ``val_fraction`` of it held out (when ``split_val``), then ``train_subset`` of
    the rest kept. Both stratified by class and drawn from ``gen`` (on the CPU, seeded by ``cfg.seed``)."""
    train, val = torch.arange(len(y)), None
    if split_val:
        train, val = stratified_split(y, count(name, len(y), cfg.val_fraction, "val_fraction"), gen)
    if cfg.train_subset >= len(train):
        log.warning("%s: train_subset=%d but only %d training samples; using all of them",
                    name, cfg.train_subset, len(train))
    elif cfg.train_subset > 0:
        train = train[stratified_split(y[train], cfg.train_subset, gen)[1]]
    return PoolSplit(train, val)
