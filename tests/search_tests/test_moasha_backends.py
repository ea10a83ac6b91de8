"""MO-ASHA on both backends: the Ray scheduler's decisions by hand, then studies that prune, from the CLI.

The end-to-end studies search the learning rate over three decades (the slow ones are clearly worse after one
epoch) with reduction factor 2 and rungs at epochs 1 and 2 of 4, so about half the trials stop at each rung.
"""

from __future__ import annotations

import io
import json
import pickle
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest

from helpers import cli, cli_main, write_study
from ray_helpers import RAY_ENV
from sparsity_search.api import locate, open_study
from sparsity_search.moasha import rank_records

MAX_EPOCHS, RUNGS = 4, (1, 2)
SPACE = {"params": {"lambda_max": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
                    "lr": {"type": "float", "low": 1e-5, "high": 3e-2, "log": True}}}
TRAIN = {"epochs": MAX_EPOCHS, "hidden": [32], "timesteps": 2, "batch_size": 128}
MOASHA = {"kind": "moasha", "mode": "stopping", "min_epochs": 1, "reduction_factor": 2}


def _study(folder, n_trials=8, **changes):
    return write_study(folder, name="mo", n_trials=n_trials, search_space=SPACE, train=dict(TRAIN),
                       **{"early_stopping": MOASHA, **changes})


def _check_pruned_study(results, n_trials, overshoot=0):
    """Budget met by complete + pruned trials; pruned ones stopped at a rung with that epoch's metrics; they are
    in ``pareto --all`` and not in the front."""
    table = open_study("mo", results=str(results)).trials()
    finished = table[table["state"].isin(["COMPLETE", "PRUNED"])]
    assert n_trials <= len(finished) <= n_trials + overshoot and len(finished) == len(table)
    pruned = table[table["state"] == "PRUNED"]
    assert len(pruned) >= 1, "no trial was pruned"
    assert not pruned["is_baseline"].any()
    assert pruned["epochs"].isin(RUNGS).all() and (pruned["epochs"] < MAX_EPOCHS).all()
    assert pruned[["val_accuracy", "spikes_per_sample"]].notna().all().all()
    assert pruned["test_accuracy"].isna().all()  # a pruned trial never reached the test evaluation
    done = table[table["state"] == "COMPLETE"]
    assert (done["epochs"] == MAX_EPOCHS).all() and done["test_accuracy"].notna().all()

    def shown(*flags):
        out = cli_main("pareto", "mo", "--results", results, "--format", "json", *flags, check=True).stdout
        return pd.read_json(io.StringIO(out), orient="records")

    everything, front, with_pruned = shown("--all"), shown(), shown("--include-pruned")
    assert set(pruned["trial"]) <= set(everything["trial"])
    assert set(everything["trial"]) == set(finished["trial"])
    assert not set(pruned["trial"]) & set(front["trial"]) and len(front) >= 1
    # asked for, pruned trials compete: the front over complete + pruned points, computed independently
    points = finished.set_index("trial")[["val_accuracy", "spikes_per_sample"]]
    expected = {t for t, (a, s) in points.iterrows()
                if not ((points["val_accuracy"] >= a) & (points["spikes_per_sample"] <= s)
                        & ((points["val_accuracy"] > a) | (points["spikes_per_sample"] < s))).any()}
    assert set(with_pruned["trial"]) == expected
    return table


def test_moasha_needs_objectives_measured_every_epoch(tmp_path):
    from sparsity_search.errors import ConfigError
    from sparsity_search.search import load_study_file

    path = _study(tmp_path, objectives=["test_accuracy", "spikes_per_sample"])
    with pytest.raises(ConfigError) as err:
        load_study_file(path)
    assert str(err.value).startswith(f"{path}: early_stopping: ") and "\n" not in str(err.value)


# -- the Ray scheduler, driven by hand (no Ray cluster) ---------------------------------------------------------
def _trial(folder, number, baseline=False):
    config = {"is_baseline": True} if baseline else {"lambda_max": 0.5, "lr": 0.01, "is_baseline": False}
    return SimpleNamespace(config={**config, "trial_number": number},
                           storage=SimpleNamespace(experiment_fs_path=str(folder),
                                                   experiment_driver_staging_path=f"{folder}-staging"))


def _epoch(epoch, accuracy, spikes):
    return {"epoch": epoch, "val_accuracy": accuracy, "spikes_per_sample": spikes, "test_accuracy": None}


