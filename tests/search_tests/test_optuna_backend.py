"""The Optuna backend end to end, as a user drives it: CLI subprocesses on tiny digits studies."""

import json
import uuid

import optuna
import pandas as pd
import pytest
import yaml

from helpers import TINY_TRAIN, TINY_TRIALS, Hold, cli, cli_main, write_study
from sparsity_search.api import open_study


def _trials(results, name="tiny"):
    return open_study(name, results=str(results)).trials()


def test_launch_pareto_query_export_train_round_trip(tiny_launch, tmp_path):
    results, out = tiny_launch("optuna")  # launched from the CLI, as a user launches
    assert "Pareto-optimal" in out

    table = _trials(results)
    assert (table["state"] == "COMPLETE").sum() == TINY_TRIALS
    base = table[table["is_baseline"]]
    assert len(base) == 1 and base["trial"].iloc[0] == 0 and base["params_lambda_max"].iloc[0] == 0.0
    assert base["spike_reduction_pct"].iloc[0] == pytest.approx(0.0)
    assert table["pareto_rank"].min() == 0 and table["is_pareto"].any()

    shown = cli("pareto", "tiny", "--results", results, check=True).stdout
    for column in ("val_accuracy", "spikes_per_sample", "spike_reduction_pct", "accuracy_delta", "pareto_rank"):
        assert column in shown

    query = cli("query", "tiny", "--results", results, "--max-accuracy-drop", "100",
                "--export-config", tmp_path / "best.yaml")
    assert query.returncode == 0, query.stderr
    chosen = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert chosen["checkpoint_dir"] == "" and chosen["device"] == "auto"

    cli("train", "--config", tmp_path / "best.yaml", "--json", tmp_path / "row.json", "-q", check=True)
    row = json.loads((tmp_path / "row.json").read_text())
    trial = table.set_index("trial").loc[int(query.stdout.split("wrote the config of trial ")[1].split()[0])]
    assert row["val_accuracy"] == pytest.approx(trial["val_accuracy"])  # same seed, same CPU result
    assert row["spikes_per_sample"] == pytest.approx(trial["spikes_per_sample"], rel=1e-5)


def test_no_match_is_one_line_and_exit_1(tiny_study, tmp_path):
    study, results = tiny_study
    proc = cli_main("query", study, "--results", results, "--min-accuracy", "1.0")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1

    status = cli("status", study, "--results", results, check=True).stdout
    assert f"complete={TINY_TRIALS}" in status and "baseline: trial 0" in status and "hypervolume:" in status
    for kind in ("pareto", "history"):
        png = tmp_path / f"{kind}.png"
        run = cli if kind == "pareto" else cli_main  # one plot as a user runs it, the other in this process
        run("plot", study, "--results", results, "--kind", kind, "-o", png, check=True)
        assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("fmt,reader", [
    ("csv", pd.read_csv), ("json", lambda p: pd.read_json(p, orient="records")), ("parquet", pd.read_parquet)])
def test_export_formats_read_back_to_the_same_table(tiny_study, tmp_path, fmt, reader):
    study, results = tiny_study
    out = tmp_path / f"front.{fmt}"
    cli_main("pareto", study, "--results", results, "--all", "--format", fmt, "-o", out, check=True)
    back = reader(out)
    shown = cli_main("pareto", study, "--results", results, "--all", "--format", "json", check=True).stdout
    expected = pd.read_json(__import__("io").StringIO(shown), orient="records")
    assert list(back.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), expected, check_dtype=False, atol=1e-9)
    # and both say what the storage holds: every finished trial once, with its stored objective values and params
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(results / "tiny" / "study.journal")))
    stored = {t.number: t for t in optuna.load_study(study_name="tiny", storage=storage).trials
              if t.state == optuna.trial.TrialState.COMPLETE}
    assert sorted(back["trial"]) == sorted(stored) and len(stored) == TINY_TRIALS
    for _, row in back.iterrows():
        t = stored[int(row["trial"])]
        assert [row["val_accuracy"], row["spikes_per_sample"]] == pytest.approx(t.values, rel=1e-9)
        for name, value in t.params.items():
            assert row[f"params_{name}"] == (pytest.approx(value) if isinstance(value, float) else value)


def test_two_local_workers_share_the_embedded_storage(tmp_path):
    study = write_study(tmp_path, n_trials=6)
    cli("launch", study, "--results", tmp_path / "r", "--workers", "2", "-q", check=True)
    trials = open_study(study, results=str(tmp_path / "r"))
    table = trials.trials()
    assert 6 <= (table["state"] == "COMPLETE").sum() == len(table) <= 7  # at most one extra (see run_worker)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(tmp_path / "r" / "tiny" / "study.journal")))
    workers = {t.user_attrs["worker"] for t in optuna.load_study(study_name="tiny", storage=storage).trials}
    assert len(workers) == 2


