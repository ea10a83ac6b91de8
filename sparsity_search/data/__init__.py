"""Datasets as splits on the training device, reached only through ``DataSplits``' batches.

The built-in datasets (digits, MNIST, Fashion-MNIST, CIFAR-10), the user's ``.npz`` file and the user's dataset
factory all load into one ``DataSplits``; data that fits is held on the device (a batch is an index into a held
tensor, with no DataLoader or per-sample collation), larger data streams through a ``DataLoader`` in the same
order, to the same numbers.

    data = load_data(TrainConfig(dataset="digits", model="convnet"))
    gen = torch.Generator().manual_seed(0)
    for x, y in data.train_batches(64, gen):       # x [64, 1, 8, 8] on the device, y [64]
        ...
    for x, y in data.eval_batches("val", 1024):
        ...

Modules: ``builtin`` (the four datasets' files), ``npz``, ``factory`` (the user's data), ``pools`` (samples before
the device), ``stratify`` (seeded stratified splits), ``placement`` (held or streamed), ``streaming``,
``augment`` (crop and flip), ``splits`` (``DataSplits``), ``load`` (``load_data``).
"""

from .builtin import CIFAR10_MEAN, CIFAR10_STD
from .load import LOAD_FIELDS, data_timesteps, load_data
from .splits import DataSplits, iterate_batches

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "LOAD_FIELDS", "DataSplits", "data_timesteps", "iterate_batches",
           "load_data"]
