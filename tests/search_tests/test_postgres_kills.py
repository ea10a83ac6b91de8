"""kill -9 on PostgreSQL, as a user meets it (issue 15 item 7): CLI subprocesses, a real server on 127.0.0.1:5432,
a uuid study name per test, deleted afterwards. Trials of 4 epochs are held after their epoch 2 (helpers.Hold) and
killed there."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from helpers import Hold, cli, cli_background, write_study

pytestmark = pytest.mark.postgres
URL = "postgresql://postgres@127.0.0.1:5432/test"
TRAIN = {"epochs": 4, "hidden": [32], "timesteps": 2, "batch_size": 128}
HELD_AT = 2  # the epoch after which the runs to kill are held
FAST_BEAT = {"interval": 1, "grace_period": 3}
CHECKPOINT = "checkpoint.pt"


@pytest.fixture
def pg_name():
    pytest.importorskip("psycopg")
    name = f"pg_{uuid.uuid4().hex[:10]}"
    yield name
    try:
        optuna.delete_study(study_name=name, storage=URL)
    except KeyError:
        pass


def _popen(*args: object, hold: Hold | None = None) -> subprocess.Popen:
    return cli_background(*args, quiet_output=False, env=hold.env if hold else None)


def _trials(name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=URL).get_trials()
    except KeyError:
        return []


def _retries_of(trials, number: int) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.system_attrs.get("failed_trial") == number]


def test_one_of_two_workers_killed_mid_trial_the_other_retries_it_from_its_checkpoint(tmp_path, pg_name):
    study = write_study(tmp_path, name=pg_name, n_trials=4, train=TRAIN, heartbeat=FAST_BEAT)
    results = tmp_path / "r"
    hold = Hold(tmp_path / "hold", epoch=HELD_AT)  # the baseline goes through; two sampled trials are held
    launch = _popen("launch", study, "--storage", URL, "--results", results, "--workers", "2", "-q", hold=hold)
    try:
        held = hold.wait_for(lambda h: len(h) == 2, launch, "a trial on each worker")  # both workers busy
        victim_tag, victim_pid = sorted(held.items())[0]
        victim = _trials(pg_name)[int(victim_tag)]
        assert victim.state == TrialState.RUNNING and victim.user_attrs["worker"].endswith(f":{victim_pid}")
        assert (results / pg_name / "trials" / victim_tag / CHECKPOINT).exists()
        os.kill(victim_pid, signal.SIGKILL)  # that trial's worker process
        done_before = {t.number: t.values for t in _trials(pg_name) if t.state == TrialState.COMPLETE}
        assert list(done_before) == [0]  # the baseline, finished before its worker took a second trial
        hold.release()
        out, err = launch.communicate(timeout=300)
    finally:
        if launch.poll() is None:
            launch.kill()
    # the survivor went on to the budget; the launcher reports the lost worker in one line
    assert launch.returncode == 2 and err.strip().count("\n") == 0 and "1 of 2 workers" in err, err
    trials = _trials(pg_name)
    assert trials[victim.number].state == TrialState.FAIL  # failed by the heartbeat, not left RUNNING
    retries = _retries_of(trials, victim.number)
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == victim.params
    assert retries[0].user_attrs["result"]["resumed_from_epoch"] == HELD_AT  # from its checkpoint, not from scratch
    assert retries[0].user_attrs["worker"] != victim.user_attrs["worker"]  # the other worker took it over
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert 4 <= len(complete) <= 5  # the budget (two workers finishing at once may each start one more)
    for number, values in done_before.items():  # nothing finished was lost or changed
        assert trials[number].state == TrialState.COMPLETE and trials[number].values == values
    assert sum(bool(t.user_attrs.get("is_baseline")) and "failed_trial" not in t.system_attrs for t in trials) == 1


def test_population_killed_and_resumed_meets_the_launch_budget(tmp_path, pg_name):
    # the file asks 2 trials; the launch 4: the resume below is given neither, and must finish the launch's 4
    study = write_study(tmp_path, name=pg_name, n_trials=2, train=TRAIN, heartbeat=FAST_BEAT)
    results = tmp_path / "r"
    # the baseline done, two members training together, held after their epoch 2 and killed there
    Hold(tmp_path / "hold", epoch=HELD_AT).kill_launch_when(
        lambda held: len(held) == 2, study, "--storage", URL, "--results", results, "--n-trials", "4",
        "--population", "2", "-q", what="the population")
    killed = [t for t in _trials(pg_name) if t.state == TrialState.RUNNING]
    assert [t.number for t in killed] == [1, 2] and all(
        (results / pg_name / "trials" / f"{t.number:05d}" / CHECKPOINT).exists() for t in killed)

    proc = cli("resume", study, "--storage", URL, "--results", results, "-q")
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr  # item 6: Optuna's experimental-API warnings stay out of the output
    trials = _trials(pg_name)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4  # the launch's --n-trials, not the file's
    for t in killed:
        assert trials[t.number].state == TrialState.FAIL
        retries = _retries_of(trials, t.number)
        assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].params == t.params
        result = retries[0].user_attrs["result"]
        # from the member's checkpoint of the epoch the population was killed after, to the last epoch
        assert result["resumed_from_epoch"] == HELD_AT and result["epochs"] == TRAIN["epochs"]


def test_two_launches_started_together_queue_one_baseline(tmp_path, pg_name):
    study = write_study(tmp_path, name=pg_name, n_trials=3)
    procs = [_popen("launch", study, "--storage", URL, "--results", tmp_path / f"r{i}", "-q") for i in range(2)]
    outcomes = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outcomes):
        assert p.returncode == 0, err
        assert "Warning" not in err
    trials = _trials(pg_name)
    assert sum(bool(t.user_attrs.get("is_baseline")) for t in trials) == 1
    assert trials[0].user_attrs.get("is_baseline")  # asked before any sampled trial
    assert 3 <= sum(t.state == TrialState.COMPLETE for t in trials) <= 4
    assert optuna.load_study(study_name=pg_name, storage=URL).metric_names == ["val_accuracy", "spikes_per_sample"]


def test_killed_pbt_population_resumes_on_postgresql_nothing_lost_nothing_doubled(tmp_path, pg_name):
    # held after epoch 2, its first exploit step: killed with every member's checkpoint of that step
    space = {"params": {"lambda_max": {"type": "float", "low": 0.05, "high": 5.0, "log": True},
                        "lr": {"type": "float", "low": 0.0005, "high": 0.01, "log": True}}}
    pbt = {"interval": 2, "fraction": 0.25, "perturb": {"lambda_max": [0.8, 1.25], "lr": [0.8, 1.25]}}
    study = write_study(tmp_path, name=pg_name, n_trials=4, train=TRAIN, heartbeat=FAST_BEAT, search_space=space,
                        population={"size": 3}, pbt=pbt)
    results = tmp_path / "r"
    # the baseline done, three members together, held after epoch 2 and killed there
    Hold(tmp_path / "hold", epoch=HELD_AT).kill_launch_when(
        lambda held: len(held) == 3, study, "--storage", URL, "--results", results, "-q", what="the population")
    killed = [t for t in _trials(pg_name) if t.state == TrialState.RUNNING]
    assert [t.number for t in killed] == [1, 2, 3]
    proc = cli("resume", study, "--storage", URL, "--results", results, "-q")
    assert proc.returncode == 0, proc.stderr
    trials = _trials(pg_name)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4  # the budget: no member doubled
    for t in killed:
        retries = _retries_of(trials, t.number)
        assert trials[t.number].state == TrialState.FAIL and len(retries) == 1
        retry = retries[0]
        assert retry.state == TrialState.COMPLETE and retry.params == t.params
        assert retry.user_attrs["result"]["resumed_from_epoch"] == HELD_AT
        assert retry.user_attrs["result"]["epochs"] == TRAIN["epochs"]
        assert all("pbt" in retry.user_attrs[f"epoch_{e:03d}"] for e in range(1, TRAIN["epochs"] + 1))  # every epoch
        config = retry.user_attrs["config"]
        assert config["schedule"] == config["lr_schedule"] == "piecewise"
        last = retry.user_attrs[f"epoch_{TRAIN['epochs']:03d}"]
        assert (config["lambda_points"][-1][1], config["lr_points"][-1][1]) == (last["lambda"], last["lr"])