def test_ray_scheduler_decisions_and_state_across_restore(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    from sparsity_search.search.ray.scheduler import MOASHAScheduler, stopped_trials

    spec, _ = locate(_study(tmp_path, backend="ray"), results=str(tmp_path / "results"))
    exp = tmp_path / "exp"
    sched = MOASHAScheduler(spec)
    go, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    base, t1, t2, t3, t4 = [_trial(exp, n, baseline=n == 0) for n in range(5)]
    assert sched.rungs_of(t1.config) == set(RUNGS)

    def decide(trial, *result):
        return sched.on_trial_result(None, trial, _epoch(*result))

    assert decide(base, 1, 0.01, 1e6) == go  # the baseline is never stopped, and its record is not counted
    assert decide(t1, 1, 0.90, 100) == go  # first arrival at rung 1: nobody to compare with
    assert decide(t2, 1, 0.50, 300) == stop  # 2 records, 2 // 2 = 1 continues: t1 dominates t2
    assert decide(t3, 1, 0.95, 50) == go  # dominates both
    assert decide(t1, 2, 0.92, 90) == go  # first at rung 2
    assert decide(t1, 3, 0.10, 900) == go  # epoch 3 is no rung (4 is the last epoch)
    assert decide(t4, 1, 0.85, 120) == stop  # 4 records, top 2 are t3 and t1
    assert sched.on_trial_result(None, t3, {"epochs": 4, "val_accuracy": 0.99, "final": True}) == go
    assert stopped_trials(exp) == {2: 1, 4: 1}

    # Tune restores the scheduler pickled at launch (empty): the state comes back from moasha.json
    restored = pickle.loads(pickle.dumps(sched))
    assert restored._rungs == {} and restored._stopped == {}
    t5 = _trial(exp, 5)
    assert restored.on_trial_result(None, t2, _epoch(2, 0.99, 1)) == stop  # stopped once, stopped again
    # alone at rung 1 t5 would continue; against the four earlier records it is in the bottom half
    assert restored.on_trial_result(None, t5, _epoch(1, 0.60, 250)) == stop
    assert stopped_trials(exp) == {2: 1, 4: 1, 5: 1}
    assert json.loads((exp / "moasha.json").read_text())["rungs"]["1"]["1"] == [0.90, 100]


# dense first, then a silent net, then a sparse net that kept its accuracy: one front, 3 // 2 = 1 continues
FRONT_ARRIVALS = [(0.97, 110.0), (0.10, 0.0), (0.90, 20.0)]


@pytest.mark.parametrize("tie_break, sparse_continues", [("hypervolume", True), ("epsilon_net", False)])
def test_both_backends_apply_the_study_files_tie_break(tmp_path, tie_break, sparse_continues):
    from ray.tune.schedulers import TrialScheduler

    from sparsity_search.search.ray.scheduler import MOASHAScheduler
    from sparsity_search.search.optuna.rungs import moasha_hook

    es = {**MOASHA, "tie_break": tie_break}
    spec, _ = locate(_study(tmp_path, backend="ray", early_stopping=es), results=str(tmp_path / "results"))
    assert spec.early_stopping.tie_break == tie_break
    sched = MOASHAScheduler(spec)
    ray_says = [sched.on_trial_result(None, _trial(tmp_path / "exp", n + 1), _epoch(1, *point))
                for n, point in enumerate(FRONT_ARRIVALS)]
    assert ray_says[-1] == (TrialScheduler.CONTINUE if sparse_continues else TrialScheduler.STOP)

    hook = moasha_hook(spec, MAX_EPOCHS)
    study = optuna.create_study(directions=spec.directions)
    optuna_says = []
    for accuracy, spikes in FRONT_ARRIVALS:
        try:
            hook(study.ask(), 1, {"val_accuracy": accuracy, "spikes_per_sample": spikes})
            optuna_says.append(True)
        except optuna.TrialPruned:
            optuna_says.append(False)
    assert optuna_says[-1] == sparse_continues
    assert optuna_says == [s == TrialScheduler.CONTINUE for s in ray_says]


def test_unknown_tie_break_is_a_one_line_error_naming_the_field(tmp_path):
    from sparsity_search.errors import ConfigError
    from sparsity_search.search import load_study_file

    path = _study(tmp_path, early_stopping={**MOASHA, "tie_break": "crowding"})
    with pytest.raises(ConfigError) as err:
        load_study_file(path)
    assert str(err.value).startswith(f"{path}: early_stopping.tie_break") and "\n" not in str(err.value)


def test_ray_records_read_pruned_trials_and_the_searcher_tells_optuna_pruned(tmp_path):
    from sparsity_search.search.ray.backend import RayBackend
    from sparsity_search.search.ray.searcher import StudySearch

    spec, settings = locate(_study(tmp_path, backend="ray"), results=str(tmp_path / "results"))
    exp = settings.results_dir / "ray"
    rows = [{**_epoch(e, 0.4 + e / 10, 50.0 - e), "date": f"2030-01-01_00-00-0{e}", "training_iteration": e}
            for e in (1, 2)]
    for number, name in ((1, "a"), (2, "b")):
        folder = exp / f"run_trial_{name}"
        folder.mkdir(parents=True)
        config = {"lambda_max": 0.5, "lr": 0.01, "is_baseline": False, "trial_number": number}
        (folder / "params.json").write_text(json.dumps(config))
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (exp / "moasha.json").write_text(json.dumps({"rungs": {}, "stopped": {"1": 2}}))
    pruned, running = RayBackend().records(spec, settings)
    assert (pruned.number, pruned.state, pruned.epochs) == (1, "PRUNED", 2)
    assert pruned.metrics["val_accuracy"] == pytest.approx(0.6) and pruned.metrics["spikes_per_sample"] == 48.0
    assert (running.number, running.state) == (2, "RUNNING")

    search = StudySearch(spec)
    assert search.suggest("base")["is_baseline"]
    assert not search.suggest("t1")["is_baseline"]
    search.on_trial_complete("t1", result=rows[-1])  # stopped by the scheduler: no final report
    (told,) = search._ot_study.get_trials(deepcopy=False)
    assert told.state == optuna.trial.TrialState.PRUNED and told.values is None


# -- Optuna, end to end ----------------------------------------------------------------------------------------
def test_optuna_two_workers_prune_and_complete_the_budget_then_resume_keeps_them(tmp_path):
    study, results = _study(tmp_path), tmp_path / "results"
    cli("launch", study, "--results", results, "--workers", "2", "--threads", "1", "-q", check=True)
    before = _check_pruned_study(results, 8, overshoot=1)
    finished = len(before)

    # Resume with one more trial: a copy of the trial ranked last at rung 1. Alone at the rung it would
    # continue; against the stored records it is in the bottom half, so it is pruned at epoch 1.
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(results / "mo" / "study.journal")))
    ostudy = optuna.load_study(study_name="mo", storage=storage)
    at_rung = [(t.number, t.user_attrs["rung_001"]) for t in ostudy.get_trials() if "rung_001" in t.user_attrs]
    worst = ostudy.trials[rank_records(at_rung, ["maximize", "minimize"])[-1]]
    ostudy.enqueue_trial(worst.params)

    # One worker: resume would otherwise reuse the launch's recorded --workers 2, and a second worker may start
    # its own trial while the first runs the copy (Optuna's usual overshoot of workers - 1).
    cli("resume", "mo", "--results", results, "--n-trials", str(finished + 1), "--workers", "1", "--threads", "1",
        "-q", check=True)
    after = _check_pruned_study(results, finished + 1)
    new = after[after["trial"] == finished].iloc[0]
    assert new["state"] == "PRUNED" and new["epochs"] == 1
    copy = optuna.load_study(study_name="mo", storage=storage).trials[finished]
    assert copy.params == worst.params and copy.user_attrs["rung_001"] == pytest.approx(worst.user_attrs["rung_001"])
    columns = ["trial", "state", "epochs", "val_accuracy", "spikes_per_sample", "test_accuracy"]
    kept = after[after["trial"] < finished][columns].sort_values("trial").reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before[columns].sort_values("trial").reset_index(drop=True))


