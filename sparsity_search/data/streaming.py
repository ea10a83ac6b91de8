"""Batches fetched from pools through one ``torch.utils.data.DataLoader``: workers, pinned memory, any order.

The order is the caller's: before each pass the caller hands the exact batches (lists of pool indices) to a
batch sampler that the loader iterates in the main process, so a streamed epoch visits the samples in the order
``torch.randperm`` drew from the training generator, as the held path does. One loader serves every pool (the
training pool, a validation or test set). Its workers live for one pass and are stopped as soon as the pass ends
or is abandoned (an error, a pruned trial): a pass over data too large for the device takes far longer than
starting them, and no process outlives a failed run.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Sampler

from ..errors import DataError
from .pools import Batch, Failure, Pool


class _Batches(Sampler):
    """The batches of the coming pass, ``(pool number, indices)`` each; set before every pass."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[int]]] = []

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _Pools:
    """The loader's dataset: a batch ``(pool number, indices)`` is fetched from that pool in one call."""

    def __init__(self, pools: Sequence[Pool]) -> None:
        self.pools = list(pools)

    def __getitems__(self, batch: tuple[int, list[int]]) -> Batch | Failure:
        number, indices = batch
        return self.pools[number].__getitems__(indices)


def _as_is(batch: Batch | Failure) -> Batch | Failure:
    return batch  # ``__getitems__`` returns whole batches: nothing to collate


class Streamer:
    """Fetches batches of ``pools`` in a given order, pinned when the device is a GPU, with ``workers`` processes
    (0: in this process)."""

    def __init__(self, pools: Sequence[Pool], device: torch.device, workers: int) -> None:
        self.pools = list(pools)
        self.device = device
        self._sampler = _Batches()
        # its own generator: a DataLoader draws its workers' base seed from torch's global one otherwise, so
        # reading data would change how the next network is initialised
        self._loader = DataLoader(_Pools(pools), batch_sampler=self._sampler, collate_fn=_as_is,  # type: ignore
                                  num_workers=workers, pin_memory=device.type == "cuda", generator=torch.Generator())

    def batches(self, pool: Pool, batches: Sequence[list[int]]) -> Iterator[Batch]:
        """``pool``'s samples at each index list of ``batches`` in turn, as stored (on the host)."""
        number = self.pools.index(pool)
        self._sampler.batches = [(number, b) for b in batches]
        it = iter(self._loader)
        try:
            for out in it:
                if isinstance(out, Failure):
                    raise DataError(out.message)
                yield out
        finally:
            del it  # the only reference: its workers stop now, not whenever the garbage collector gets to them

    def inputs(self, pool: Pool, batches: Sequence[list[int]]) -> Iterator[torch.Tensor]:
        """``batches``' inputs on the device, as the model sees them (``pool.to_inputs``)."""
        for x, _ in self.batches(pool, batches):
            yield pool.to_inputs(x.to(self.device, non_blocking=True))
