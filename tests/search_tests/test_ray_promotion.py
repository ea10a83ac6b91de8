"""Promotion-type MO-ASHA on the Ray backend: the scheduler's decisions by hand, then one study from the CLI.

As in test_promotion.py the study searches the learning rate over three decades with reduction factor 2 and rungs at
epochs 1 and 2 of 4. The hand-driven tests use a stand-in for Tune's controller (trials with a status, the searcher
chain, stop_trial) and the real limiter.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest

from helpers import cli, write_study
from ray_helpers import RAY_ENV
from sparsity_search.api import locate, open_study

pytestmark = pytest.mark.ray

MAX_EPOCHS, RUNGS = 4, (1, 2)
SPACE = {"params": {"lambda_max": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
                    "lr": {"type": "float", "low": 1e-5, "high": 3e-2, "log": True}}}
TRAIN = {"epochs": MAX_EPOCHS, "hidden": [32], "timesteps": 2, "batch_size": 128}
PROMOTION = {"kind": "moasha", "min_epochs": 1, "reduction_factor": 2, "mode": "promotion"}


def _study(folder, n_trials=8, **changes):
    return write_study(folder, name="rp", n_trials=n_trials, search_space=SPACE, train=dict(TRAIN), backend="ray",
                       **{"early_stopping": PROMOTION, **changes})


# -- the scheduler, driven by hand ------------------------------------------------------------------------------
class _Controller:
    """What the scheduler uses of Tune's controller: trials (NEW: not created yet), the searcher chain, stop_trial,
    a status change."""

    def __init__(self, trials, limiter):
        self.trials, self.finished = trials, False
        self.search_alg = SimpleNamespace(searcher=limiter, is_finished=lambda: self.finished)

    def get_trials(self):
        return [t for t in self.trials if t.status != "NEW"]

    def stop_trial(self, trial):
        self.search_alg.searcher.on_trial_complete(trial.trial_id)
        trial.status = "TERMINATED"

    def _set_trial_status(self, trial, status):
        trial.status = status


def _setup(tmp_path, n=5, max_concurrent=2, **changes):
    from ray.tune.search import Searcher

    from sparsity_search.search.ray.limiter import RunningLimiter
    from sparsity_search.search.ray.promotion import PromotionScheduler

    class Numbered(Searcher):
        def suggest(self, trial_id):
            return {}

        def on_trial_complete(self, trial_id, result=None, error=False):
            pass

    spec, _ = locate(_study(tmp_path, **changes), results=str(tmp_path / "results"))
    limiter = RunningLimiter(Numbered(), max_concurrent=max_concurrent)
    folder, staging = tmp_path / "exp", tmp_path / "exp-staging"
    trials = []
    for number in range(n):
        config = {"is_baseline": True} if number == 0 else {"lambda_max": 0.5, "lr": 0.01, "is_baseline": False}
        path, staged = folder / f"trial_{number}", tmp_path / "staging" / f"trial_{number}"
        path.mkdir(parents=True)
        staged.mkdir(parents=True)
        trials.append(SimpleNamespace(config={**config, "trial_number": number}, trial_id=f"t{number}",
                                      status="NEW", has_reported_at_least_once=False, path=str(path),
                                      local_path=str(staged),
                                      storage=SimpleNamespace(experiment_fs_path=str(folder),
                                                              experiment_driver_staging_path=str(staging))))
    sched = PromotionScheduler(spec)
    controller = _Controller(trials, limiter)
    for trial in trials:
        sched.on_trial_add(controller, trial)
    return sched, controller, limiter, trials, folder


def _at(sched, controller, trial, epoch, accuracy, spikes, synced=True):
    """Trial reports an epoch; a PAUSE is carried out as Tune does (status PAUSED once saved). The row goes to the
    staging result.json, and with ``synced`` at once to the results folder's (else it waits for the next snapshot)."""
    trial.status = "RUNNING"
    result = {"epoch": epoch, "val_accuracy": accuracy, "spikes_per_sample": spikes, "test_accuracy": None}
    trial.has_reported_at_least_once = True
    with open(f"{trial.local_path}/result.json", "a") as f:
        f.write(json.dumps(result) + "\n")
    if synced:
        _sync(trial)
    decision = sched.on_trial_result(controller, trial, result)
    if decision == "PAUSE":
        trial.status = "PAUSED"
    return decision


def _sync(trial):
    shutil.copy(f"{trial.local_path}/result.json", f"{trial.path}/result.json")


def _start(controller, *trials):
    for trial in trials:
        assert controller.search_alg.searcher.suggest(trial.trial_id) is not None, f"{trial.trial_id} got no slot"
        trial.status = "RUNNING"