# -- Ray, end to end -------------------------------------------------------------------------------------------
@pytest.mark.ray
def test_ray_prunes_and_completes_the_budget_and_resume_keeps_pruned_trials(tmp_path, monkeypatch):
    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)
    study, results = _study(tmp_path, backend="ray"), tmp_path / "results"
    cli("launch", study, "--results", results, "--cpus-per-trial", "1", "--threads", "1", "-q", env=RAY_ENV,
        check=True)
    before = _check_pruned_study(results, 8)
    moasha = json.loads((results / "mo" / "ray" / "moasha.json").read_text())
    assert {int(n) for n in moasha["stopped"]} == set(before.loc[before["state"] == "PRUNED", "trial"])
    pruned_epochs = before.set_index("trial").loc[[int(n) for n in moasha["stopped"]], "epochs"]
    assert list(pruned_epochs) == list(moasha["stopped"].values())
    # the searcher told Optuna "pruned", not "complete" with an epoch's metrics (its state, as Tune saved it)
    (searcher_state,) = (results / "mo" / "ray").glob("searcher-state-*.pkl")
    told = pickle.loads(searcher_state.read_bytes())["_ot_study"].get_trials(deepcopy=False)
    assert sum(t.state == optuna.trial.TrialState.PRUNED for t in told) == len(moasha["stopped"])
    assert all(len(t.values) == 2 for t in told if t.state == optuna.trial.TrialState.COMPLETE)

    # a restored experiment that had ended starts nothing and keeps the pruned trials as they were
    cli("resume", "mo", "--results", results, "-q", env=RAY_ENV, check=True)
    after = open_study("mo", results=str(results)).trials()
    pd.testing.assert_frame_equal(after.drop(columns=["duration_s"]), before.drop(columns=["duration_s"]))
