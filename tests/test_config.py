"""TrainConfig: defaults, YAML loading, typed overrides, and one-line errors naming the field."""

import math

import pytest

from sparsity_search.config import TrainConfig, from_dict, load_config, parse_override, save_config
from sparsity_search.errors import ConfigError


def test_defaults_are_valid_and_leak_follows_neuron_and_tau():
    cfg = TrainConfig()
    assert cfg.leak == 0.9
    assert cfg.replace(neuron="if").leak == 1.0
    assert cfg.replace(tau=2.0).leak == pytest.approx(math.exp(-0.5))


@pytest.mark.parametrize("key,value,message", [
    ("lambda_max", -0.1, "lambda_max: must be >= 0.0"),
    ("timesteps", 0, "timesteps: must be >= 1"),
    ("lr", 0.0, "lr: must be > 0.0"),
    ("schedule", "cosine", "schedule: must be one of constant, linear, annealing, piecewise"),
    ("timesteps", 2.5, "timesteps: expected int"),
    ("hidden", [64, "a"], "hidden: expected a list of int"),
    ("lr", float("nan"), "lr: must be finite"),
    ("bogus", 1, "bogus: unknown key"),
])
def test_bad_values_name_the_field(key, value, message):
    with pytest.raises(ConfigError) as info:
        from_dict({key: value}, "cfg.yaml")
    assert str(info.value).startswith("cfg.yaml: " + message)
    assert "\n" not in str(info.value)


def test_int_is_accepted_for_float_fields_but_not_the_reverse():
    assert from_dict({"lr": 1}).lr == 1.0
    with pytest.raises(ConfigError):
        from_dict({"epochs": 2.0})


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nlambda_max: 0.5\nhidden: [32, 16]\n")
    cfg = load_config(path, {"lambda_max": 1.5})
    assert (cfg.epochs, cfg.lambda_max, cfg.hidden) == (3, 1.5, [32, 16])


def test_save_then_load_round_trips(tmp_path):
    cfg = TrainConfig(lambda_max=2.0, schedule="linear", hidden=[8])
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(tmp_path / "out.yaml") == cfg


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match="missing.yaml: cannot read file"):
        load_config(tmp_path / "missing.yaml")
    bad.write_text("epochs: -1\n")
    with pytest.raises(ConfigError, match="bad.yaml: epochs: must be >= 1"):
        load_config(bad)


def test_parse_override_types_values():
    assert parse_override("hidden=[64,32]") == ("hidden", [64, 32])
    assert parse_override("lambda-max=2") == ("lambda_max", 2.0)
    assert parse_override("data_dir=123") == ("data_dir", "123")
    with pytest.raises(ConfigError, match="nope: unknown key"):
        parse_override("nope=1")
    with pytest.raises(ConfigError, match="epochs: expected int"):
        parse_override("epochs=x")