def test_pause_at_a_rung_resume_the_promotable_one_first_and_never_an_unpromotable_one(tmp_path):
    from sparsity_search.search.ray.scheduler import paused_trials

    sched, ctl, limiter, (base, t1, t2, t3, t4), exp = _setup(tmp_path)
    _start(ctl, base, t1)
    assert limiter.suggest("t2") is None  # two slots, both held
    assert _at(sched, ctl, base, 1, 0.05, 1e6) == "CONTINUE"  # the baseline is never paused, its record not counted
    assert _at(sched, ctl, t1, 1, 0.90, 100, synced=False) == "PAUSE"  # alone at the rung: 1 // 2 = 0 promotable
    assert paused_trials(exp) == {1: 1} and limiter.holding() == 1  # its slot is free
    # Tune copies its staging folder over the experiment folder with every snapshot: both copies are current
    assert (exp / "moasha.json").read_text() == (tmp_path / "exp-staging" / "moasha.json").read_text()
    assert sched.choose_trial_to_run(ctl) is None  # nothing pending, and t1 is not promotable
    _start(ctl, t2)
    assert _at(sched, ctl, t2, 1, 0.50, 300) == "PAUSE"  # t1 dominates it: t1 is now the rung's top
    assert limiter.holding() == 2  # base, and t1 holds the slot it will run in: no new trial takes it
    assert limiter.suggest("t3") is None
    base.status = "TERMINATED"
    limiter.on_trial_complete("t0")
    assert sched.choose_trial_to_run(ctl) is None  # t1's rung row has not reached the results folder yet
    _sync(t1)
    t3.status = "PENDING"  # a new trial waiting, too
    assert sched.choose_trial_to_run(ctl) is t1  # the promotable paused trial before the pending one
    assert paused_trials(exp) == {2: 1}
    t1.status = "PENDING"  # Tune restarts it from its rung checkpoint
    assert sched.choose_trial_to_run(ctl) is t1  # idempotent until it runs; t2 is never chosen
    t1.status = "RUNNING"
    assert sched.choose_trial_to_run(ctl) is t3
    assert _at(sched, ctl, t3, 1, 0.95, 50) == "CONTINUE"  # top of 3 records at its arrival: trains on
    assert _at(sched, ctl, t1, 2, 0.92, 90) == "PAUSE"  # alone at rung 2
    assert _at(sched, ctl, t3, 2, 0.96, 40) == "CONTINUE"  # dominates t1 at rung 2
    assert sched.choose_trial_to_run(ctl) is None  # t4 not created yet; t1 (rung 2), t2 (rung 1) not promotable


def test_all_slots_paused_still_leaves_room_for_a_new_trial(tmp_path):
    """Tune's ConcurrencyLimiter counts paused trials: with both slots paused it never suggests again."""
    from ray.tune.search import ConcurrencyLimiter

    sched, ctl, limiter, (base, t1, t2, t3, t4), _ = _setup(tmp_path, max_concurrent=2)
    plain = ConcurrencyLimiter(limiter.searcher, max_concurrent=2)
    _start(ctl, t1, t2)
    assert plain.suggest("t1") is not None and plain.suggest("t2") is not None
    assert _at(sched, ctl, t1, 1, 0.90, 100) == "PAUSE"  # alone at rung 1
    assert _at(sched, ctl, t2, 1, 0.95, 50) == "CONTINUE"  # tops rung 1
    assert _at(sched, ctl, t2, 2, 0.95, 50) == "PAUSE"  # alone at rung 2
    assert sched._promotable() is None  # rung 1's top (t2) waits at rung 2; rung 2 has one record
    assert plain.suggest("t3") is None  # the deadlock
    assert limiter.holding() == 0 and limiter.suggest("t3") is not None


def test_the_end_stops_paused_trials_as_pruned_and_restore_repauses_waiting_ones(tmp_path):
    from sparsity_search.search.ray.scheduler import paused_trials, stopped_trials

    sched, ctl, limiter, (base, t1, t2, t3, t4), exp = _setup(tmp_path)
    _start(ctl, t1, t2)
    assert _at(sched, ctl, t1, 1, 0.90, 100) == "PAUSE"
    assert _at(sched, ctl, t2, 1, 0.95, 50) == "CONTINUE"
    assert paused_trials(exp) == {1: 1}

    # the driver dies; Tune restores every unfinished trial as PENDING, the scheduler from moasha.json
    restored = pickle.loads(pickle.dumps(sched))
    assert restored._paused == {}
    t1.status, t2.status, t3.status = "PENDING", "PENDING", "PENDING"  # t3: a new trial, no results
    sched_ctl = _Controller([base, t1, t2, t3], limiter)
    for trial in sched_ctl.trials:
        restored.on_trial_add(sched_ctl, trial)
    assert restored.choose_trial_to_run(sched_ctl) is t2  # t1 is put back to PAUSED, not started
    assert t1.status == "PAUSED" and paused_trials(exp) == {1: 1}

    # budget spent, nothing runs, t1 can never be promoted: it ends, shown PRUNED at its rung
    base.status, t2.status, t3.status = "TERMINATED", "TERMINATED", "TERMINATED"
    assert restored.choose_trial_to_run(sched_ctl) is None and t1.status == "PAUSED"  # the searcher is not done
    sched_ctl.finished = True
    assert restored.choose_trial_to_run(sched_ctl) is None
    assert t1.status == "TERMINATED" and "t1" not in limiter.live_trials
    assert paused_trials(exp) == {} and stopped_trials(exp) == {1: 1}

    # Tune's snapshot still has t1 PAUSED: a restore requeues it, and it is stopped again before it runs
    again = pickle.loads(pickle.dumps(restored))
    t1.status = "PENDING"
    for trial in sched_ctl.trials:
        again.on_trial_add(sched_ctl, trial)
    assert again.choose_trial_to_run(sched_ctl) is None and t1.status == "TERMINATED"
    assert stopped_trials(exp) == {1: 1}