@pytest.mark.postgres
def test_two_workers_on_postgresql(tmp_path):
    pytest.importorskip("psycopg")
    url = "postgresql://postgres@127.0.0.1:5432/test"
    name = f"pg_{uuid.uuid4().hex[:10]}"
    study = write_study(tmp_path, name=name, n_trials=5)
    try:
        cli("launch", study, "--storage", url, "--results", tmp_path / "r", "--workers", "2", "-q", check=True)
        loaded = optuna.load_study(study_name=name, storage=url)
        # budget met; two workers finishing at the same instant may each start one more (documented)
        assert 5 <= len(loaded.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) <= 6
        assert len({t.user_attrs["worker"] for t in loaded.trials}) == 2
        # a name and the storage are enough to read it back, from anywhere
        shown = cli("pareto", name, "--storage", url, "--results", tmp_path / "elsewhere", check=True).stdout
        assert "spikes_per_sample" in shown
    finally:
        optuna.delete_study(study_name=name, storage=url)


def test_sigkilled_worker_then_resume_keeps_finished_trials_once(tmp_path):
    # trial 1 is held right after its epoch 2 is stored (helpers.Hold): the kill lands there, not at a poller's whim
    study = write_study(tmp_path, n_trials=3, train={**TINY_TRAIN, "epochs": 4},
                        heartbeat={"interval": 1, "grace_period": 3})
    results = tmp_path / "r"
    journal = results / "tiny" / "study.journal"
    Hold(tmp_path / "hold", epoch=2).kill_launch_when(lambda held: "00001" in held, study, "--results", results,
                                                      "-q", what="trial 1")
    before = _trials(results)
    finished_before = before[before["state"] == "COMPLETE"]
    assert list(finished_before["trial"]) == [0]  # the baseline went through; trial 1 was the one running
    killed = int(before[before["state"] == "RUNNING"]["trial"].iloc[0])
    assert killed == 1 and before.set_index("trial").loc[killed, "epochs"] == 2
    assert (results / "tiny" / "trials" / "00001" / "checkpoint.pt").exists()

    cli("resume", "tiny", "--results", results, "-q", check=True)
    after = _trials(results)
    complete = after[after["state"] == "COMPLETE"]
    assert len(complete) == 3  # budget met
    param_cols = [c for c in after.columns if c.startswith("params_")]
    keyed = complete[param_cols].apply(lambda r: repr(tuple(r)), axis=1)
    assert keyed.is_unique  # no trial ran twice
    for _, row in finished_before.iterrows():  # finished trials kept exactly once, unchanged
        assert (complete["trial"] == row["trial"]).sum() == 1
        assert complete.set_index("trial").loc[row["trial"], "val_accuracy"] == row["val_accuracy"]
    assert after.set_index("trial").loc[killed, "state"] == "FAIL"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE
    assert retried[0].params == trials[killed].params
    # continued from the killed trial's last checkpoint (epoch 2, where it was held), not from scratch
    assert retried[0].user_attrs["result"]["resumed_from_epoch"] == 2 and retried[0].user_attrs["result"]["epochs"] == 4


def test_diverging_trial_is_failed_with_reason_and_the_study_finishes(tmp_path):
    space = {"params": {"lr": {"type": "categorical", "choices": [0.002, 1.0e+36]}}}
    study = write_study(tmp_path, n_trials=3, search_space=space, baseline=False, sampler={"name": "random"},
                        seed=8, train={"epochs": 2, "hidden": [32], "timesteps": 2, "optimizer": "sgd"})
    cli("launch", study, "--results", tmp_path / "r", "-q", "--n-trials", "3", check=True)
    table = _trials(tmp_path / "r")
    failed = table[table["state"] == "FAIL"]
    assert len(failed) >= 1 and failed["fail_reason"].str.contains("diverged").all()
    assert (table["state"] == "COMPLETE").sum() == 3


def test_a_study_whose_every_trial_fails_stops_with_one_line(tmp_path):
    study = write_study(tmp_path, n_trials=2, baseline=False, search_space={"params": {
        "lambda_max": {"type": "float", "low": 0.1, "high": 1.0}}}, train={**TINY_TRAIN, "optimizer": "sgd",
                                                                               "lr": 1.0e+36})
    proc = cli("launch", study, "--results", tmp_path / "r", "-q")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and "error:" in last and "failed" in last and "Traceback" not in proc.stderr
    table = _trials(tmp_path / "r")
    assert (table["state"] == "FAIL").sum() == 2 and table["fail_reason"].str.contains("diverged").all()
