"""Optuna studies with ``population: {size: K}``: trials trained K at a time look like ordinary trials."""

import pytest
from optuna.trial import TrialState

from helpers import Hold, cli, write_study
from sparsity_search import train
from sparsity_search.api import locate, open_study
from sparsity_search.config import from_dict
from sparsity_search.search.optuna.study import open_optuna_study

SAME = ("val_accuracy", "spikes_per_sample", "train_loss", "test_accuracy", "energy_uj")


def test_population_study_matches_single_training_and_looks_ordinary(tmp_path):
    plain = write_study(tmp_path, name="plain", n_trials=3)
    cli("launch", plain, "--results", tmp_path / "r", "-q", check=True)
    study = write_study(tmp_path, n_trials=6, population={"size": 4})
    cli("launch", study, "--results", tmp_path / "r", "-q", check=True)

    table = open_study("tiny", results=str(tmp_path / "r")).trials()
    assert list(table.columns) == list(open_study("plain", results=str(tmp_path / "r")).trials().columns)
    assert (table["state"] == "COMPLETE").sum() == 6 and table["is_baseline"].sum() == 1
    spec, settings = locate("tiny", results=str(tmp_path / "r"))
    trials = open_optuna_study(spec, settings.storage, create=False).get_trials()
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 1
    for t in trials:
        assert t.user_attrs["epoch_002"]["epoch"] == 2  # per-epoch metrics, as the single path writes them
        alone = train(from_dict({**t.user_attrs["config"], "checkpoint_dir": "", "resume": False}))
        for key in SAME:
            assert t.user_attrs["result"][key] == pytest.approx(alone[key], rel=1e-4, abs=1e-6), (t.number, key)
    # one worker: baseline alone, then trials 1-4 ran at the same time (one population), then trial 5
    together = [t for t in trials if 1 <= t.number <= 4]
    assert max(t.datetime_start for t in together) < min(t.datetime_complete for t in together)
    assert trials[5].datetime_start > max(t.datetime_complete for t in together)


def test_cli_flag_and_moasha_pruning_inside_a_population(tmp_path):
    study = write_study(tmp_path, n_trials=5, train={"epochs": 4, "hidden": [16], "timesteps": 2, "batch_size": 256},
                        early_stopping={"kind": "moasha", "mode": "stopping", "min_epochs": 1, "reduction_factor": 2})
    cli("launch", study, "--results", tmp_path / "r", "--population", "4", "-q", check=True)
    spec, settings = locate("tiny", results=str(tmp_path / "r"))
    trials = open_optuna_study(spec, settings.storage, create=False).get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.PRUNED) >= 1 and states.count(TrialState.COMPLETE) >= 2
    for t in trials:
        if t.state == TrialState.PRUNED:
            last = t.user_attrs["pruned_at_epoch"]
            assert f"epoch_{last:03d}" in t.user_attrs and f"epoch_{last + 1:03d}" not in t.user_attrs
        else:
            assert t.user_attrs["result"]["epochs"] == 4
    assert cli("launch", study, "--results", tmp_path / "r2", "--population", "0", "-q").returncode == 2


def test_ray_backend_rejects_population_flag(tmp_path):
    study = write_study(tmp_path, backend="ray")
    proc = cli("launch", study, "--results", tmp_path / "r", "--population", "2", "-q")
    assert proc.returncode == 2 and "--population" in proc.stderr


def test_killed_population_worker_leaves_its_trials_to_the_heartbeat_and_resume_retries_them(tmp_path):
    study = write_study(tmp_path, n_trials=5, population={"size": 4}, heartbeat={"interval": 1, "grace_period": 3},
                        train={"epochs": 4, "hidden": [32], "timesteps": 2, "batch_size": 128})
    results = tmp_path / "r"
    # the baseline goes through; the population is held after epoch 2 and killed there
    Hold(tmp_path / "hold", epoch=2).kill_launch_when(lambda held: len(held) == 4, study, "--results", results, "-q",
                                                      what="the population")
    killed = open_study("tiny", results=str(results)).trials()
    assert list(killed[killed["state"] == "COMPLETE"]["trial"]) == [0]
    killed = killed[killed["state"] == "RUNNING"]
    assert sorted(killed["trial"]) == [1, 2, 3, 4] and (killed["epochs"] == 2).all()  # together, at their epoch 2
    assert all((results / "tiny" / "trials" / f"{n:05d}" / "checkpoint.pt").exists() for n in killed["trial"])

    cli("resume", "tiny", "--results", results, "-q", check=True)
    spec, settings = locate("tiny", results=str(results))
    trials = open_optuna_study(spec, settings.storage, create=False).get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 5  # the budget, no more
    for number in killed["trial"]:
        assert trials[number].state == TrialState.FAIL  # failed by the heartbeat, not left RUNNING
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == number]
        assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
        assert retries[0].params == trials[number].params
        result = retries[0].user_attrs["result"]
        assert result["epochs"] == 4
        assert result["resumed_from_epoch"] == 2  # from the member's checkpoint of the epoch it was killed after