@pytest.mark.parametrize("write,message", [
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe"), "not a UTF-8 text file"),
    (lambda p: p.mkdir(), "cannot read file (Is a directory)"),
    (lambda p: None, "cannot read file (No such file or directory)"),
    (lambda p: p.write_text("epochs: [1,\n"), "invalid YAML at line 2"),
    (lambda p: p.write_text("- epochs\n- 3\n"), "expected a mapping at the top level"),
])
def test_unreadable_yaml_files_are_one_line_naming_the_file(tmp_path, write, message):
    path = tmp_path / "c.yaml"
    write(path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {message}") and "\n" not in str(info.value)


def test_a_ramping_schedule_without_lambda_max_is_an_error(tmp_path):
    for schedule in ("linear", "annealing"):
        with pytest.raises(ConfigError, match=f"^lambda_max: not given, so schedule '{schedule}'"):
            load_config(None, {"schedule": schedule})
    path = tmp_path / "c.yaml"
    path.write_text("schedule: linear\n")
    with pytest.raises(ConfigError, match=f"^{path}: lambda_max: not given"):
        load_config(path)
    # Named explicitly, 0 is a deliberate baseline; the defaults alone (annealing, 0) stay valid too.
    assert load_config(path, {"lambda_max": 0.0}).lambda_max == 0.0
    assert load_config(None, {"schedule": "constant"}).lambda_max == 0.0
    assert load_config(None, {}).schedule == "annealing"


@pytest.mark.parametrize("broken", ["study", "space_bytes", "space_folder"])
def test_launch_with_a_file_that_is_not_yaml_text_is_one_line_exit_2(tmp_path, broken):
    """Every YAML file a command reads goes through ``load_yaml``: the study file and its search space alike."""
    from helpers import cli, write_study

    space = tmp_path / "space.yaml"
    study = write_study(tmp_path, search_space="space.yaml")
    if broken == "study":
        study.write_bytes(b"\xff\xfe\x00name: tiny\n")
        named = study
    elif broken == "space_bytes":
        space.write_bytes(b"params: \x80\x81\n")
        named = space
    else:
        space.mkdir()
        named = space
    proc = cli("launch", study, "--results", tmp_path / "r", "-q")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert str(named) in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_direct_construction_is_checked_and_stays_a_dataclass():
    import dataclasses

    with pytest.raises(ConfigError, match=r"^epochs: must be >= 1; got 0$"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match=r"^warmup_epochs: must be < epochs \(5\)$"):
        TrainConfig(epochs=5, warmup_epochs=5.0, lambda_max=1.0)
    cfg = TrainConfig(layer_weights=[1, 2])
    assert cfg.layer_weights == [1.0, 2.0] and all(isinstance(w, float) for w in cfg.layer_weights)
    assert [f.name for f in dataclasses.fields(cfg)][:2] == ["dataset", "data_dir"]
    assert dataclasses.replace(cfg, epochs=3).epochs == 3
    with pytest.raises(ConfigError, match="^epochs: "):
        dataclasses.replace(cfg, epochs=-3)


def test_config_and_study_files_report_the_same_problem_in_the_same_words(tmp_path):
    """One validation system: a bad value reads the same in a config file and in a study file's train: block."""
    from helpers import write_study
    from sparsity_search.search import load_study_file

    with pytest.raises(ConfigError) as config_error:
        from_dict({"lr": -1.0})
    with pytest.raises(ConfigError) as study_error:
        load_study_file(write_study(tmp_path, train={"epochs": 2, "lr": -1.0}))
    assert str(config_error.value) == "lr: must be > 0.0; got -1.0"
    assert str(study_error.value).endswith("train.lr: must be > 0.0; got -1.0")


@pytest.mark.parametrize("values,message", [
    ({"schedule": "piecewise"}, "lambda_points: schedule: piecewise needs lambda_points"),
    ({"lr_schedule": "piecewise"}, "lr_points: lr_schedule: piecewise needs lr_points"),
    ({"lambda_points": [[0, 1.0]]}, "schedule: lambda_points are given, but only piecewise reads them; got annealing"),
    ({"schedule": "piecewise", "lambda_points": [[0, 1.0], [3, 2.0], [2, 0.5]]},
     "lambda_points: epochs must be non-decreasing; got 2.0 after 3.0"),
    ({"schedule": "piecewise", "lambda_points": [[0, 1.0], [-1, 2.0]]}, "lambda_points: epochs must be non-decr"),
    ({"schedule": "piecewise", "lambda_points": [[1, 1.0]]}, "lambda_points: the first point must be at epoch 0"),
    ({"schedule": "piecewise", "lambda_points": [[0, -1.0]]}, "lambda_points: epochs and values must be finite"),
    ({"schedule": "piecewise", "lambda_points": [[0, 1.0, 2.0]]}, "lambda_points: expected [epoch, value] pairs"),
    ({"lr_schedule": "piecewise", "lr_points": [[0, 0.0]]}, "lr_points: learning rates must be > 0"),
])
def test_bad_piecewise_points_name_the_field(values, message):
    with pytest.raises(ConfigError) as info:
        from_dict(values, "cfg.yaml")
    assert str(info.value).startswith("cfg.yaml: " + message) and "\n" not in str(info.value)


def test_piecewise_configs_load_from_yaml_and_flags(tmp_path):
    path = tmp_path / "best.yaml"
    path.write_text("schedule: piecewise\nlambda_points: [[0, 0.5], [2, 1], [2, 1.5]]\n")
    cfg = load_config(path, dict([parse_override("lr_schedule=piecewise"), parse_override("lr_points=[[0, 0.001]]")]))
    assert cfg.lambda_points == [[0, 0.5], [2, 1], [2, 1.5]] and cfg.lr_points == [[0, 0.001]]
    save_config(cfg, tmp_path / "again.yaml")
    assert load_config(tmp_path / "again.yaml") == cfg
