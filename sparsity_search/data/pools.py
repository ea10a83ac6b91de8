"""Labelled samples before they reach the device: arrays held in memory, or a map-style dataset read by item.

A pool is what a data source gives for one of its parts (a training pool, a validation or test set). Its labels
are known up front (int64 on the CPU); its inputs are fetched by index, a batch at a time, through
``__getitems__``, which ``torch.utils.data.DataLoader`` calls in its workers (``streaming``). ``to_inputs`` then
turns a fetched batch, moved to the device, into the float32 inputs the model sees.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]  # (inputs as stored, labels int64)


class Failure(NamedTuple):
    """An error met while fetching, returned rather than raised: a DataLoader worker re-raises exceptions with
    its traceback in the message, and the user gets one line instead (``streaming.Streamer`` raises it)."""

    message: str


class ArrayPool:
    """Inputs held as one tensor ``x`` (``[N, *sample_shape]``, any numeric dtype, on the host or the device).

    ``transform`` maps a batch of ``x`` on the device to float32 inputs: converting after the move copies the
    stored dtype (uint8 pixels: a quarter of float32), and the same elementwise map of a batch or of all of
    ``x`` gives the same numbers.
    """

    def __init__(self, x: Tensor, labels: Tensor, transform: Callable[[Tensor], Tensor] = Tensor.float) -> None:
        self.x, self.labels, self.transform = x, labels, transform
        self.sample_shape: tuple[int, ...] = tuple(x.shape[1:])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.int64)
        return self.x[index.to(self.x.device)], self.labels[index]

    def to_inputs(self, x: Tensor) -> Tensor:
        return self.transform(x)


class DatasetPool:
    """A map-style dataset of ``(x, y)`` items (the user's), each checked as it is read: ``x`` a tensor or numpy
    array shaped ``sample_shape``, ``y`` an integer label >= 0. Its labels are set by the first read
    (``load.read_pool``)."""

    def __init__(self, dataset: Any, where: str, sample_shape: tuple[int, ...]) -> None:
        self.dataset, self.where, self.sample_shape = dataset, where, sample_shape
        self.labels = torch.empty(0, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: Sequence[int]) -> Batch | Failure:
        xs, ys = [], []
        for i in indices:
            try:
                item = self.dataset[i]
            except Exception as exc:  # noqa: BLE001 - the user's dataset raised: one line, with its message
                return Failure(f"{self.where} item {i} raised {type(exc).__name__}: {reason(exc)}")
            try:
                x, y = item_pair(item, self.sample_shape)
            except ValueError as exc:
                return Failure(f"{self.where} item {i}: {exc}")
            xs.append(x)
            ys.append(y)
        return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)

    def to_inputs(self, x: Tensor) -> Tensor:
        return x  # items are float32 already (``item_pair``)


Pool = ArrayPool | DatasetPool


def item_pair(item: Any, sample_shape: tuple[int, ...] | None) -> tuple[Tensor, int]:
    """``(x float32, label)`` from a dataset item; ValueError saying what is wrong with it otherwise."""
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise ValueError(f"the item is {describe(item)}; items must be (x, y) pairs")
    x, y = item
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise ValueError(f"x is a numpy array of dtype {x.dtype}; expected numbers")
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, Tensor):
        raise ValueError(f"x is {describe(x)}; expected a tensor or a numpy array")
    if x.is_complex():
        raise ValueError(f"x has dtype {x.dtype}; expected real numbers")
    if sample_shape is not None and tuple(x.shape) != sample_shape:
        raise ValueError(f"x is shaped {tuple(x.shape)}, item 0 of the training set {sample_shape}")
    return x.float(), label_value(y)


def label_value(y: Any) -> int:
    """An integer label >= 0 from a Python, numpy or one-element torch integer; ValueError otherwise."""
    if isinstance(y, Tensor) and y.numel() == 1 and not y.is_floating_point() and y.dtype != torch.bool:
        y = y.item()
    elif isinstance(y, np.integer):
        y = int(y)
    if not isinstance(y, int) or isinstance(y, bool):
        raise ValueError(f"label {y!r} is not an integer (an int, a numpy or a one-element torch integer)")
    if y < 0:
        raise ValueError(f"label {y} is negative; labels must be 0..num_classes-1")
    return y


def input_bytes(pools: Sequence[Pool]) -> int:
    """The bytes the pools' inputs take as float32 on a device."""
    return sum(len(p) * math.prod(p.sample_shape) * 4 for p in pools)


def are_event_counts(x: Tensor) -> bool:
    """Whether every value is a non-negative integer: event counts (spikes), not analog intensities."""
    return bool(((x >= 0) & (x == x.round())).all()) if x.numel() else True


def describe(value: Any) -> str:
    """What a value the user's code returned is, for an error message: ``a tuple of 2 (list, list)``."""
    name = type(value).__name__
    article = "an" if name[0].lower() in "aeiou" else "a"
    if isinstance(value, (Tensor, np.ndarray)):
        return f"{article} {name} shaped {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"{article} {name} of {len(value)} ({', '.join(type(v).__name__ for v in value[:4])})"
    return f"{article} {name}"


def reason(exc: BaseException) -> str:
    """The first line of an exception's message (its class name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class Source(NamedTuple):
    """What a dataset gives before the split: a training pool, its validation set when it brings one, a test
    set, and whether its inputs are event counts (``are_event_counts``)."""

    name: str
    pool: Pool
    val: Pool | None
    test: Pool
    events: bool = False
