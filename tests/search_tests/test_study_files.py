"""Broken study and search-space files: one line naming file and field, exit 2, nothing stored or changed."""

from pathlib import Path

import optuna
import pytest
import yaml

from helpers import TINY_SPACE, cli, cli_main, tree_snapshot, write_study
from sparsity_search.errors import ConfigError
from sparsity_search.search import load_study_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A results folder holding one finished study named like the broken files below."""
    folder = tmp_path_factory.mktemp("stored")
    good = write_study(folder, name="kept", n_trials=1, train={"epochs": 1, "hidden": [8], "timesteps": 1})
    cli("launch", good, "--results", folder / "results", "-q", check=True)
    return folder / "results"


@pytest.mark.parametrize("changes,expected", [
    ({"sampler": {"name": "cmaes"}}, "sampler.name"),
    ({"sampler": {"name": "tpe", "options": {"n_startup": 3}}}, "sampler.options.n_startup"),
    ({"sampler": {"name": "tpe", "options": {"n_startup_trials": "abc"}}}, "sampler.options.n_startup_trials"),
    ({"sampler": {"name": "tpe", "options": {"multivariate": {"x": [1, 2]}}}}, "sampler.options.multivariate"),
    ({"sampler": {"name": "nsga2", "options": {"population_size": 2.5}}}, "sampler.options.population_size"),
    ({"sampler": {"name": "nsga2", "options": {"mutation": "uniform"}}}, "sampler.options.mutation"),
    ({"objectives": ["val_accuracy", "watts"]}, "objectives"),
    ({"objectives": ["spikes_per_sample", "energy_uj"]}, "objectives"),
    ({"n_trials": 0}, "n_trials"),
    ({"n_trials": None}, "n_trials"),
    ({"train": {"epochs": 2, "lr": -1}}, "train.lr"),
    ({"train": {"epochs": 2, "typo_field": 1}}, "train.typo_field"),
    ({"dataset": "imagenet"}, "train.dataset"),
    ({"surprise": 1}, "surprise"),
    ({"constraints": {"min_accuracy": 1.5}}, "constraints.min_accuracy"),
    ({"early_stopping": {"kind": "moasha", "tie_break": "crowding"}}, "early_stopping.tie_break"),
    ({"search_space": "nowhere.yaml"}, "search_space"),
    ({"search_space": {"params": {"lambda_max": {"type": "float", "low": 1, "high": 0}}}}, "params.lambda_max"),
    ({"search_space": {"params": {"lambda_max": {"type": "float", "low": 0, "high": 1, "log": True}}}},
     "params.lambda_max"),
    ({"search_space": {"params": {"not_a_field": {"type": "int", "low": 1, "high": 2}}}}, "not_a_field"),
    ({"search_space": {"params": {"timesteps": {"type": "int", "low": 0, "high": 4}}}}, "timesteps"),
    ({"search_space": {"params": {"schedule": {"type": "categorical", "choices": ["linear", "cubic"]}}}},
     "schedule"),
    ({"search_space": {"params": {"temperature": {"type": "float", "low": 0.1, "high": 1,
                                                  "when": {"schedule": "annealing"}}}}}, "temperature.when"),
])
def test_each_broken_file_is_one_line_exit_2_and_storage_untouched(stored, tmp_path, changes, expected):
    results = stored
    before = tree_snapshot(results)

    bad = write_study(tmp_path, name="kept", **changes)
    proc = cli_main("launch", bad, "--results", results, "-q")  # in this process; test_bad_yaml_... runs the CLI
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(bad) in lines[0] and expected in lines[0]
    assert tree_snapshot(results) == before


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsearch_space: [\n")
    proc = cli("launch", bad, "--results", tmp_path / "r")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "invalid YAML" in proc.stderr
    proc = cli("launch", tmp_path / "missing.yaml", "--results", tmp_path / "r")
    assert proc.returncode == 2 and "missing.yaml" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_search_space_file_errors_name_that_file(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"params": {"lambda_max": {"type": "float", "low": "a", "high": 1}}}))
    study = write_study(tmp_path, search_space="space.yaml")
    with pytest.raises(ConfigError, match=r"space\.yaml: params\.lambda_max\.low"):
        load_study_file(study)


@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_studies_validate(path):
    spec = load_study_file(path)
    assert spec.objective_names[:2] == ["val_accuracy", "spikes_per_sample"] or "energy_uj" in spec.objective_names


def test_conditions_sample_only_when_active():
    import optuna

    from sparsity_search.search.space import parse_space

    space = parse_space(TINY_SPACE, "inline")
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        params = space.suggest(trial)
        assert ("temperature" in params) == (params["schedule"] == "annealing")
        seen.add(params["schedule"])
        study.tell(trial, [0.5, 1.0])
    assert seen == {"constant", "annealing"}


def test_constrained_sampler_is_built_without_optuna_deprecation_noise(tmp_path):
    """The sampler gets the study's constraint (Optuna then records it per trial and ``best_trials`` drops
    infeasible ones); Optuna 5's notice about ``constraints_func`` is not passed on."""
    import warnings

    from sparsity_search.search._samplers import CONSTRAINTS_ATTR

    spec = load_study_file(write_study(tmp_path, sampler={"name": "tpe"}, constraints={"min_accuracy": 0.9}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = optuna.create_study(directions=spec.directions, sampler=spec.make_sampler())
        for accuracy, spikes in [(0.95, 10.0), (0.80, 1.0), (0.92, 5.0)]:  # the cheapest breaks the floor
            trial = study.ask()
            trial.set_user_attr(CONSTRAINTS_ATTR, spec.constraint_values({"val_accuracy": accuracy}))
            study.tell(trial, [accuracy, spikes])
    assert sorted(t.number for t in study.best_trials) == [0, 2]
    assert not [w for w in caught if "constraints_func" in str(w.message)]


def test_sampler_options_of_the_right_types_reach_the_sampler(tmp_path):
    """The check reads the constructor's annotations: ints, bools and None where they are typed so all pass."""
    from typing import get_args

    from sparsity_search.search._samplers import SAMPLERS, SamplerName

    options = {"n_startup_trials": 3, "multivariate": True, "n_ei_candidates": 12, "consider_endpoints": None}
    sampler = load_study_file(write_study(tmp_path, sampler={"name": "tpe", "options": options})).make_sampler()
    assert sampler._n_startup_trials == 3 and sampler._multivariate
    assert set(get_args(SamplerName)) == set(SAMPLERS)  # the study file's choices are the samplers built
