"""Studies with ``pbt:``: checked like every study file, run as population rounds whose members are ordinary
trials, exported as the ``piecewise`` schedule each one learned, and durable across a killed worker."""

from __future__ import annotations

import pytest
import yaml
from optuna.trial import TrialState

from helpers import TINY_SPACE, Hold, cli, write_study
from sparsity_search import TrainConfig, train
from sparsity_search.api import locate, open_study
from sparsity_search.errors import ConfigError
from sparsity_search.search import load_study_file
from sparsity_search.search.optuna.study import open_optuna_study

SPACE = {"params": {**TINY_SPACE["params"], "lr": {"type": "float", "low": 0.0005, "high": 0.01, "log": True},
                    "threshold": {"type": "float", "low": 0.5, "high": 2.0}}}
PBT = {"interval": 1, "fraction": 0.25, "perturb": {"lambda_max": [0.8, 1.25], "lr": [0.8, 1.25]}}
TRAIN = {"epochs": 3, "hidden": [16], "timesteps": 2, "batch_size": 128}
SAME = ("val_accuracy", "spikes_per_sample", "test_accuracy")
EPOCHS = 4  # the kill test's training: one exploit step, after epoch 2, where the population is held and killed


def pbt_study(folder, **changes):
    return write_study(folder, **{"search_space": SPACE, "train": TRAIN, "population": {"size": 4}, "pbt": PBT,
                                  **changes})


@pytest.mark.parametrize("changes,field,words", [
    ({"population": {"size": 1}}, "population", "at least 2"),
    ({"pbt": {**PBT, "perturb": {"beta": [0.8, 1.25]}}}, "pbt.perturb.beta", "not a parameter of the search space"),
    ({"pbt": {**PBT, "perturb": {"schedule": [0.8, 1.25]}}}, "pbt.perturb.schedule", "categorical"),
    ({"pbt": {**PBT, "perturb": {"threshold": [0.8, 1.25]}}}, "pbt.perturb.threshold", "could not replay"),
    ({"pbt": {**PBT, "perturb": {"lr": [0.0, 1.25]}}}, "pbt.perturb", "both > 0"),
    ({"pbt": {**PBT, "perturb": {"lr": [0.8]}}}, "pbt.perturb", "[low_factor, high_factor]"),
    ({"pbt": {**PBT, "perturb": {}}}, "pbt.perturb", ""),
    ({"pbt": {**PBT, "fraction": 0.6}}, "pbt.fraction", "<= 0.5"),
    ({"pbt": {**PBT, "fraction": 0}}, "pbt.fraction", "> 0"),
    ({"pbt": {**PBT, "interval": 0}}, "pbt.interval", ">= 1"),
    ({"pbt": {**PBT, "interval": 4}}, "pbt.interval", "<= the training epochs (3)"),
    ({"pbt": {**PBT, "resample_probability": 1.5}}, "pbt.resample_probability", "<= 1"),
    ({"pbt": {**PBT, "tie_break": "crowding"}}, "pbt.tie_break", "hypervolume"),
    ({"early_stopping": {"kind": "moasha"}}, "pbt", "early_stopping: moasha"),
    ({"objectives": ["test_accuracy", "spikes_per_sample"]}, "pbt", "use val_accuracy"),
    ({"backend": "ray"}, "population", "optuna backend only"),
    ({"train": {**TRAIN, "schedule": "piecewise", "lambda_points": [[0, 1], [2, 1], [1, 2]]}},
     "train.lambda_points", "non-decreasing"),
])
def test_each_bad_pbt_setting_is_one_error_naming_its_field(tmp_path, changes, field, words):
    with pytest.raises(ConfigError) as info:
        load_study_file(pbt_study(tmp_path, **changes))
    assert f"tiny.yaml: {field}: " in str(info.value) and words in str(info.value) and "\n" not in str(info.value)


