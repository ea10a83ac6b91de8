"""The four built-in datasets, read from their official files: digits (bundled with scikit-learn), MNIST and
Fashion-MNIST (idx files) and CIFAR-10 (python batches), as uint8 images with pixels scaled on the device.

Digits is split train/val/test here; the others keep their official test split and take val from their training
set (``stratify.split_pool``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..config import TrainConfig
from ..errors import DataError
from .pools import ArrayPool, Source, reason
from .stratify import count, stratified_split

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


def builtin_source(cfg: TrainConfig, gen: torch.Generator) -> Source:
    """``cfg.dataset``'s training pool and test set; digits' test split is drawn from ``gen`` first."""
    name = str(cfg.dataset)
    if name == "digits":
        x, y = _read_digits()
        pool, test = stratified_split(y, count(name, len(y), cfg.test_fraction, "test_fraction"), gen)
        pool_x, pool_y, test_x, test_y = x[pool], y[pool], x[test], y[test]
    else:
        pool_x, pool_y, test_x, test_y = _READERS[name](name, Path(cfg.data_dir), cfg.download)
    scale = _Scale(name)
    return Source(name, ArrayPool(pool_x, pool_y, scale), None, ArrayPool(test_x, test_y, scale))


class _Scale:
    """uint8 images to float32: scaled to [0, 1], CIFAR-10 then normalised per channel."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset

    def __call__(self, images: Tensor) -> Tensor:
        x = images.float().div_(_PIXEL_MAX[self.dataset])
        if self.dataset == "cifar10":
            mean = torch.tensor(CIFAR10_MEAN, device=x.device).view(-1, 1, 1)
            std = torch.tensor(CIFAR10_STD, device=x.device).view(-1, 1, 1)
            x = x.sub_(mean).div_(std)
        return x


def cifar10_black(device: torch.device) -> Tensor:
    """A black pixel of CIFAR-10 after normalisation, per channel ``[C, 1, 1]``: what crop padding fills in."""
    return -torch.tensor(CIFAR10_MEAN, device=device).div(torch.tensor(CIFAR10_STD, device=device)).view(-1, 1, 1)


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
        raise DataError(f"{name}: cannot {verb} the idx files under {raw} ({reason(exc)})") from None
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
                raise DataError(f"{name}: cannot decompress {packed} ({reason(exc)})") from None
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
            raise DataError(f"{name}: download into {root} failed ({reason(exc)})") from None
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
        raise DataError(f"{name}: cannot read {path} ({reason(exc)})") from None
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


_READERS: dict[str, Callable[[str, Path, bool], _Raw]] = {
    "mnist": _read_mnist_like,
    "fashion_mnist": _read_mnist_like,
    "cifar10": _read_cifar10,
}
