"""The user's model and data as configuration: TrainConfig fields, study files, search spaces, factory strings.

What the user's code does once built (hooks, data loading) is tested beside those modules; here: how it is named,
anchored to the file that names it, recorded, and refused in one line when malformed.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from sparsity_search.config import TrainConfig, UserDataset, UserModel, from_dict, load_config, parse_override
from sparsity_search.errors import ConfigError
from sparsity_search.factories import callable_path, load_callable, load_object
from sparsity_search.search import load_study_file, parse_study
from sparsity_search.search.records import baseline_params


def build(input_shape, num_classes, width=8):  # a top-level function: nameable by its import path
    raise AssertionError("never called by these tests")


def test_a_user_model_is_a_mapping_a_factory_string_or_a_callable():
    cfg = TrainConfig(model={"factory": "my_snn:build", "options": {"hidden": 128}, "step_mode": "multi"})
    assert cfg.user_model == UserModel("my_snn:build", {"hidden": 128}, "multi")
    assert TrainConfig(model="my_snn:build").user_model.factory == "my_snn:build"
    assert TrainConfig(model=build).user_model.factory == f"{__name__}:build"
    assert TrainConfig().user_model is None and TrainConfig(model="vgg5").model == "vgg5"
    # to_dict is plain data and round-trips
    data = cfg.to_dict()
    assert data["model"] == {"factory": "my_snn:build", "options": {"hidden": 128}, "step_mode": "multi",
                             "spiking": [], "module_dir": ""}
    assert from_dict(data) == cfg and cfg.replace(lr=0.1).user_model == cfg.user_model


def test_a_user_dataset_is_a_factory_or_an_npz_path():
    assert TrainConfig(dataset={"path": "d.npz"}).user_dataset == UserDataset(path="d.npz")
    assert TrainConfig(dataset="my_data:load").user_dataset.factory == "my_data:load"
    assert TrainConfig(dataset={"path": "d.npz"}).user_dataset.name == "d.npz"


@pytest.mark.parametrize("values, message", [
    ({"model": "resnet"}, "model: must be one of mlp, convnet, vgg5, vgg9, vgg11 or a MODULE:FUNCTION factory"),
    ({"model": {"factory": "a:b", "step_mode": "t"}}, "model.step_mode: must be one of single, multi"),
    ({"model": {"factory": "a:b", "layers": 3}}, "model.layers: unknown key"),
    ({"model": {"options": {}}}, "model.factory"),
    ({"model": lambda s, c: None}, "model.factory: <lambda> is not defined at the top level"),
    ({"dataset": "imagenet"}, "dataset: must be one of digits"),
    ({"dataset": {"path": "a.npz", "factory": "a:b"}}, "dataset: give either factory"),
    ({"dataset": {}}, "dataset: give either factory"),
    ({"dataset": {"path": "a.npz", "options": {"x": 1}}}, "dataset.options: options are arguments"),
    ({"encoding": "rate"}, "encoding: must be one of direct, poisson, none"),
])
def test_malformed_user_code_is_one_line_naming_the_field(values, message):
    with pytest.raises(ConfigError) as info:
        from_dict(values, "c.yaml")
    assert str(info.value).startswith(f"c.yaml: {message}"), str(info.value)
    assert "\n" not in str(info.value)


def test_options_by_set_need_a_user_model_and_merge_into_its_options(tmp_path):
    (tmp_path / "c.yaml").write_text("model: {factory: 'my_snn:build', options: {hidden: 64, beta: 0.9}}\n")
    cfg = load_config(tmp_path / "c.yaml", dict([parse_override("model.beta=0.5"), parse_override("epochs=3")]))
    assert cfg.user_model.options == {"hidden": 64, "beta": 0.5} and cfg.epochs == 3
    # a factory named in a file is imported from that file's folder; one named by a flag from the working directory
    assert cfg.user_model.module_dir == str(tmp_path.resolve())
    assert load_config(None, {"model": "my_snn:build"}).user_model.module_dir == str(Path.cwd().resolve())
    with pytest.raises(ConfigError, match="model.beta: the built-in model 'mlp' takes no options"):
        load_config(None, dict([parse_override("model.beta=0.5")]))


def test_a_key_given_twice_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nlr: 0.1\nepochs: 4\n")
    with pytest.raises(ConfigError, match=r"c.yaml: line 3: key 'epochs' appears twice in one mapping \(first at "
                                          r"line 1\)"):
        load_config(path)
    path.write_text("model:\n  factory: a:b\n  options: {h: 1, h: 2}\n")
    with pytest.raises(ConfigError, match="line 3: key 'h' appears twice"):
        load_config(path)


def _study(folder: Path, **changes) -> Path:
    spec = {"name": "mine", "dataset": {"path": "data/d.npz"},
            "model": {"factory": "nets:build", "options": {"width": 16}},
            "train": {"epochs": 2},
            "search_space": {"params": {"lambda_max": {"type": "float", "low": 0.1, "high": 2.0},
                                        "model.width": {"type": "int", "low": 4, "high": 64}}},
            "n_trials": 3}
    spec.update(changes)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_study_ties_the_users_code_to_its_folder_and_searches_factory_options(tmp_path):
    spec = load_study_file(_study(tmp_path))
    folder = str(tmp_path.resolve())
    assert spec.model == {"factory": "nets:build", "options": {"width": 16}, "module_dir": folder}
    assert spec.dataset == {"path": f"{folder}/data/d.npz"}
    cfg = spec.sampled_config({"lambda_max": 0.5, "model.width": 40})
    assert cfg.user_model.options == {"width": 40} and cfg.lambda_max == 0.5
    assert baseline_params(spec) == {"lambda_max": 0.0, "model.width": 16}
    # the recorded spec is plain data that parses back to the same spec from anywhere
    again = parse_study(yaml.safe_load(yaml.safe_dump(spec.to_dict())), "snapshot", Path("/"))
    assert again.fixed() == spec.fixed()


def test_a_study_records_a_callable_factory_by_its_import_path(tmp_path):
    data = yaml.safe_load(_study(tmp_path).read_text())
    spec = parse_study({**data, "model": {"factory": build}}, "study", tmp_path)
    assert spec.model["factory"] == f"{__name__}:build"
    assert "build" not in yaml.safe_dump(spec.to_dict()).replace(f"{__name__}:build", "")


@pytest.mark.parametrize("changes, message", [
    ({"model": "mlp"}, "study.yaml: model.width: the built-in model 'mlp' takes no options"),
    ({"search_space": {"params": {"width": {"type": "int", "low": 1, "high": 2}}}},
     "width: not a training config field (or model.NAME, an option of the user's model factory)"),
    ({"model": {"factory": "nets:build", "step": "single"}}, "study.yaml: train.model.step: unknown key"),
])
def test_study_errors_name_the_file_and_field(tmp_path, changes, message):
    with pytest.raises(ConfigError) as info:
        load_study_file(_study(tmp_path, **changes))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_factory_strings_resolve_from_the_module_dir_with_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "good_mod.py").write_text("def make(a, b):\n    return a + b\nVALUE = 3\n")
    (tmp_path / "broken_mod.py").write_text("def make(:\n")
    (tmp_path / "raising_mod.py").write_text(textwrap.dedent("""\
        import json
        raise RuntimeError("no GPU driver")
    """))
    (tmp_path / "importing_mod.py").write_text("import not_installed_anywhere\n")
    folder = str(tmp_path)
    assert load_callable("good_mod:make", folder, "model.factory")(1, 2) == 3
    cases = {
        "good_mod": "expected MODULE:NAME",
        "missing_mod:make": "no module named 'missing_mod'",
        "good_mod:nothing": "has no attribute 'nothing'",
        "broken_mod:make": "syntax error in",
        "raising_mod:make": "RuntimeError: no GPU driver",
        "importing_mod:make": "No module named 'not_installed_anywhere'",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError) as info:
            load_object(text, folder, "model.factory")
        assert str(info.value).startswith("model.factory: ") and message in str(info.value), str(info.value)
    with pytest.raises(ConfigError, match="broken_mod.py, line 1"):
        load_object("broken_mod:make", folder, "model.factory")
    with pytest.raises(ConfigError, match="raising_mod.py:2"):
        load_object("raising_mod:make", folder, "model.factory")
    with pytest.raises(ConfigError, match=r"good_mod:VALUE is not a function or class \(its type: int\)"):
        load_callable("good_mod:VALUE", folder, "model.factory")


def test_callables_are_named_by_their_import_path_or_refused():
    assert callable_path(build, "f") == f"{__name__}:build"
    assert callable_path(TrainConfig, "f") == "sparsity_search.config:TrainConfig"

    def nested():
        return None

    with pytest.raises(ConfigError, match="nested is not defined at the top level"):
        callable_path(nested, "f")
    with pytest.raises(ConfigError, match="expected a function"):
        callable_path(3, "f")  # type: ignore[arg-type]
