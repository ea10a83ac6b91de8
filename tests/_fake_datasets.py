"""Tiny MNIST-style and CIFAR-10 files in the real on-disk formats, so loaders are tested without downloads.

idx (MNIST, Fashion-MNIST): a big-endian header, magic 0x0000_08_ND (uint8 data, ND dims: 2051 for images,
2049 for labels), then ND big-endian uint32 sizes, then the raw bytes. CIFAR-10 python version: each batch is a
pickled dict with b"data" (uint8 [N, 3072], R then G then B planes of 32x32) and b"labels" (list of int).
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_MAGIC = {1: 2049, 3: 2051}  # labels, images


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write a uint8 array as an idx file (``path`` + ``.gz`` when gzipped); returns the path written."""
    assert array.dtype == np.uint8
    payload = struct.pack(">I", IDX_MAGIC[array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def _images_and_labels(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), labels


def write_mnist(root: Path, folder: str = "MNIST", n_train: int = 100, n_test: int = 30, gz: bool = False,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``<root>/<folder>/raw/{train,t10k}-{images,labels}-idx*-ubyte[.gz]``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images, labels = _images_and_labels(rng, n, (28, 28))
        write_idx(raw / f"{split}-images-idx3-ubyte", images, gz)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels, gz)
        out[f"{split}_x"], out[f"{split}_y"] = images, labels
    return out


def write_cifar10(root: Path, n_per_batch: int = 20, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Write ``<root>/cifar-10-batches-py/`` (5 train batches, test_batch, batches.meta); returns the arrays."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else n_per_batch
        data, labels = _images_and_labels(rng, n, (3 * 32 * 32,))
        batch = {b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data,
                 b"filenames": [f"{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        xs.append(data)
        ys.append(labels)
    meta = {b"num_cases_per_batch": n_per_batch, b"num_vis": 3072,
            b"label_names": [c.encode() for c in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                   "horse", "ship", "truck")]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return {"train_x": np.concatenate(xs[:5]), "train_y": np.concatenate(ys[:5]), "test_x": xs[5], "test_y": ys[5]}


def write_npz(path: Path, n_train: int = 100, n_test: int = 30, n_val: int = 0, shape: tuple[int, ...] = (1, 6, 6),
              classes: int = 5, seed: int = 0, **replace: np.ndarray) -> dict[str, np.ndarray]:
    """Write ``x_train, y_train, x_test, y_test`` (and ``x_val, y_val`` when ``n_val``) with numpy.savez; arrays
    in ``replace`` are written instead (None leaves the array out). Inputs are float64 in [0, 1), so a loader that
    scaled or rounded them would be caught; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        if n:
            arrays[f"x_{split}"] = rng.random((n, *shape))
            arrays[f"y_{split}"] = rng.permutation(np.arange(n) % classes)
    arrays.update(replace)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


DATA_MODULE = '''
"""Dataset factories as a user writes them (map-style torch Datasets of (x, y) items), good and broken."""
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset


class Frames(Dataset):
    """Event frames [T, 2, 4, 4]: int16 counts (numpy, as tonic's ToFrame gives them), or analog floats."""

    def __init__(self, n, timesteps, seed, analog=False, classes=3):
        g = torch.Generator().manual_seed(seed)
        rate = torch.rand(n, 1, 2, 4, 4, generator=g).expand(n, timesteps, 2, 4, 4)
        self.x = rate * 0.7 if analog else torch.poisson(rate, generator=g).to(torch.int16)
        self.y = torch.arange(n) % classes

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i].numpy(), int(self.y[i])


def frames(n_train=90, n_test=30, n_val=0, timesteps=5, analog=False):
    sets = [Frames(n_train, timesteps, 0, analog), Frames(n_val, timesteps, 1, analog),
            Frames(n_test, timesteps, 2, analog)]
    return tuple(s for s in sets if len(s))


def images(n_train=120, n_test=40, n_val=0, classes=4):
    """Images [3, 8, 8] in [0, 1) as a TensorDataset, labels as 0-dim int64 tensors."""
    g = torch.Generator().manual_seed(0)
    def tensors(n):
        return TensorDataset(torch.rand(n, 3, 8, 8, generator=g), torch.arange(n) % classes)
    return tuple(tensors(n) for n in (n_train, n_val, n_test) if n)


class Broken(Dataset):
    """Item ``bad`` is wrong as ``how`` says; every other item is a fine (x [4], label) pair."""

    def __init__(self, n, bad, how):
        self.n, self.bad, self.how = n, bad, how

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i != self.bad:
            return torch.full((4,), float(i)), i % 2
        if self.how == "raises":
            raise FileNotFoundError("no such file: /data/sample_%d.bin" % i)
        if self.how == "shape":
            return torch.zeros(5), 0
        if self.how == "label":
            return torch.zeros(4), 0.5
        if self.how == "tensor_label":
            return torch.zeros(4), torch.tensor(0.5)
        if self.how == "negative":
            return torch.zeros(4), -1
        if self.how == "not_a_pair":
            return torch.zeros(4)
        return "text", 0


def broken(bad=7, how="shape", n=40):
    return Broken(n, bad, how), Broken(n // 2, -1, how)


class Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(4), 0


def iterable():
    return Stream(), Stream()


def lists():
    return [1, 2, 3], 5


def four():
    return images() + images()


def single():
    return images()[0]


def empty():
    return TensorDataset(torch.zeros(0, 4), torch.zeros(0)), images()[1]


def raising(root="/data/shd"):
    raise FileNotFoundError(f"no dataset under {root}")
'''


def write_data_module(folder: Path, name: str = "fake_user_data") -> Path:
    """Write the dataset factories of ``DATA_MODULE`` as ``<folder>/<name>.py``; returns the file. One name for
    every test: a process imports the module once, from the first folder (the files are equal)."""
    path = folder / f"{name}.py"
    path.write_text(DATA_MODULE)
    return path
