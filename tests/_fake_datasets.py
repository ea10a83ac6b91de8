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
