"""``load_data``: read the dataset a config names, split it with the config's seed and place it on the device.

    data = load_data(TrainConfig(dataset="digits", model="convnet"))
    data.input_shape                      # (1, 8, 8); (64,) for model "mlp"
    for x, y in data.train_batches(64, torch.Generator().manual_seed(0)):
        ...

The built-in datasets, an ``.npz`` file and a dataset factory each give a ``pools.Source``; from there every kind
takes the same path: the validation split (unless the data brings one) and ``train_subset``, stratified and seeded;
then the inputs are held on the device when they fit (``placement``) or streamed (``streaming``).
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from ..config import TrainConfig
from ..errors import ConfigError
from .builtin import NUM_CLASSES, builtin_source, cifar10_black
from .factory import factory_source
from .npz import npz_sample_shape, npz_source
from .placement import hold_on_device
from .pools import ArrayPool, DatasetPool, Pool, Source, are_event_counts, input_bytes
from .splits import DataSplits, HeldPart, Part, StreamedPart
from .streaming import Streamer
from .stratify import split_pool

log = logging.getLogger(__name__)

# The TrainConfig fields load_data reads: configs equal in them load the same DataSplits.
LOAD_FIELDS = ("dataset", "data_dir", "download", "val_fraction", "test_fraction", "train_subset", "seed", "model",
               "encoding", "augment", "stream", "stream_workers")
READ_BATCH = 256  # items per fetch when a dataset factory's sets are first read


def load_data(cfg: TrainConfig, device: torch.device | str = "cpu") -> DataSplits:
    """Read ``cfg.dataset``, split it with ``cfg.seed`` and place it on ``device`` (held, or streamed).

    Digits (bundled with scikit-learn) is split train/val/test here; the other datasets keep their test split and
    take val from their training set unless they bring one (``x_val``, a factory's three sets). ``val_fraction`` is
    a fraction of that training pool, and ``train_subset`` then keeps that many of the remaining training samples.
    Every split is stratified by class.
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(cfg.seed)  # on the CPU, so a seed gives the same split on every device
    user = cfg.user_dataset
    if user is None:
        source = builtin_source(cfg, gen)
    else:
        source = npz_source(user.path) if user.path else factory_source(user)
    timesteps = _time_axis(cfg, source.name, source.pool.sample_shape, builtin=user is None)
    step_shape = source.pool.sample_shape[timesteps is not None:]
    augment = _augment(cfg, source.name, source.pool.sample_shape, step_shape, timesteps)
    pools = [p for p in (source.pool, source.val, source.test) if p is not None]
    hold = hold_on_device(input_bytes(pools), device, cfg.stream)
    reading = any(isinstance(p, DatasetPool) for p in pools)  # a factory's sets: read once for their labels
    streamer = Streamer(pools, device, cfg.stream_workers if reading else 0)  # starts no process until it reads
    if reading:
        source = _read(source, streamer, hold)

    split = split_pool(source.name, source.pool.labels, cfg, gen, split_val=source.val is None)
    streaming = None if hold else streamer
    parts = {"train": _part(source.pool, split.train, device, streaming),
             "val": _part(source.pool if source.val is None else source.val, split.val, device, streaming),
             "test": _part(source.test, None, device, streaming)}
    flat = cfg.model == "mlp"
    data = DataSplits(
        name=source.name, parts=parts, input_shape=(math.prod(step_shape),) if flat else step_shape,
        num_classes=NUM_CLASSES if user is None else _num_classes(source), device=device, timesteps=timesteps,
        event_input=source.events, augment=augment, flat=flat,
        fill=cifar10_black(device) if cfg.dataset == "cifar10" else None)
    log.info("%s: %d train / %d val / %d test samples of shape %s on %s (%s)", data.name, data.size("train"),
             data.size("val"), data.size("test"), source.pool.sample_shape, device,
             "streamed" if data.streamed else "held")
    return data


def data_timesteps(cfg: TrainConfig) -> int | None:
    """The data's own T with ``encoding: none`` (None otherwise), without loading it: an ``.npz`` file's header, or
    item 0 of a factory's training set. Raises what ``load_data`` would when the data has no time axis."""
    user = cfg.user_dataset
    if cfg.encoding != "none":
        return None
    if user is None:
        return _time_axis(cfg, str(cfg.dataset), (), builtin=True)
    shape = npz_sample_shape(user.path) if user.path else factory_source(user).pool.sample_shape
    return _time_axis(cfg, user.name, shape, builtin=False)


def _time_axis(cfg: TrainConfig, name: str, sample_shape: tuple[int, ...], builtin: bool) -> int | None:
    """The data's T when ``cfg.encoding`` is none (samples ``[T, ...]``), else None."""
    if cfg.encoding != "none":
        return None
    if builtin:
        raise ConfigError(f"none feeds samples that already have a time axis [T, ...]; the built-in dataset {name} "
                          "has none (use direct or poisson)", field="encoding")
    if len(sample_shape) < 2:
        raise ConfigError(f"none feeds samples shaped [T, ...] step by step; the samples of {name} are shaped "
                          f"{sample_shape}, with nothing left per step (use direct or poisson)", field="encoding")
    return sample_shape[0]


def _augment(cfg: TrainConfig, name: str, sample_shape: tuple[int, ...], step_shape: tuple[int, ...],
             timesteps: int | None) -> bool:
    """Whether training batches are cropped and flipped: ``cfg.augment``, by default for CIFAR-10 only."""
    on = cfg.augment if cfg.augment is not None else cfg.dataset == "cifar10"
    if on and (timesteps is not None or len(step_shape) != 3):
        raise ConfigError(f"random crop and flip need image samples [C, H, W]; the samples of {name} are shaped "
                          f"{sample_shape}{' with a time axis' if timesteps is not None else ''}", field="augment")
    return on


def _read(source: Source, streamer: Streamer, hold: bool) -> Source:
    """Read every item of a factory's sets once: labels and the event check always, and the inputs into host
    memory when they are to be held (each set then becomes an ``ArrayPool``, placed like an ``.npz`` file's)."""
    events, pools = True, []
    for pool in (source.pool, source.val, source.test):
        if not isinstance(pool, DatasetPool):
            pools.append(pool)
            continue
        n = len(pool)
        x = torch.empty((n, *pool.sample_shape), dtype=torch.float32) if hold else None
        labels = torch.empty(n, dtype=torch.int64)
        batches = [list(range(i, min(i + READ_BATCH, n))) for i in range(0, n, READ_BATCH)]
        for batch, (xb, yb) in zip(batches, streamer.batches(pool, batches)):
            labels[batch[0]:batch[-1] + 1] = yb
            events = events and are_event_counts(xb)
            if x is not None:
                x[batch[0]:batch[-1] + 1] = xb
        pool.labels = labels
        pools.append(ArrayPool(x, labels) if x is not None else pool)
    return Source(source.name, pools[0], pools[1], pools[2], events)


def _part(pool: Pool, index: Tensor | None, device: torch.device, streamer: Streamer | None) -> Part:
    """One split: ``pool``'s samples at ``index`` (all of them when None), streamed by ``streamer`` or, when it is
    None, held on the device."""
    index = torch.arange(len(pool)) if index is None else index
    y = pool.labels[index].to(device)
    if streamer is not None:
        return StreamedPart(y, pool, index, streamer)
    assert isinstance(pool, ArrayPool)  # a factory's sets to be held were read into arrays (``_read``)
    return HeldPart(y, pool.to_inputs(pool.x[index.to(pool.x.device)].to(device)))


def _num_classes(source: Source) -> int:
    """One more than the largest label of any set: classes count from 0."""
    return 1 + max(int(p.labels.max()) for p in (source.pool, source.val, source.test) if p is not None)
