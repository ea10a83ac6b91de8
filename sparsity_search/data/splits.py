"""``DataSplits``: the train/val/test splits on one device, and the only way the training loops reach samples.

A split's labels always live on the device; its inputs are either held there as one tensor (indexing a batch
costs nothing) or streamed from their pool through a ``DataLoader`` (``streaming``). Both paths take a batch order
from the same ``iterate_batches`` draw and apply the same device-side steps (augmentation, flattening for the
built-in mlp), so a run gives the same numbers either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from ..config import TrainConfig
from ..errors import ConfigError
from .augment import crop_flip
from .pools import Pool
from .streaming import Streamer

SPLITS = ("train", "val", "test")


def iterate_batches(n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None,
                    device: torch.device | str) -> Iterator[Tensor]:
    """Yield index tensors on ``device`` covering ``range(n)`` once, ``batch_size`` at a time; the last may be short.

    ``generator`` (on ``device``) makes the shuffled order reproducible; ``None`` uses torch's global generator.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = torch.randperm(n, generator=generator, device=device) if shuffle else torch.arange(n, device=device)
    yield from order.split(batch_size)


@dataclass
class HeldPart:
    """One split held on the device: inputs ``x`` ``[N, ...]`` and labels ``y`` ``[N]``."""

    y: Tensor
    x: Tensor

    def inputs(self, order: Iterator[Tensor]) -> Iterator[tuple[Tensor, Tensor]]:
        """``(positions, inputs)`` per batch of positions in ``order`` (drawn lazily, at the first batch)."""
        for idx in order:
            yield idx, self.x[idx]


@dataclass
class StreamedPart:
    """One split streamed from ``pool`` at ``index`` (pool indices, on the CPU); labels ``y`` on the device."""

    y: Tensor
    pool: Pool
    index: Tensor
    streamer: Streamer

    def inputs(self, order: Iterator[Tensor]) -> Iterator[tuple[Tensor, Tensor]]:
        """``(positions, inputs)`` per batch of positions in ``order``, all drawn at the first batch."""
        chunks = list(order)
        positions = torch.cat(chunks).cpu() if chunks else torch.empty(0, dtype=torch.int64)  # one host sync
        batches = [b.tolist() for b in self.index[positions].split([len(c) for c in chunks])]
        yield from zip(chunks, self.streamer.inputs(self.pool, batches))


Part = HeldPart | StreamedPart


@dataclass
class DataSplits:
    """The three splits on one device and what models and accounting need to know of the data.

    ``input_shape`` is one timestep's input as the model gets it (without the data's time axis; flat for the
    built-in ``mlp``), ``timesteps`` the data's own T with ``encoding: none`` (else None), ``event_input``
    whether inputs are event counts (non-negative integers: the first layer's input is spikes, counted as
    accumulates), ``augment`` whether training batches are randomly cropped and flipped.
    """

    name: str
    parts: dict[str, Part]
    input_shape: tuple[int, ...]
    num_classes: int
    device: torch.device
    timesteps: int | None = None
    event_input: bool = False
    augment: bool = False
    flat: bool = False  # flatten each step's input (the built-in mlp)
    fill: Tensor | None = None  # what crop padding fills in, per channel; None: zeros

    @property
    def streamed(self) -> bool:
        """Whether any split's inputs stream through a DataLoader instead of being held on the device."""
        return any(isinstance(p, StreamedPart) for p in self.parts.values())

    def size(self, split: str) -> int:
        return len(self._part(split).y)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of ``(x, y)`` on the device in the order ``torch.randperm(n, generator=generator)`` draws,
        augmented (with further draws from ``generator``, batch by batch) when ``augment`` is on."""
        part = self._part("train")
        order = iterate_batches(len(part.y), batch_size, shuffle=True, generator=generator, device=self.device)
        for idx, x in part.inputs(order):
            if self.augment:
                x = crop_flip(x, generator, self.fill)
            yield self._shaped(x), part.y[idx]

    def eval_batches(self, split: str, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``split`` (``val`` or ``test``; ``train`` too) in its stored order as ``(x, y)`` on the device."""
        part = self._part(split)
        order = iterate_batches(len(part.y), batch_size, shuffle=False, generator=None, device=self.device)
        for idx, x in part.inputs(order):
            yield self._shaped(x), part.y[idx]

    def tensors(self, split: str) -> tuple[Tensor, Tensor]:
        """``split``'s inputs ``[N, ...]`` (as the model gets them, unaugmented) and labels, held on the device."""
        part = self._part(split)
        if not isinstance(part, HeldPart):
            raise ValueError(f"the {split} split of {self.name} streams; it is not held as one tensor")
        return self._shaped(part.x), part.y

    def check(self, cfg: TrainConfig) -> None:
        """Refuse ``cfg`` when it does not fit this data: a time axis without ``encoding: none`` or the other way
        round, or ``timesteps`` other than the data's own T."""
        if cfg.encoding == "none" and self.timesteps is None:
            raise ConfigError(f"none feeds samples that have a time axis; {self.name} was loaded without one",
                              field="encoding")
        if cfg.encoding != "none" and self.timesteps is not None:
            raise ConfigError(f"{self.name} was loaded with its time axis (encoding none), not for {cfg.encoding}",
                              field="encoding")
        if self.timesteps is not None and cfg.timesteps != self.timesteps:
            raise ConfigError(f"{cfg.timesteps}, but the samples of {self.name} have {self.timesteps} time steps "
                              f"(encoding none feeds them as they are); set timesteps: {self.timesteps}",
                              field="timesteps")

    def _part(self, split: str) -> Part:
        if split not in self.parts:
            raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
        return self.parts[split]

    def _shaped(self, x: Tensor) -> Tensor:
        return x.flatten(2 if self.timesteps is not None else 1) if self.flat else x
