"""The user's arrays in one ``.npz`` file: ``x_train, y_train, x_test, y_test`` and optionally ``x_val, y_val``.

The arrays are used as given: no scaling or normalisation (that is the user's choice); inputs become float32 on
the device and labels int64. ``x_val, y_val``, when present, are the validation split exactly. Every problem is a
one-line ``DataError`` naming the file and the array.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from numpy.lib import format as npy_format

from ..errors import DataError
from .pools import ArrayPool, Source, are_event_counts, reason

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
SPLITS = ("train", "val", "test")


def npz_source(path: str) -> Source:
    """The file's splits as pools of host tensors (inputs in their stored dtype, converted on the device)."""
    arrays = _read(path)
    shapes = {f"x_{s}": arrays[f"x_{s}"].shape[1:] for s in SPLITS if f"x_{s}" in arrays}
    for key, shape in shapes.items():
        if shape != shapes["x_train"]:
            raise DataError(f"{path}: {key} samples are shaped {shape}, x_train's {shapes['x_train']}")
    pools = {s: ArrayPool(torch.from_numpy(arrays[f"x_{s}"]), torch.from_numpy(arrays[f"y_{s}"]).long())
             for s in SPLITS if f"x_{s}" in arrays}
    events = all(are_event_counts(p.x) for p in pools.values())
    return Source(Path(path).name, pools["train"], pools.get("val"), pools["test"], events)


def npz_sample_shape(path: str) -> tuple[int, ...]:
    """The shape of one sample of ``x_train``, from the array's header when numpy's public readers know its
    version (cheap for any size), else from the array."""
    _require_npz(path)
    try:
        with zipfile.ZipFile(path) as archive, archive.open("x_train.npy") as f:
            reader = _HEADER_READERS.get(npy_format.read_magic(f))
            if reader is not None:
                return tuple(reader(f)[0][1:])
    except KeyError:
        pass  # no x_train: ``_read`` names it
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: array x_train cannot be read ({reason(exc)})") from None
    return tuple(_read(path)["x_train"].shape[1:])


_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def _require_npz(path: str) -> None:
    if not Path(path).is_file():
        raise DataError(f"{path}: no such file (dataset.path)")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            npy = f.read(len(npy_format.MAGIC_PREFIX)) == npy_format.MAGIC_PREFIX
        raise DataError(f"{path}: " + ("one .npy array, not an .npz file of named arrays" if npy else
                                       "not an .npz file") + " (numpy.savez writes one)")


def _read(path: str) -> dict[str, np.ndarray]:
    """Every array the file holds, checked: present, numeric, labels integer >= 0 and one per sample."""
    _require_npz(path)
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                    raise DataError(f"{path}: array {key} cannot be read ({reason(exc)})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not an .npz file ({reason(exc)})") from None
    expected = f"expected {', '.join(REQUIRED)} (and optionally x_val, y_val)"
    for key in REQUIRED + (("y_val",) if "x_val" in arrays else ("x_val",) if "y_val" in arrays else ()):
        if key not in arrays:
            raise DataError(f"{path}: no array {key} (it has {', '.join(arrays) or 'none'}); {expected}")
    for split in SPLITS:
        if f"x_{split}" in arrays:
            _check_split(path, split, arrays[f"x_{split}"], arrays[f"y_{split}"])
    return arrays


def _check_split(path: str, split: str, x: np.ndarray, y: np.ndarray) -> None:
    if x.dtype.kind not in "biuf" or x.ndim < 2:
        raise DataError(f"{path}: x_{split} is {x.dtype} shaped {x.shape}; expected numbers shaped [N, ...]")
    if not len(x):
        raise DataError(f"{path}: x_{split} holds no samples")
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise DataError(f"{path}: y_{split} is {y.dtype} shaped {y.shape}; labels must be integers shaped [N]")
    if len(x) != len(y):
        raise DataError(f"{path}: x_{split} has {len(x)} samples but y_{split} {len(y)} labels")
    if y.min() < 0:
        raise DataError(f"{path}: y_{split} has label {y.min()}; labels must be 0..num_classes-1")
