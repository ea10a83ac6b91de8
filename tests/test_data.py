"""Datasets load, split and batch as documented: digits offline, the others from tiny files in the real formats."""

from collections import Counter

import numpy as np
import pytest
import torch
from _fake_datasets import write_cifar10, write_idx, write_mnist
from sklearn.datasets import load_digits

from sparsity_search.config import TrainConfig
from sparsity_search.data import CIFAR10_MEAN, CIFAR10_STD, DataSplits, iterate_batches, load_data
from sparsity_search.errors import DataError

CONV_MODELS = ["convnet", "vgg5", "vgg9", "vgg11"]
MNIST_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def _splits(data: DataSplits) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {split: data.tensors(split) for split in ("train", "val", "test")}


def _rows(x: torch.Tensor, y: torch.Tensor, scale: float) -> Counter:
    """Samples as hashable (pixels, label) rows, pixels back in the file's integer units."""
    pixels = (x.flatten(1) * scale).round().to(torch.uint8).numpy()
    return Counter((p.tobytes(), int(label)) for p, label in zip(pixels, y))


# --- digits -------------------------------------------------------------------------------------------------------

def test_digits_split_sizes_partition_the_dataset():
    data = load_data(TrainConfig())
    assert (data.size("train"), data.size("val"), data.size("test")) == (1222, 216, 359)  # test 20%, val 15% of rest
    digits = load_digits()
    everything = _rows(torch.as_tensor(digits.data) / 16, torch.as_tensor(digits.target), 16)
    assert sum((_rows(x, y, 16) for x, y in _splits(data).values()), Counter()) == everything
    assert (data.name, data.num_classes) == ("digits", 10)


def test_digits_splits_are_stratified():
    data = load_data(TrainConfig(seed=3))
    counts = {name: torch.bincount(y, minlength=10) for name, (_, y) in _splits(data).items()}
    total = sum(counts.values())
    pool = counts["train"] + counts["val"]
    assert (counts["test"] - total * data.size("test") / total.sum()).abs().max() < 1
    assert (counts["val"] - pool * data.size("val") / pool.sum()).abs().max() < 1


def test_digits_split_is_determined_by_the_seed():
    a, b, c = (load_data(TrainConfig(seed=s)) for s in (7, 7, 8))
    for (xa, ya), (xb, yb), (xc, _) in zip(_splits(a).values(), _splits(b).values(), _splits(c).values()):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert not torch.equal(xa, xc)


def test_digits_values_are_scaled_to_unit_range():
    data = load_data(TrainConfig())
    for x, y in _splits(data).values():
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.min() == 0 and x.max() == 1
        assert set(y.tolist()) == set(range(10))


@pytest.mark.parametrize("model, shape", [("mlp", (64,))] + [(m, (1, 8, 8)) for m in CONV_MODELS])
def test_digits_shape_follows_the_model(model, shape):
    data = load_data(TrainConfig(model=model))
    assert data.input_shape == shape
    for x, y in _splits(data).values():
        assert x.shape == (len(y), *shape)


def test_train_subset_keeps_a_stratified_seeded_subset():
    full = load_data(TrainConfig())
    data = load_data(TrainConfig(train_subset=100))
    assert data.size("train") == 100
    (x, y), (full_x, full_y) = data.tensors("train"), full.tensors("train")
    per_class = torch.bincount(full_y, minlength=10) * 100 / len(full_y)
    assert (torch.bincount(y, minlength=10) - per_class).abs().max() < 1  # stratified
    for split in ("val", "test"):  # only train shrinks
        assert torch.equal(data.tensors(split)[0], full.tensors(split)[0])
    assert not _rows(x, y, 16) - _rows(full_x, full_y, 16)  # drawn from train
    assert torch.equal(load_data(TrainConfig(train_subset=100)).tensors("train")[0], x)


def test_train_subset_larger_than_the_training_set_keeps_everything():
    assert load_data(TrainConfig(train_subset=10_000)).size("train") == 1222


# --- MNIST and Fashion-MNIST from idx files ---------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzipped"])
@pytest.mark.parametrize("dataset", sorted(MNIST_FOLDERS))
def test_mnist_like_loads_idx_files(tmp_path, dataset, gz):
    written = write_mnist(tmp_path, MNIST_FOLDERS[dataset], n_train=100, n_test=30, gz=gz)
    data = load_data(TrainConfig(dataset=dataset, data_dir=str(tmp_path), model="convnet"))
    assert (data.size("train"), data.size("val"), data.size("test")) == (85, 15, 30)
    assert data.input_shape == (1, 28, 28) and data.name == dataset
    test_x, test_y = data.tensors("test")
    assert torch.equal(test_x, torch.from_numpy(written["t10k_x"]).unsqueeze(1) / 255)  # official test split
    assert torch.equal(test_y, torch.from_numpy(written["t10k_y"]).long())
    expected = _rows(torch.from_numpy(written["train_x"]) / 255, torch.from_numpy(written["train_y"]), 255)
    assert _rows(*data.tensors("train"), 255) + _rows(*data.tensors("val"), 255) == expected


