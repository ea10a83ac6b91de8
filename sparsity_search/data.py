"""Datasets as tensors held on the training device, split into train/val/test, plus index batches over them.

Every dataset here fits in memory (CIFAR-10 is about 0.7 GB as float32), so it is converted once and kept on the
device: a batch is an index tensor into the held split, with no DataLoader, workers or per-sample collation.

    data = load_data(TrainConfig(dataset="digits", model="convnet"))
    data.train_x.shape            # [N, 1, 8, 8]; [N, 64] for model "mlp"
    for idx in iterate_batches(len(data.train_y), 64, shuffle=True, generator=gen, device=data.train_x.device):
        x, y = data.train_x[idx], data.train_y[idx]
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from .config import TrainConfig
from .errors import DataError

log = logging.getLogger(__name__)

NUM_CLASSES = 10  # all four datasets
# Per-channel statistics of the CIFAR-10 training set, after scaling pixels to [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_PIXEL_MAX = {"digits": 16.0, "mnist": 255.0, "fashion_mnist": 255.0, "cifar10": 255.0}
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR10_FOLDER = "cifar-10-batches-py"
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST = "test_batch"

# (train images, train labels, test images, test labels); images uint8 [N, C, H, W], labels int64 [N]
_Raw = tuple[Tensor, Tensor, Tensor, Tensor]


@dataclass
class DataSplits:
    """The three splits on one device: inputs float32 shaped ``[N, *input_shape]``, labels int64 ``[N]``."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    input_shape: tuple[int, ...]  # per sample: (C, H, W) for conv models, (C*H*W,) for "mlp"
    num_classes: int
    name: str


def load_data(cfg: TrainConfig, device: torch.device | str = "cpu") -> DataSplits:
    """Read ``cfg.dataset``, split it with ``cfg.seed`` and hold it on ``device``.

    Digits (bundled with scikit-learn) is split train/val/test here; the other datasets keep their official test
    split and take val from their training set. ``val_fraction`` is a fraction of that training pool, and
    ``train_subset`` then keeps that many of the remaining training samples. Every split is stratified by class.
    """
    gen = torch.Generator().manual_seed(cfg.seed)  # on the CPU, so a seed gives the same split on every device
    if cfg.dataset == "digits":
        x, y = _read_digits()
        pool, test = _stratified_split(y, _count(cfg.dataset, len(y), cfg.test_fraction, "test_fraction"), gen)
        pool_x, pool_y, test_x, test_y = x[pool], y[pool], x[test], y[test]
    else:
        pool_x, pool_y, test_x, test_y = _READERS[cfg.dataset](cfg.dataset, Path(cfg.data_dir), cfg.download)
    train, val = _stratified_split(pool_y, _count(cfg.dataset, len(pool_y), cfg.val_fraction, "val_fraction"), gen)
    if cfg.train_subset >= len(train):
        log.warning("%s: train_subset=%d but only %d training samples; using all of them",
                    cfg.dataset, cfg.train_subset, len(train))
    elif cfg.train_subset > 0:
        train = train[_stratified_split(pool_y[train], cfg.train_subset, gen)[1]]

    device = torch.device(device)
    flat = cfg.model == "mlp"

    def inputs(images: Tensor) -> Tensor:
        return _to_inputs(images, cfg.dataset, flat, device)

    train_x = inputs(pool_x[train])
    data = DataSplits(
        train_x=train_x, train_y=pool_y[train].to(device),
        val_x=inputs(pool_x[val]), val_y=pool_y[val].to(device),
        test_x=inputs(test_x), test_y=test_y.to(device),
        input_shape=tuple(train_x.shape[1:]), num_classes=NUM_CLASSES, name=cfg.dataset,
    )
    log.info("%s: %d train / %d val / %d test samples of shape %s on %s", data.name, len(data.train_y),
             len(data.val_y), len(data.test_y), data.input_shape, device)
    return data


def iterate_batches(n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None,
                    device: torch.device | str) -> Iterator[Tensor]:
    """Yield index tensors on ``device`` covering ``range(n)`` once, ``batch_size`` at a time; the last may be short.

    ``generator`` (on ``device``) makes the shuffled order reproducible; ``None`` uses torch's global generator.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = torch.randperm(n, generator=generator, device=device) if shuffle else torch.arange(n, device=device)
    yield from order.split(batch_size)


def _stratified_split(y: Tensor, n_held: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
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


def _count(name: str, n: int, fraction: float, what: str) -> int:
    """``round(fraction * n)``, which must leave at least one sample on each side."""
    k = round(fraction * n)
    if not 0 < k < n:
        raise DataError(f"{name}: {n} samples are too few to split off {what}={fraction}")
    return k


def _to_inputs(images: Tensor, dataset: str, flat: bool, device: torch.device) -> Tensor:
    """uint8 images to float32 on ``device``: scaled to [0, 1], CIFAR-10 then normalised per channel."""
    x = images.to(device).float().div_(_PIXEL_MAX[dataset])  # convert after the move: uint8 is 4x less to copy
    if dataset == "cifar10":
        mean = torch.tensor(CIFAR10_MEAN, device=device).view(-1, 1, 1)
        std = torch.tensor(CIFAR10_STD, device=device).view(-1, 1, 1)
        x = x.sub_(mean).div_(std)
    return x.flatten(1) if flat else x


def _read_digits() -> tuple[Tensor, Tensor]:
    """scikit-learn's bundled 8x8 digits (1797 samples, pixel values 0..16): offline and loads in milliseconds."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import and only digits needs it

    bunch = load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.uint8).view(-1, 1, 8, 8)
    return x, torch.as_tensor(bunch.target, dtype=torch.int64)


