"""A study remembers its launch (issue 15 item 4): resume and worker run it as launched unless told otherwise, and a
study file that no longer matches it is one line and exit 2. Fast: tiny trials on the embedded journal."""

from __future__ import annotations

import optuna
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from helpers import TINY_SPACE, TINY_TRAIN, cli, cli_main, tree_snapshot, write_study


def _stored(results, name="tiny") -> optuna.Study:
    journal = JournalFileBackend(str(results / name / "study.journal"))
    return optuna.load_study(study_name=name, storage=JournalStorage(journal))


def _complete(study: optuna.Study) -> int:
    return len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))


def test_resume_and_worker_keep_the_launch_flags_unless_given(tmp_path):
    # launch and worker as a user runs them; the resumes in this process (test_backend_contract runs one as a user)
    study = write_study(tmp_path, n_trials=4)
    results = tmp_path / "r"
    cli("launch", study, "--results", results, "--n-trials", "2", "-q", check=True)
    assert yaml.safe_load((results / "tiny" / "launch.yaml").read_text()) == {"n_trials": 2}
    assert _stored(results).user_attrs["sparsity_search_launch"] == {"n_trials": 2}
    assert _stored(results).metric_names == ["val_accuracy", "spikes_per_sample"]  # item 6: dashboards show them

    cli_main("resume", study, "--results", results, "-q", check=True)
    cli("worker", "tiny", "--results", results, "-q", check=True)
    assert _complete(_stored(results)) == 2  # the file's 4 did not win over the launch's --n-trials 2

    for _ in range(3):  # trials of killed workers (failed, no reason): not "every trial fails" for a budget of 3
        _stored(results).add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    cli_main("resume", study, "--results", results, "--n-trials", "3", "-q", check=True)  # given again: it wins...
    assert _complete(_stored(results)) == 3
    cli_main("resume", "tiny", "--results", results, "-q", check=True)  # ...and is recorded for the next resume
    assert _complete(_stored(results)) == 3

    # a study launched before launch records existed: no launch.yaml, no attribute; it resumes as the file says
    (results / "tiny" / "launch.yaml").unlink()
    _stored(results).set_user_attr("sparsity_search_launch", None)
    cli_main("resume", study, "--results", results, "-q", check=True)
    assert _complete(_stored(results)) == 4

    # a queued retry of an interrupted trial runs even though the budget is met (it stayed WAITING for good)
    done = _stored(results).get_trials(states=(optuna.trial.TrialState.COMPLETE,))[-1]
    _stored(results).add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=done.params, distributions=done.distributions,
        user_attrs={"origin": done.number}, system_attrs={"failed_trial": done.number}))
    cli_main("resume", study, "--results", results, "-q", check=True)
    assert _stored(results).trials[-1].state == optuna.trial.TrialState.COMPLETE


STOPPING = {"kind": "moasha", "mode": "stopping"}
CONFLICTS = [
    ({"search_space": {"params": {**TINY_SPACE["params"],
                                  "lambda_max": {"type": "float", "low": 0.05, "high": 9.0, "log": True}}}},
     "search_space"),
    ({"objectives": ["val_accuracy", "energy_uj"]}, "objectives"),
    ({"train": {**TINY_TRAIN, "epochs": 3}}, "train.epochs"),
    # a study launched when stopping was the default mode recorded it: a file relying on today's default says so
    ({"early_stopping": {"kind": "moasha", "mode": "promotion"}}, "early_stopping.mode"),
]


def test_a_study_file_that_no_longer_matches_the_launch_is_one_line(tmp_path):
    results = tmp_path / "r"
    cli("launch", write_study(tmp_path, n_trials=1, early_stopping=STOPPING), "--results", results, "-q", check=True)
    before = tree_snapshot(results)
    for change, field in CONFLICTS:
        changed = write_study(tmp_path, n_trials=1, **{"early_stopping": STOPPING, **change})
        for command in ("resume", "launch", "pareto"):
            proc = cli_main(command, changed, "--results", results)
            assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
            assert f"{field}: " in proc.stderr and "was launched with " in proc.stderr, proc.stderr
    assert "early_stopping.mode: study 'tiny' in" in proc.stderr
    assert "'stopping' (this file: 'promotion')" in proc.stderr
    proc = cli_main("resume", write_study(tmp_path, n_trials=1, early_stopping=STOPPING), "--results", results,
                    "--backend", "ray")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--backend:" in proc.stderr, proc.stderr
    assert "launched on optuna" in proc.stderr
    assert tree_snapshot(results) == before  # nothing stored, nothing lost


def test_recorded_gpus_on_a_machine_without_them_say_they_were_recorded(tmp_path):
    results = tmp_path / "r"
    study = write_study(tmp_path, n_trials=1)
    cli("launch", study, "--results", results, "-q", check=True)
    _stored(results).set_user_attr("sparsity_search_launch", {"gpus": "auto", "n_trials": 2})  # a GPU machine's
    proc = cli_main("resume", study, "--results", results, "-q")
    if proc.returncode == 0:
        pytest.skip("this machine has a GPU: the recorded --gpus auto applies")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--gpus:" in proc.stderr and "recorded at launch" in proc.stderr
    # a typed --device cpu (or worker layout) sets the recorded GPUs aside; the recorded budget still holds
    cli_main("resume", study, "--results", results, "--device", "cpu", "-q", check=True)
    assert _complete(_stored(results)) == 2
    assert _stored(results).user_attrs["sparsity_search_launch"] == {"n_trials": 2, "device": "cpu"}
