"""One contract, every backend: the same checks over a tiny study launched from the CLI on each.

Each backend's study is launched once per session (``conftest.tiny_launch``); the checks only read it, and the
resume check expects it to change nothing.
"""

import json

import numpy as np
import pytest

from helpers import cli, cli_main
from ray_helpers import RAY_ENV
from sparsity_search.api import open_study
from sparsity_search.search.records import METRIC_COLUMNS

BACKENDS = ["optuna", pytest.param("ray", marks=pytest.mark.ray)]
PARAMS = ("lambda_max", "schedule", "temperature")  # helpers.TINY_SPACE


@pytest.fixture(scope="module", params=BACKENDS)
def launched(request, tiny_launch):
    """(backend, results folder, launch's stdout) of a 4-trial study run to its budget."""
    return (request.param, *tiny_launch(request.param))


def _study(launched):
    _, results, _ = launched
    return open_study("tiny", results=str(results))


def test_launch_runs_the_budget_with_the_baseline_first(launched):
    backend, _, out = launched
    study = _study(launched)
    table = study.trials()
    assert study.spec.backend == backend  # read back from the launch's snapshot
    assert list(table["trial"]) == list(range(study.spec.n_trials)) and (table["state"] == "COMPLETE").all()
    base = table[table["is_baseline"]]
    assert list(base["trial"]) == [0] and base["params_lambda_max"].iloc[0] == 0.0
    assert base["spike_reduction_pct"].iloc[0] == pytest.approx(0.0)
    assert table[["val_accuracy", "test_accuracy", "spikes_per_sample"]].notna().all().all()
    assert (table["epochs"] == 2).all() and table["fail_reason"].eq("").all()
    assert f"{len(study.pareto())} Pareto-optimal trials" in out


def test_trial_table_has_the_one_schema(launched):
    table = _study(launched).trials()
    # `pbt` says whether a trial's schedule was learned; per-layer spikes follow the totals (the tiny MLP's one layer)
    assert list(table.columns) == ["trial", "state", "is_baseline", "pbt", *(f"params_{p}" for p in PARAMS),
                                   *METRIC_COLUMNS, "spikes_per_sample_fc1", "epochs", "duration_s", "fail_reason", "is_feasible",
                                   "pareto_rank", "is_pareto", "accuracy_delta", "spike_reduction_pct"]


def test_each_trial_records_the_config_it_trained(launched):
    study = _study(launched)
    for row in study.trials().itertuples():
        cfg = study.trial_config(row.trial)
        assert cfg.lambda_max == row.params_lambda_max and cfg.schedule == row.params_schedule
        assert cfg.epochs == 2 and cfg.checkpoint_dir == ""


def test_pareto_front_is_the_non_dominated_complete_trials(launched):
    study = _study(launched)
    table = study.trials()
    done = table[table["state"] == "COMPLETE"]
    points = np.column_stack([-done["val_accuracy"], done["spikes_per_sample"]])  # both minimised

    def dominated(p):
        return bool(((points <= p).all(axis=1) & (points < p).any(axis=1)).any())

    expected = {int(t) for t, p in zip(done["trial"], points) if not dominated(p)}
    front = study.pareto()
    assert len(front) >= 1 and set(front["trial"]) == expected
    assert set(table.loc[table["is_pareto"], "trial"]) == expected
    assert list(front["val_accuracy"]) == sorted(front["val_accuracy"], reverse=True)
    shown = json.loads(cli_main("pareto", "tiny", "--results", launched[1], "--format", "json", check=True).stdout)
    assert {row["trial"] for row in shown} == expected


def test_resume_of_a_finished_study_runs_no_trial(launched):
    study = _study(launched)
    before = study.trials()
    cli("resume", "tiny", "--results", launched[1], "-q", env=RAY_ENV, check=True)
    after = _study(launched).trials()
    assert list(after["trial"]) == list(before["trial"]) and (after["state"] == "COMPLETE").all()
    assert after["val_accuracy"].tolist() == before["val_accuracy"].tolist()
    status = cli_main("status", "tiny", "--results", launched[1], check=True).stdout
    assert f"complete={study.spec.n_trials}," in status and "baseline: trial 0" in status
