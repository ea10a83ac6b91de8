"""The user's dataset factory: (train, test) or (train, val, test) map-style Datasets, checked item by item."""

import pytest
import torch
from _fake_datasets import write_data_module

from helpers import cli
from sparsity_search.config import TrainConfig
from sparsity_search.data import load_data
from sparsity_search.errors import ConfigError, DataError


@pytest.fixture
def module_dir(tmp_path):
    write_data_module(tmp_path)
    return str(tmp_path)


def _config(module_dir: str, factory: str, options: dict | None = None, **changes) -> TrainConfig:
    spec = {"factory": f"fake_user_data:{factory}", "options": options or {}, "module_dir": module_dir}
    return TrainConfig(dataset=spec, **{"model": "convnet", "stream_workers": 0, **changes})


def _module(module_dir: str):
    import fake_user_data  # importable once a config named it: load_data put module_dir on sys.path

    return fake_user_data


def test_train_and_test_sets_with_val_split_off(module_dir):
    data = load_data(_config(module_dir, "images", {"n_train": 120, "n_test": 40}))
    assert (data.size("train"), data.size("val"), data.size("test")) == (102, 18, 40)
    assert (data.name, data.input_shape, data.num_classes) == ("fake_user_data:images", (3, 8, 8), 4)
    train, test = _module(module_dir).images(120, 40)
    assert torch.equal(data.tensors("test")[0], test.tensors[0]) and torch.equal(data.tensors("test")[1],
                                                                                 test.tensors[1])
    seen = torch.cat([data.tensors("train")[0], data.tensors("val")[0]])
    assert sorted(map(bytes, seen.numpy())) == sorted(map(bytes, train.tensors[0].numpy()))  # a partition
    assert not data.event_input


def test_train_val_and_test_sets_are_used_as_given(module_dir):
    data = load_data(_config(module_dir, "images", {"n_train": 30, "n_val": 12, "n_test": 8, "classes": 6}))
    train, val, test = _module(module_dir).images(30, 8, 12, classes=6)
    for split, dataset in (("train", train), ("val", val), ("test", test)):
        x, y = data.tensors(split)
        assert torch.equal(x, dataset.tensors[0]) and torch.equal(y, dataset.tensors[1])
    assert data.num_classes == 6


BAD_RETURNS = [
    ("lists", "returned an int as its test set"),
    ("four", "returned a tuple of 4"),
    ("single", "returned a TensorDataset"),
    ("iterable", "returned a Stream as its train set"),
    ("empty", "returned an empty train set"),
]


@pytest.mark.parametrize("factory, words", BAD_RETURNS, ids=[b[0] for b in BAD_RETURNS])
def test_wrong_return_types_are_one_line(module_dir, factory, words):
    with pytest.raises(ConfigError) as info:
        load_data(_config(module_dir, factory))
    message = str(info.value)
    assert message.startswith("dataset.factory: ") and words in message and "\n" not in message, message
    assert "expected (train, test) or (train, val, test)" in message or "empty" in message


BAD_ITEMS = [
    ("shape", "train set item 7: x is shaped (5,), item 0 of the training set (4,)"),
    ("label", "train set item 7: label 0.5 is not an integer (an int, a numpy or a one-element torch integer)"),
    ("tensor_label", "train set item 7: label tensor(0.5000) is not an integer (an int, a numpy or a one-element "
                     "torch integer)"),
    ("negative", "train set item 7: label -1 is negative; labels must be 0..num_classes-1"),
    ("not_a_pair", "train set item 7: the item is a Tensor shaped (4,); items must be (x, y) pairs"),
    ("text", "train set item 7: x is a str; expected a tensor or a numpy array"),
    ("raises", "train set item 7 raised FileNotFoundError: no such file: /data/sample_7.bin"),
]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("how, words", BAD_ITEMS, ids=[b[0] for b in BAD_ITEMS])
def test_bad_items_are_one_line_naming_set_and_item(module_dir, how, words, workers):
    with pytest.raises(DataError) as info:
        load_data(_config(module_dir, "broken", {"how": how}, model="mlp", stream_workers=workers))
    assert str(info.value) == f"fake_user_data:broken: {words}"


def test_bad_item_zero_is_found_before_reading(module_dir):
    with pytest.raises(DataError, match="train set item 0: x is a str"):
        load_data(_config(module_dir, "broken", {"bad": 0, "how": "text"}))


def test_a_raising_factory_shows_its_message(module_dir):
    with pytest.raises(ConfigError) as info:
        load_data(_config(module_dir, "raising", {"root": "/nowhere"}))
    message = str(info.value)
    assert "FileNotFoundError: no dataset under /nowhere" in message and "fake_user_data.py" in message
    assert message.startswith("dataset.factory: ") and "\n" not in message


def test_unknown_options_and_missing_modules_are_one_line(module_dir, tmp_path):
    with pytest.raises(ConfigError, match="cannot be called with these arguments"):
        load_data(_config(module_dir, "images", {"colour": True}))
    spec = {"factory": "no_such_module:load", "module_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match="no module named 'no_such_module'"):
        load_data(TrainConfig(dataset=spec))


def test_cli_trains_on_a_factory_and_refuses_a_broken_one(module_dir):
    args = ["--set", "model=convnet", "--set", "channels=[4]", "--epochs", "1", "--timesteps", "2", "-q"]
    proc = cli("train", "--set", "dataset={factory: fake_user_data:images}", *args, cwd=module_dir)
    assert proc.returncode == 0, proc.stderr
    assert "val_accuracy" in proc.stdout
    proc = cli("train", "--set", "dataset={factory: fake_user_data:lists}", *args, cwd=module_dir)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "dataset.factory" in proc.stderr