def test_mnist_for_mlp_is_flat(tmp_path):
    write_mnist(tmp_path)
    data = load_data(TrainConfig(dataset="mnist", data_dir=str(tmp_path), model="mlp"))
    x = data.tensors("train")[0]
    assert data.input_shape == (784,) and x.shape == (85, 784)
    assert 0 <= x.min() and x.max() <= 1


def test_mnist_rejects_a_corrupt_idx_file(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros((7, 2, 2), np.uint8))
    with pytest.raises(DataError, match="cannot read"):
        load_data(TrainConfig(dataset="mnist", data_dir=str(tmp_path)))


def test_mnist_names_the_missing_file(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_data(TrainConfig(dataset="mnist", data_dir=str(tmp_path)))


# --- CIFAR-10 from python batches ---------------------------------------------------------------------------------

def test_cifar10_loads_pickled_batches_normalised(tmp_path):
    written = write_cifar10(tmp_path, n_per_batch=20, n_test=20)
    data = load_data(TrainConfig(dataset="cifar10", data_dir=str(tmp_path), model="vgg5"))
    assert (data.size("train"), data.size("val"), data.size("test")) == (85, 15, 20)
    assert data.input_shape == (3, 32, 32)
    mean, std = torch.tensor(CIFAR10_MEAN).view(3, 1, 1), torch.tensor(CIFAR10_STD).view(3, 1, 1)
    expected = torch.from_numpy(written["test_x"]).view(-1, 3, 32, 32) / 255
    test_x, test_y = data.tensors("test")
    torch.testing.assert_close(test_x * std + mean, expected)
    assert torch.equal(test_y, torch.from_numpy(written["test_y"]).long())
    unnormalised = {name: (x * std + mean, y) for name, (x, y) in _splits(data).items()}
    loaded = _rows(*unnormalised["train"], 255) + _rows(*unnormalised["val"], 255)
    assert loaded == _rows(torch.from_numpy(written["train_x"]) / 255, torch.from_numpy(written["train_y"]), 255)


def test_cifar10_for_mlp_is_flat(tmp_path):
    write_cifar10(tmp_path)
    data = load_data(TrainConfig(dataset="cifar10", data_dir=str(tmp_path), model="mlp"))
    assert data.input_shape == (3072,) and data.tensors("test")[0].shape == (20, 3072)


def test_cifar10_rejects_a_batch_in_another_layout(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_data(TrainConfig(dataset="cifar10", data_dir=str(tmp_path)))


# --- missing data -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset, folder", [("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw"),
                                             ("cifar10", "cifar-10-batches-py")])
def test_missing_folder_is_a_one_line_error_naming_the_path(tmp_path, dataset, folder):
    with pytest.raises(DataError) as info:
        load_data(TrainConfig(dataset=dataset, data_dir=str(tmp_path / "nowhere")))
    message = str(info.value)
    assert str(tmp_path / "nowhere" / folder) in message
    assert "--download" in message and "\n" not in message
    assert not (tmp_path / "nowhere").exists()  # nothing is created or fetched without --download


# --- batches ------------------------------------------------------------------------------------------------------

def test_iterate_batches_in_order_keeps_the_last_partial_batch():
    batches = list(iterate_batches(10, 4, shuffle=False, generator=None, device="cpu"))
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_iterate_batches_shuffled_covers_every_index_once():
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):  # each epoch
        batches = list(iterate_batches(103, 10, shuffle=True, generator=gen, device="cpu"))
        assert [len(b) for b in batches] == [10] * 10 + [3]
        assert sorted(torch.cat(batches).tolist()) == list(range(103))
        assert all(b.device.type == "cpu" and b.dtype == torch.int64 for b in batches)


def test_iterate_batches_is_deterministic_with_a_seeded_generator():
    def order(seed):
        gen = torch.Generator().manual_seed(seed)
        return torch.cat(list(iterate_batches(50, 8, shuffle=True, generator=gen, device="cpu")))

    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))
    assert not torch.equal(order(1), torch.arange(50))


def test_iterate_batches_rejects_a_zero_batch_size():
    with pytest.raises(ValueError):
        list(iterate_batches(5, 0, shuffle=False, generator=None, device="cpu"))
