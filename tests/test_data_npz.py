"""The user's .npz file: arrays used as given, x_val/y_val as the validation split, one-line errors per array."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from _fake_datasets import write_npz

from helpers import cli
from sparsity_search.config import TrainConfig
from sparsity_search.data import data_timesteps, load_data
from sparsity_search.errors import ConfigError, DataError


def _config(path, **changes) -> TrainConfig:
    return TrainConfig(dataset={"path": str(path)}, model="convnet", **changes)


def _rows(x: torch.Tensor, y: torch.Tensor) -> Counter:
    return Counter((row.numpy().tobytes(), int(label)) for row, label in zip(x, y))


def test_npz_without_val_splits_it_off_the_training_set(tmp_path):
    arrays = write_npz(tmp_path / "d.npz", n_train=100, n_test=30, classes=5)
    data = load_data(_config(tmp_path / "d.npz"))
    assert (data.size("train"), data.size("val"), data.size("test")) == (85, 15, 30)
    assert (data.name, data.input_shape, data.num_classes, data.timesteps) == ("d.npz", (1, 6, 6), 5, None)
    test_x, test_y = data.tensors("test")
    assert test_x.dtype == torch.float32 and test_y.dtype == torch.int64
    assert torch.equal(test_x, torch.from_numpy(arrays["x_test"]).float())  # as given: no scaling, same order
    assert torch.equal(test_y, torch.from_numpy(arrays["y_test"]))
    expected = _rows(torch.from_numpy(arrays["x_train"]).float(), torch.from_numpy(arrays["y_train"]))
    assert _rows(*data.tensors("train")) + _rows(*data.tensors("val")) == expected
    assert torch.bincount(data.tensors("val")[1]).tolist() == [3] * 5  # stratified: 15 of 5 equal classes
    again, other = load_data(_config(tmp_path / "d.npz")), load_data(_config(tmp_path / "d.npz", seed=1))
    assert torch.equal(again.tensors("val")[0], data.tensors("val")[0])  # seeded
    assert not torch.equal(other.tensors("val")[0], data.tensors("val")[0])


def test_npz_with_val_uses_it_exactly(tmp_path):
    arrays = write_npz(tmp_path / "d.npz", n_train=50, n_val=20, n_test=10, classes=7)
    data = load_data(_config(tmp_path / "d.npz"))
    assert (data.size("train"), data.size("val"), data.size("test")) == (50, 20, 10)
    for split in ("train", "val", "test"):
        x, y = data.tensors(split)
        assert torch.equal(x, torch.from_numpy(arrays[f"x_{split}"]).float())
        assert torch.equal(y, torch.from_numpy(arrays[f"y_{split}"]))
    assert data.num_classes == 7


def test_npz_integers_stay_unscaled_and_the_mlp_gets_them_flat(tmp_path):
    x = np.arange(40 * 12, dtype=np.uint8).reshape(40, 3, 2, 2)
    write_npz(tmp_path / "d.npz", x_train=x, y_train=np.arange(40) % 2, x_test=x[:8], y_test=np.arange(8) % 2)
    data = load_data(TrainConfig(dataset={"path": str(tmp_path / "d.npz")}, model="mlp"))
    test_x = data.tensors("test")[0]
    assert data.input_shape == (12,) and torch.equal(test_x, torch.from_numpy(x[:8]).float().flatten(1))
    assert data.event_input  # non-negative integers: counted as spikes under encoding none


BAD = [
    ("missing array", dict(x_test=None), "no array x_test"),
    ("val without labels", dict(x_val=np.zeros((5, 1, 6, 6))), "no array y_val"),
    ("length mismatch", dict(y_train=np.arange(99) % 5), "x_train has 100 samples but y_train 99"),
    ("float labels", dict(y_test=np.zeros(30)), "y_test is float64"),
    ("2-d labels", dict(y_test=np.zeros((30, 1), dtype=int)), "y_test is int64 shaped (30, 1)"),
    ("negative label", dict(y_test=np.arange(30) - 1), "y_test has label -1"),
    ("shapes differ", dict(x_test=np.zeros((30, 1, 6, 5))), "x_test samples are shaped (1, 6, 5)"),
    ("no sample axis", dict(x_train=np.zeros(100)), "x_train is float64 shaped (100,)"),
    ("text inputs", dict(x_test=np.array(["a"] * 30)), "x_test is <U1"),
    ("empty", dict(x_test=np.zeros((0, 1, 6, 6)), y_test=np.zeros(0, dtype=int)), "x_test holds no samples"),
]


@pytest.mark.parametrize("changes, words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arrays_are_one_line_naming_file_and_array(tmp_path, changes, words):
    path = tmp_path / "d.npz"
    write_npz(path, **changes)
    with pytest.raises(DataError) as info:
        load_data(_config(path))
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content, words", [(b"x_train,y_train\n1,2\n", "not an .npz file"),
                                            (None, "no such file"), ("npy", "one .npy array, not an .npz file")])
def test_a_file_that_is_not_an_npz_is_one_line(tmp_path, content, words):
    path = tmp_path / "d.npz"
    if content == "npy":
        np.save(tmp_path / "d.npy", np.zeros(3))
        (tmp_path / "d.npy").rename(path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=words):
        load_data(_config(path))


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "d.npz"
    write_npz(path, x_test=np.array([object()] * 30, dtype=object))
    with pytest.raises(DataError, match="array x_test cannot be read"):
        load_data(_config(path))


def test_data_timesteps_reads_the_header_only(tmp_path):
    write_npz(tmp_path / "d.npz", shape=(7, 2, 3))
    assert data_timesteps(_config(tmp_path / "d.npz", encoding="none")) == 7
    assert data_timesteps(_config(tmp_path / "d.npz")) is None  # no time axis without encoding none
    write_npz(tmp_path / "flat.npz", shape=(7,))
    with pytest.raises(ConfigError, match="encoding"):
        data_timesteps(_config(tmp_path / "flat.npz", encoding="none"))


FAST = ["--epochs", "1", "--set", "hidden=[16]", "--timesteps", "2", "-q"]


def test_cli_trains_on_an_npz_named_relative_to_the_working_directory(tmp_path):
    write_npz(tmp_path / "data.npz")
    proc = cli("train", "--set", "dataset={path: data.npz}", *FAST, "--json", "row.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = json.loads((tmp_path / "row.json").read_text())
    assert row["config"]["dataset"]["path"] == str(tmp_path / "data.npz")  # recorded absolute
    assert "val_accuracy" in proc.stdout and 0 <= row["test_accuracy"] <= 1


def test_cli_config_file_names_the_npz_relative_to_itself(tmp_path):
    (tmp_path / "study").mkdir()
    write_npz(tmp_path / "study" / "data.npz")
    (tmp_path / "study" / "c.yaml").write_text("dataset: {path: data.npz}\nmodel: convnet\nchannels: [4]\n")
    proc = cli("train", "--config", "study/c.yaml", *FAST, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "val_accuracy" in proc.stdout


def test_cli_bad_npz_is_one_line_exit_2(tmp_path):
    write_npz(tmp_path / "data.npz", y_train=np.arange(100) - 3)
    proc = cli("train", "--set", "dataset={path: data.npz}", *FAST, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{tmp_path / 'data.npz'}: y_train has label -3" in proc.stderr
