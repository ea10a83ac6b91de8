"""``sparsity_search.launch`` / ``resume`` from Python: the CLI's settings and checks, a Study back."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import sparsity_search
from helpers import TINY_SPACE, TINY_TRAIN, write_study
from sparsity_search.api import Study
from sparsity_search.errors import ConfigError


def _tiny(name: str = "api", **changes) -> dict:
    spec = {"name": name, "dataset": "digits", "model": "mlp", "train": dict(TINY_TRAIN), "search_space": TINY_SPACE,
            "sampler": {"name": "random"}, "n_trials": 2, "seed": 0}
    spec.update(changes)
    return spec


def test_launch_a_study_dict_then_resume_it_by_name(tmp_path):
    study = sparsity_search.launch(_tiny(), results=str(tmp_path), quiet=True)
    assert isinstance(study, Study)
    table = study.trials()
    assert list(table["state"]) == ["COMPLETE", "COMPLETE"] and bool(table["is_baseline"].iloc[0])
    assert len(study.pareto()) >= 1
    # the dict was snapshotted like a file: a name finds it, and resume adds nothing once the budget is met
    assert yaml.safe_load((tmp_path / "api" / "study.yaml").read_text())["name"] == "api"
    again = sparsity_search.resume("api", results=str(tmp_path), quiet=True)
    assert len(again.trials()) == 2
    more = sparsity_search.resume("api", results=str(tmp_path), n_trials=3, quiet=True)
    assert len(more.trials()) == 3


def test_launch_takes_the_clis_settings_and_refuses_others(tmp_path):
    path = write_study(tmp_path)
    with pytest.raises(ConfigError, match="^bogus: unknown setting; choose from"):
        sparsity_search.launch(path, bogus=1)
    with pytest.raises(ConfigError, match="^--max-concurrent: only the ray backend uses it"):
        sparsity_search.launch(path, max_concurrent=2, results=str(tmp_path / "r"))
    with pytest.raises(ConfigError, match="^--n-trials: must be >= 1"):
        sparsity_search.launch(path, n_trials=0, results=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_user_code_in_main_cannot_reach_worker_processes(tmp_path):
    spec = _tiny("main", model={"factory": "__main__:build"}, search_space={"params": {
        "lambda_max": {"type": "float", "low": 0.1, "high": 1.0}}})
    with pytest.raises(ConfigError) as info:
        sparsity_search.launch(spec, results=str(tmp_path), workers=2, quiet=True)
    assert str(info.value).startswith("model: __main__:build is defined in __main__ (a script or notebook), which "
                                      "--workers 2 starts worker processes cannot import")
    assert not (tmp_path / "main").exists()


def test_a_user_model_is_not_stacked_into_populations(tmp_path):
    spec = _tiny("pop", model={"factory": "nets:build"}, population={"size": 4}, search_space={"params": {
        "lambda_max": {"type": "float", "low": 0.1, "high": 1.0}}})
    with pytest.raises(ConfigError, match="^population: population training stacks the built-in models only; run "
                                          "a user model's trials side by side with --workers N"):
        sparsity_search.launch(spec, results=str(tmp_path), quiet=True)
    assert not (tmp_path / "pop").exists()


def test_per_layer_spikes_are_table_columns(tmp_path):
    study = sparsity_search.launch(_tiny("layers", train={**TINY_TRAIN, "hidden": [16, 8]}),
                                   results=str(tmp_path), quiet=True)
    table = study.trials()
    layers = [c for c in table.columns if c.startswith("spikes_per_sample_")]
    assert layers == ["spikes_per_sample_fc1", "spikes_per_sample_fc2"]
    total = table[layers].sum(axis=1)
    assert total.to_numpy() == pytest.approx(table["spikes_per_sample"].to_numpy())
    from sparsity_search.cli import main

    out = tmp_path / "all.csv"
    assert main(["pareto", "layers", "--results", str(tmp_path), "--all", "--format", "csv", "-o", str(out)]) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert set(layers) <= set(header)
    assert Path(out).exists()


def test_data_with_its_own_time_axis_gives_the_study_its_timesteps(tmp_path):
    """``encoding: none`` without ``timesteps``: every trial trains with the data's T, and the file still matches
    its launch on resume; a ``timesteps`` the data does not have is one line before anything is stored."""
    import numpy as np

    from _fake_datasets import write_npz

    rng = np.random.default_rng(0)
    write_npz(tmp_path / "events.npz", x_train=rng.poisson(0.3, (60, 5, 2, 3, 3)),
              x_test=rng.poisson(0.3, (30, 5, 2, 3, 3)), n_train=60)
    train = {k: v for k, v in TINY_TRAIN.items() if k != "timesteps"} | {"encoding": "none"}
    path = tmp_path / "events.yaml"
    path.write_text(yaml.safe_dump(_tiny("events", dataset={"path": "events.npz"}, train=train)))
    results = str(tmp_path / "r")
    study = sparsity_search.launch(path, results=results, quiet=True)
    assert [study.trial_config(n).timesteps for n in (0, 1)] == [5, 5]
    assert len(sparsity_search.resume(path, results=results, quiet=True).trials()) == 2
    path.write_text(yaml.safe_dump(_tiny("events4", dataset={"path": "events.npz"}, train={**train, "timesteps": 4})))
    with pytest.raises(ConfigError, match="timesteps: 4, but the samples of events.npz have 5 time steps"):
        sparsity_search.launch(path, results=results, quiet=True)
    assert not (tmp_path / "r" / "events4").exists()