def test_numbers_of_trials_the_snapshot_lost_are_forgotten(tmp_path):
    from sparsity_search.search.ray.scheduler import paused_trials

    sched, ctl, limiter, (base, t1, t2, t3, t4), exp = _setup(tmp_path)
    _start(ctl, t1, t2)
    assert _at(sched, ctl, t1, 1, 0.90, 100) == "PAUSE"
    assert _at(sched, ctl, t2, 1, 0.50, 300) == "PAUSE"
    restored = pickle.loads(pickle.dumps(sched))
    t1.status, t1.has_reported_at_least_once = "PENDING", False  # the snapshot had it before its first result
    t2.status = "NEW"  # the snapshot never had it: the searcher will create number 2 again
    for trial in ctl.get_trials():
        restored.on_trial_add(ctl, trial)
    assert restored.choose_trial_to_run(ctl) is t1  # it trains again from the start and decides again
    assert paused_trials(exp) == {} and json.loads((exp / "moasha.json").read_text())["rungs"]["1"] == {}


def test_a_scheduler_pickled_by_an_older_version_restores(tmp_path):
    """tuner.pkl keeps the scheduler object of the launch: one pickled before the staging copy still loads."""
    from sparsity_search.search.ray.scheduler import MOASHAScheduler

    sched, ctl, limiter, (base, t1, t2, t3, t4), exp = _setup(tmp_path)
    _start(ctl, t1)
    assert _at(sched, ctl, t1, 1, 0.90, 100) == "PAUSE"
    older = {k: v for k, v in vars(sched).items() if k not in ("_state_paths", "_paused")}
    restored = MOASHAScheduler.__new__(type(sched))
    restored.__setstate__({**older, "_state_path": None})
    restored.on_trial_add(ctl, t1)
    assert restored._paused == {1: 1} and not hasattr(restored, "_state_path")


def test_a_restored_promotable_trial_resumes_though_its_rows_never_reached_the_results_folder(tmp_path):
    """Killed before the rung row was copied: the new driver's staging copy starts empty, so nothing more can come,
    and waiting for the row would hang the sweep."""
    sched, ctl, limiter, (base, t1, t2, t3, t4), exp = _setup(tmp_path)
    _start(ctl, t1, t2)
    assert _at(sched, ctl, t1, 1, 0.90, 100, synced=False) == "PAUSE"
    assert _at(sched, ctl, t2, 1, 0.50, 300, synced=False) == "PAUSE"  # t1 is promotable now
    assert sched.choose_trial_to_run(ctl) is None  # its row is not in the results folder yet
    restored = pickle.loads(pickle.dumps(sched))
    for trial in (t1, t2):
        trial.status = "PENDING"
        Path(trial.local_path, "result.json").unlink()  # a new driver session: a new staging folder
    for trial in ctl.trials:
        restored.on_trial_add(ctl, trial)
    assert restored.choose_trial_to_run(ctl) is t1 and t2.status == "PAUSED"


def test_constraint_aware_ranking_promotes_the_feasible_trial(tmp_path):
    sched, ctl, limiter, (base, t1, t2, t3, t4), _ = _setup(tmp_path, constraints={"min_accuracy": 0.8})
    _start(ctl, t1, t2)
    assert _at(sched, ctl, t1, 1, 0.79, 1.0) == "PAUSE"
    # without limits the two tie on hypervolume and the earlier record (t1) would be the top
    assert _at(sched, ctl, t2, 1, 0.81, 100.0) == "CONTINUE"