def test_pbt_errors_on_the_command_line_are_one_line_and_store_nothing(tmp_path):
    proc = cli("launch", pbt_study(tmp_path, population={"size": 1}), "--results", tmp_path / "r")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "population" in proc.stderr
    proc = cli("launch", pbt_study(tmp_path), "--results", tmp_path / "r", "--population", "1")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--population" in proc.stderr
    proc = cli("launch", pbt_study(tmp_path), "--results", tmp_path / "r", "--backend", "ray")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "optuna backend only" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_the_python_launch_takes_pbt_with_the_same_checks(tmp_path):
    import sparsity_search

    with pytest.raises(ConfigError, match="^--population: pbt needs a population of at least 2 members"):
        sparsity_search.launch(pbt_study(tmp_path), population=1, results=str(tmp_path / "r"))
    with pytest.raises(ConfigError, match="^population: population training runs on the optuna backend only"):
        sparsity_search.launch(pbt_study(tmp_path), backend="ray", results=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_a_pbt_study_runs_members_as_trials_and_exports_what_each_learned(tmp_path):
    study = pbt_study(tmp_path, n_trials=5)  # the baseline, then a population of 4
    results = tmp_path / "r"
    cli("launch", study, "--results", results, "-q", check=True)
    spec, settings = locate("tiny", results=str(results))
    trials = open_optuna_study(spec, settings.storage, create=False).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    table = open_study("tiny", results=str(results)).trials()
    assert table["pbt"].tolist() == [False] + [True] * 4  # the baseline trains alone, its schedule fixed
    members = trials[1:5]
    for t in members:
        records = [t.user_attrs[f"epoch_{e:03d}"]["pbt"] for e in (1, 2, 3)]
        assert all({"lambda_max", "lr"} <= set(r) for r in records)
        for r in records:  # weights taken from a trial of the same population
            assert r.get("weights_from", members[0].number) in {m.number for m in members}
        assert t.user_attrs["config"]["schedule"] == "piecewise"
        assert table.set_index("trial").loc[t.number, "params_lambda_max"] == t.params["lambda_max"]  # first draw
    # one loser per exploit step (after epochs 1 and 2; none after the last)
    assert [sum("weights_from" in t.user_attrs[f"epoch_{e:03d}"]["pbt"] for t in members) for e in (1, 2, 3)] == \
        [1, 1, 0]

    knee = tmp_path / "knee.yaml"
    proc = cli("query", "tiny", "--results", results, "--knee", "--export-config", knee, check=True)
    number = int(proc.stdout.split("wrote the config of trial ")[1].split()[0])
    exported = yaml.safe_load(knee.read_text())
    assert exported["schedule"] == exported["lr_schedule"] == "piecewise" and exported["lambda_points"][0][0] == 0
    row = train(TrainConfig(**exported))  # retrained from scratch: the same lambda(t), lr(t), hence the same net
    result = trials[number].user_attrs["result"]
    for key in SAME:
        assert row[key] == pytest.approx(result[key], rel=1e-4, abs=1e-6), key
    cli("report", "tiny", "--results", results, "-o", tmp_path / "r.html", check=True)
    assert "the schedule it learned" in (tmp_path / "r.html").read_text()  # the front's lambda(t) is the learned


def test_killed_pbt_population_resumes_from_its_checkpoints_nothing_lost_nothing_doubled(tmp_path):
    # held right after epoch 2, its first exploit step (helpers.Hold): the kill lands there, with every checkpoint
    train_cfg = {"epochs": EPOCHS, "hidden": [16], "timesteps": 2, "batch_size": 128}
    study = pbt_study(tmp_path, n_trials=5, train=train_cfg, pbt={**PBT, "interval": 2},
                      heartbeat={"interval": 1, "grace_period": 3})
    results = tmp_path / "r"
    Hold(tmp_path / "hold", epoch=2).kill_launch_when(lambda held: len(held) == 4, study, "--results", results, "-q",
                                                      what="the population")
    spec, settings = locate("tiny", results=str(results))
    killed = [t for t in open_optuna_study(spec, settings.storage, create=False).get_trials()
              if t.state == TrialState.RUNNING]
    assert sorted(t.number for t in killed) == [1, 2, 3, 4]

    cli("resume", "tiny", "--results", results, "-q", check=True)
    trials = open_optuna_study(spec, settings.storage, create=False).get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 5  # the budget, no more
    retries = []
    for victim in killed:
        assert trials[victim.number].state == TrialState.FAIL
        again = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
        assert len(again) == 1 and again[0].state == TrialState.COMPLETE and again[0].params == victim.params
        result = again[0].user_attrs["result"]
        assert result["epochs"] == EPOCHS and result["resumed_from_epoch"] == 2  # from its checkpoint, not epoch 0
        assert all("pbt" in again[0].user_attrs[f"epoch_{e:03d}"] for e in range(1, EPOCHS + 1))  # every epoch
        retries.append(again[0])
    # the lineage survived the kill: each epoch of the learned schedule is what one member of the population used
    population = [*retries, *(t for t in trials if t.state == TrialState.COMPLETE and t.number in range(1, 5))]
    for t in retries:
        learned = TrainConfig(**t.user_attrs["config"])
        for e in range(EPOCHS):
            used = {(m.user_attrs[f"epoch_{e + 1:03d}"]["lambda"], m.user_attrs[f"epoch_{e + 1:03d}"]["lr"])
                    for m in population}
            assert (held(learned.lambda_points, e), held(learned.lr_points, e)) in used, (t.number, e)
        last = t.user_attrs[f"epoch_{EPOCHS:03d}"]
        assert (held(learned.lambda_points, EPOCHS - 1), held(learned.lr_points, EPOCHS - 1)) == \
            (last["lambda"], last["lr"])  # no exploit after the last epoch: its own values


def held(points: list[list[float]], epoch: int) -> float:
    return [v for e, v in points if e <= epoch][-1]