def _read_mnist_like(name: str, root: Path, download: bool) -> _Raw:
    """MNIST or Fashion-MNIST via torchvision from ``<root>/<MNIST|FashionMNIST>/raw`` (idx files, maybe gzipped).

    torchvision reads only the decompressed idx files, so ``.gz`` files without them are decompressed in place,
    the same layout torchvision's own download leaves.
    """
    from torchvision import datasets  # imported here: slow to import and only these datasets need it

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    raw = root / cls.__name__ / "raw"
    if not download:
        _require_idx_files(name, raw)
    try:
        train, test = (cls(str(root), train=t, download=download) for t in (True, False))
    except (OSError, RuntimeError, AssertionError, KeyError, TypeError, ValueError) as exc:
        verb = "download or read" if download else "read"
        raise DataError(f"{name}: cannot {verb} the idx files under {raw} ({_reason(exc)})") from None
    return (_check(name, raw, train.data.unsqueeze(1), train.targets)
            + _check(name, raw, test.data.unsqueeze(1), test.targets))


def _require_idx_files(name: str, raw: Path) -> None:
    from torchvision.datasets.utils import extract_archive

    for stem in _IDX_FILES:
        path, packed = raw / stem, raw / f"{stem}.gz"
        if not path.is_file() and packed.is_file():
            try:
                extract_archive(str(packed))
            except (OSError, EOFError) as exc:
                raise DataError(f"{name}: cannot decompress {packed} ({_reason(exc)})") from None
        if not path.is_file():
            raise DataError(f"{name}: no {stem}[.gz] under {raw}; pass --download to fetch the dataset "
                            "or put the idx files there")


def _read_cifar10(name: str, root: Path, download: bool) -> _Raw:
    """CIFAR-10's python batches from ``<root>/cifar-10-batches-py``; torchvision fetches them when asked.

    The batches are read here rather than by torchvision's ``CIFAR10``, which rejects any file whose md5 differs
    from the official one; files fetched with ``download`` are still verified by torchvision.
    """
    folder = root / _CIFAR10_FOLDER
    if download:
        from torchvision import datasets  # imported here: slow to import and only needed to download

        try:
            datasets.CIFAR10(str(root), train=True, download=True)
        except (OSError, RuntimeError) as exc:
            raise DataError(f"{name}: download into {root} failed ({_reason(exc)})") from None
    for file in (*_CIFAR10_TRAIN, _CIFAR10_TEST):
        if not (folder / file).is_file():
            raise DataError(f"{name}: no {file} under {folder}; pass --download to fetch the dataset "
                            f"or extract cifar-10-python.tar.gz into {root}")
    batches = [_read_cifar10_batch(name, folder / file) for file in _CIFAR10_TRAIN]
    train_x, train_y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    return (train_x, train_y) + _read_cifar10_batch(name, folder / _CIFAR10_TEST)


def _read_cifar10_batch(name: str, path: Path) -> tuple[Tensor, Tensor]:
    """One pickled batch: a dict with ``data`` (uint8 ``[N, 3072]``, the R, G, B planes in turn) and ``labels``."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")  # pickled by Python 2, so its keys load as bytes
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data, labels = np.asarray(entry["data"]), entry["labels"]
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot read {path} ({_reason(exc)})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{name}: {path} holds {data.dtype} data of shape {data.shape}, not uint8 [N, 3072]")
    x = torch.from_numpy(data).reshape(-1, 3, 32, 32)
    return _check(name, path, x, torch.as_tensor(labels, dtype=torch.int64))


def _check(name: str, where: Path, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Fail early on files that parse but would train on garbage: unequal counts or labels out of range."""
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} images but {len(y)} labels in {where}")
    if len(y) and not 0 <= int(y.min()) <= int(y.max()) < NUM_CLASSES:
        raise DataError(f"{name}: labels outside 0..{NUM_CLASSES - 1} in {where}")
    return x, y


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


_READERS: dict[str, Callable[[str, Path, bool], _Raw]] = {
    "mnist": _read_mnist_like,
    "fashion_mnist": _read_mnist_like,
    "cifar10": _read_cifar10,
}