def test_the_trainable_checkpoints_at_every_rung_under_promotion_only(tmp_path):
    from sparsity_search.search.ray.trainable import pause_epochs

    spec, _ = locate(_study(tmp_path), results=str(tmp_path / "r"))
    assert pause_epochs(spec, {"lambda_max": 0.5, "lr": 0.01, "is_baseline": False}) == set(RUNGS)
    assert pause_epochs(spec, {"is_baseline": True}) == set()
    stopping, _ = locate(_study(tmp_path, early_stopping={**PROMOTION, "mode": "stopping"}), results=str(tmp_path))
    assert pause_epochs(stopping, {"lambda_max": 0.5, "lr": 0.01, "is_baseline": False}) == set()


def test_records_show_waiting_trials_paused_and_ended_ones_pruned_at_their_rung(tmp_path):
    from sparsity_search.search.ray.backend import RayBackend

    spec, settings = locate(_study(tmp_path), results=str(tmp_path / "results"))
    exp = settings.results_dir / "ray"
    for number in (1, 2):
        folder = exp / f"run_trial_{number}"
        folder.mkdir(parents=True)
        config = {"lambda_max": 0.5, "lr": 0.01, "is_baseline": False, "trial_number": number}
        (folder / "params.json").write_text(json.dumps(config))
        row = {"epoch": 1, "val_accuracy": 0.5 + number / 10, "spikes_per_sample": 40.0, "test_accuracy": None,
               "training_iteration": 1}
        (folder / "result.json").write_text(json.dumps(row) + "\n")
    (exp / "moasha.json").write_text(json.dumps({"rungs": {}, "stopped": {"2": 1}, "paused": {"1": 1}}))
    paused, ended = RayBackend().records(spec, settings)
    assert (paused.number, paused.state, paused.epochs) == (1, "PAUSED", 1)
    assert paused.metrics["val_accuracy"] == pytest.approx(0.6)
    assert (ended.number, ended.state, ended.epochs) == (2, "PRUNED", 1)


# -- one study from the CLI -------------------------------------------------------------------------------------
def test_a_promotion_study_pauses_promotes_from_the_rung_checkpoint_ends_and_resumes_unchanged(tmp_path, monkeypatch):
    from sparsity_search.search.ray.folders import read_results

    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)
    # Two slots with the baseline in one: the first two sampled trials to pause fill both for good under Tune's
    # ConcurrencyLimiter (only a later arrival at their rungs could promote one)
    study, results = _study(tmp_path, ray={"max_concurrent": 2}), tmp_path / "results"
    cli("launch", study, "--results", results, "--cpus-per-trial", "1", "--threads", "1", "-q", env=RAY_ENV,
        check=True)
    exp = results / "rp" / "ray"
    table = open_study("rp", results=str(results)).trials()
    assert sorted(table["trial"]) == list(range(8))  # the budget, the baseline included; one row per trial
    assert set(table["state"]) <= {"COMPLETE", "PRUNED"}
    moasha = json.loads((exp / "moasha.json").read_text())
    assert moasha["paused"] == {}
    pruned = table[table["state"] == "PRUNED"]
    assert set(pruned["trial"]) == {int(n) for n in moasha["stopped"]} and len(pruned) >= 1
    assert pruned["epochs"].isin(RUNGS).all() and pruned["test_accuracy"].isna().all()
    assert pruned[["val_accuracy", "spikes_per_sample"]].notna().all().all()
    # the searcher told Optuna "pruned" for them (its state, as Tune saved it), "complete" for the others
    (searcher_state,) = exp.glob("searcher-state-*.pkl")
    told = pickle.loads(searcher_state.read_bytes())["_ot_study"].get_trials(deepcopy=False)
    assert sum(t.state == optuna.trial.TrialState.PRUNED for t in told) == len(pruned)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in told) == len(table) - len(pruned) - 1
    done = table[table["state"] == "COMPLETE"]
    assert (done["epochs"] == MAX_EPOCHS).all() and done["test_accuracy"].notna().all()

    # promoted trials: one folder, epochs 1..4 once each, the final row resumed at the rung it paused at
    promoted = {}
    for folder in exp.iterdir():
        if not (folder / "params.json").exists():
            continue
        number = json.loads((folder / "params.json").read_text())["trial_number"]
        rows = read_results(folder / "result.json")
        final = [r for r in rows if r.get("final")]
        if final and final[-1]["resumed_from_epoch"] > 0:
            promoted[number] = final[-1]["resumed_from_epoch"]
            assert [r["epoch"] for r in rows if "epoch" in r and not r.get("final")] == list(range(1, 5))
    assert promoted, "no paused trial was promoted and completed"
    assert set(promoted.values()) <= set(RUNGS) and set(promoted) <= set(done["trial"])

    # a restored experiment that had ended starts nothing and keeps every trial as it was
    cli("resume", "rp", "--results", results, "-q", env=RAY_ENV, check=True)
    after = open_study("rp", results=str(results)).trials()
    pd.testing.assert_frame_equal(after.drop(columns=["duration_s"]), table.drop(columns=["duration_s"]))
