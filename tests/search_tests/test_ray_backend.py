"""The Ray Tune backend end to end on CPU: local Ray, a killed driver, a two-node loopback cluster, retries.

Every Ray process runs on 127.0.0.1 with ports Ray or the helpers pick free (never 6379); each test leaves no Ray
running behind it.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from helpers import Hold, cli, cli_background, write_study
from ray_helpers import RAY_ENV, FaultyTrain, LoopbackCluster
from sparsity_search.api import open_study

pytestmark = pytest.mark.ray


def _trial_folder(root, name, config, rows, errors=()):
    """A Tune trial folder as Tune writes it: params.json, result.json (JSON lines), error.txt."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps(config))
    (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if errors:
        (folder / "error.txt").write_text("".join(
            f"Failure # {i + 1} (occurred at {date})\nTraceback ...\n{message}\n" for i, (date, message)
            in enumerate(errors)))


def _epoch(epoch, date, **extra):
    return {"epoch": epoch, "val_accuracy": 0.5 + epoch / 10, "spikes_per_sample": 100.0 - epoch,
            "test_accuracy": None, "date": date, "time_total_s": float(epoch), "training_iteration": epoch,
            "config": {}, "node_id": "n1", **extra}


def test_records_read_trial_folders_without_ray(tmp_path):
    from sparsity_search.api import locate
    from sparsity_search.search.ray.backend import RayBackend

    spec, settings = locate(_ray_study(tmp_path, n_trials=5), results=str(tmp_path / "results"))
    exp = settings.results_dir / "ray"
    d1, d2, d3 = "2030-01-01_00-00-01", "2030-01-01_00-00-02", "2030-01-01_00-00-03"
    final = {**_epoch(2, d2), "test_accuracy": 0.7, "epochs": 2, "final": True, "train_config": {"lambda_max": 0.0}}
    _trial_folder(exp, "run_trial_a_1", {"is_baseline": True, "trial_number": 0}, [_epoch(1, d1), final])
    _trial_folder(exp, "run_trial_b_2", {"lambda_max": 1.0, "schedule": "constant", "is_baseline": False,
                                         "trial_number": 1}, [_epoch(1, d1)])  # still running
    _trial_folder(exp, "run_trial_c_3", {"lambda_max": 2.0, "schedule": "constant", "is_baseline": False,
                                         "trial_number": 2},
                  [_epoch(1, d1), {"diverged": True, "fail_reason": "loss diverged (nan)", "date": d2}])
    _trial_folder(exp, "run_trial_d_4", {"lambda_max": 3.0, "schedule": "constant", "is_baseline": False,
                                         "trial_number": 3}, [_epoch(1, d1)],
                  errors=[(d2, "RuntimeError: first"), (d3, "RuntimeError: node lost")])  # retries used up
    _trial_folder(exp, "run_trial_e_5", {"lambda_max": 4.0, "schedule": "constant", "is_baseline": False,
                                         "trial_number": 4}, [_epoch(1, d1), _epoch(2, d3)],
                  errors=[(d2, "RuntimeError: once")])  # retried, running again
    # a copy of trial 1 started before a killed driver's last snapshot: the newer one wins
    _trial_folder(exp, "run_trial_f_2", {"lambda_max": 1.0, "schedule": "constant", "is_baseline": False,
                                         "trial_number": 1}, [])
    (exp / "tuner.pkl").write_bytes(b"not a trial")

    records = RayBackend().records(spec, settings)
    assert [(r.number, r.state) for r in records] == [(0, "COMPLETE"), (1, "RUNNING"), (2, "FAIL"), (3, "FAIL"),
                                                     (4, "RUNNING")]
    base, running, diverged, failed, retried = records
    assert base.is_baseline and base.params == {"lambda_max": 0.0, "schedule": "annealing", "temperature": 0.3}
    assert base.metrics["test_accuracy"] == 0.7 and base.epochs == 2 and base.config == {"lambda_max": 0.0}
    assert "date" not in base.metrics and "config" not in base.metrics and base.metrics["node_id"] == "n1"
    assert running.params == {"lambda_max": 1.0, "schedule": "constant"} and running.epochs == 1
    assert running.config["lambda_max"] == 1.0 and running.metrics["val_accuracy"] == pytest.approx(0.6)
    assert diverged.fail_reason == "loss diverged (nan)" and diverged.metrics["val_accuracy"] == pytest.approx(0.6)
    assert failed.fail_reason == "RuntimeError: node lost" and retried.fail_reason == ""


def test_placement_follows_settings_and_cluster(tmp_path):
    from sparsity_search.api import locate
    from sparsity_search.errors import ConfigError
    from sparsity_search.search.ray.backend import plan_placement

    spec, settings = locate(_ray_study(tmp_path), results=str(tmp_path))
    cpu = plan_placement(spec, settings, {"CPU": 8.0})
    assert (cpu.cpus, cpu.gpus, cpu.device, cpu.max_concurrent) == (1.0, 0.0, "cpu", 8)
    settings.trials_per_gpu, settings.cpus_per_trial = 4, 2.0
    gpu = plan_placement(spec, settings, {"CPU": 16.0, "GPU": 1.0})
    assert (gpu.cpus, gpu.gpus, gpu.device, gpu.max_concurrent) == (2.0, 0.25, "cuda", 4)
    settings.device, settings.max_concurrent = "cpu", 3
    assert plan_placement(spec, settings, {"CPU": 16.0, "GPU": 1.0}).gpus == 0.0
    assert plan_placement(spec, settings, {"CPU": 16.0, "GPU": 1.0}).max_concurrent == 3
    settings.device = "cuda"
    with pytest.raises(ConfigError):
        plan_placement(spec, settings, {"CPU": 4.0})


def _ray_study(folder, name="tiny", **changes):
    return write_study(folder, name=name, backend="ray", **changes)


def _launch(*args, **kwargs):
    return cli("launch", *args, "-q", env=RAY_ENV, check=True, **kwargs)


@pytest.fixture(autouse=True)
def _no_ray_left(monkeypatch):
    """Tests in this process (or after it) never see a Ray started here."""
    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def test_short_epochs_hand_tune_one_checkpoint_and_pareto_prints_the_front(tiny_launch):
    """The rest of a launch's contract is checked over both backends in test_backend_contract.py."""
    results, _ = tiny_launch("ray")
    # epochs of a fraction of a second: Tune got a checkpoint with the first only (CHECKPOINT_EVERY_S)
    for rows in (results / "tiny" / "ray").glob("*/result.json"):
        named = [json.loads(line).get("checkpoint_dir_name") for line in rows.read_text().splitlines()]
        assert len(named) == 3 and named[0] is not None and named[1:] == [None, None]  # 2 epochs, final row

    shown = cli("pareto", "tiny", "--results", results, check=True).stdout
    for column in ("val_accuracy", "spikes_per_sample", "spike_reduction_pct", "pareto_rank"):
        assert column in shown


def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path):
    # sampled trials are held after their epoch 2 (helpers.Hold): the driver is killed once the baseline shows as
    # finished (the results folder lags by up to Tune's snapshot period, TUNE_GLOBAL_CHECKPOINT_S) and no trial
    # can finish behind the poller's back
    study = _ray_study(tmp_path, n_trials=6, train={"epochs": 4, "hidden": [32], "timesteps": 2, "batch_size": 128})
    results = tmp_path / "results"
    hold = Hold(tmp_path / "hold", epoch=2)
    proc = cli_background("launch", study, "--results", results, "-q", env={**RAY_ENV, **hold.env},
                          new_session=True)

    def baseline_shown(held):
        if not (held and results.joinpath("tiny", "ray").exists()):
            return False
        table = open_study("tiny", results=str(results)).trials()
        return bool((table["state"] == "COMPLETE").any())

    try:
        hold.wait_for(baseline_shown, proc, "a sampled trial, with the baseline finished,", timeout=180)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait()
    before = open_study("tiny", results=str(results)).trials()
    done_before = before[before["state"] == "COMPLETE"].set_index("trial")
    assert list(done_before.index) == [0]  # the baseline; every sampled trial was held at its epoch 2

    cli("resume", "tiny", "--results", results, "-q", env=RAY_ENV, check=True)
    after = open_study("tiny", results=str(results)).trials()
    assert (after["state"] == "COMPLETE").sum() == 6 and len(after) == 6
    assert sorted(after["trial"]) == list(range(6))
    sampled = after[~after["is_baseline"]]
    assert not sampled.duplicated(subset=[c for c in after.columns if c.startswith("params_")]).any()
    kept = after.set_index("trial").loc[done_before.index]
    assert (kept["val_accuracy"] == done_before["val_accuracy"]).all()


def test_trials_spread_over_a_two_node_loopback_cluster(tmp_path):
    from sparsity_search.search import get_backend

    cluster = LoopbackCluster().start()
    try:
        study = _ray_study(tmp_path, n_trials=4)
        cli("launch", study, "--results", tmp_path / "results", "--ray-address", cluster.address, "-q",
            env=cluster.env, check=True)
        spec = open_study("tiny", results=str(tmp_path / "results"))
        records = get_backend("ray").records(spec.spec, spec.settings)
        probe = ("import json, ray; ray.init(address=%r, configure_logging=False); print(json.dumps("
                 "[ray.get_runtime_context().gcs_address] + [n['NodeManagerAddress'] for n in ray.nodes()]))"
                 % cluster.address)
        addresses = json.loads(subprocess.run([sys.executable, "-c", probe], env=dict(os.environ, **cluster.env),
                                              capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    finally:
        cluster.stop()
    assert [r.state for r in records] == ["COMPLETE"] * 4
    assert len({r.metrics["node_id"] for r in records}) == 2
    assert addresses[0] == cluster.address and addresses[1:] == ["127.0.0.1"] * 2  # GCS and both nodes on loopback
    assert not cluster.pids()


def test_failed_trial_retries_from_its_checkpoint_and_diverged_trial_fails(tmp_path):
    import ray.cloudpickle

    import ray_helpers
    from sparsity_search.api import locate
    from sparsity_search.search.ray.backend import RayBackend

    ray.cloudpickle.register_pickle_by_value(ray_helpers)  # Ray's workers do not have tests/ on their path
    study = _ray_study(tmp_path, n_trials=4, train={"epochs": 3, "hidden": [32], "timesteps": 2,
                                                    "batch_size": 128})
    spec, settings = locate(study, results=str(tmp_path / "results"))
    settings.device, settings.show_progress = "cpu", False
    faults = tmp_path / "faults"
    faults.mkdir()
    backend = RayBackend(train_fn=FaultyTrain(faults))
    backend.run(spec, settings)
    import ray

    assert not ray.is_initialized()  # run() shuts down the Ray it started

    records = {r.number: r for r in backend.records(spec, settings)}
    reports = [json.loads(line) for line in (faults / "reports.jsonl").read_text().splitlines()]
    faulted = float((faults / "fault").read_text())
    diverged = float((faults / "diverge").read_text())
    by_key = {r.config["lambda_max"]: r for r in records.values()}

    # the fault: first attempt reported epoch 1 and raised; the retry started from its checkpoint, at epoch 2
    runs = [e for e in reports if e["key"] == faulted]
    starts = [i for i, e in enumerate(runs) if e.get("start")]
    assert len(starts) == 2
    assert [e["epoch"] for e in runs[starts[0] + 1:starts[1]]] == [1]
    assert [e["epoch"] for e in runs[starts[1] + 1:]] == [2, 3]
    assert by_key[faulted].state == "COMPLETE" and by_key[faulted].epochs == 3

    # divergence: recorded as FAIL with its reason, never retried, and the sweep went on
    assert sum(1 for e in reports if e["key"] == diverged and e.get("start")) == 1
    assert by_key[diverged].state == "FAIL" and "diverged" in by_key[diverged].fail_reason
    assert sorted(records) == [0, 1, 2, 3]
    assert sum(r.state == "COMPLETE" for r in records.values()) == 3


def test_a_ray_study_is_read_and_resumed_as_launched(tiny_launch, tmp_path):
    """Issue 15 items 4-5: the recorded backend wins over a study file's default, and a restored experiment's
    budget cannot change (Tune keeps it): one line naming the flag or field, before any Ray starts."""
    results, _ = tiny_launch("ray")
    plain = write_study(tmp_path, n_trials=4)  # the same study, without `backend: ray` (as if launched --backend ray)
    shown = cli("pareto", plain, "--results", results, check=True).stdout
    assert "spikes_per_sample" in shown
    for args, field in ((["--n-trials", "9"], "--n-trials:"), (["--timeout", "60"], "--timeout:"),
                        (["--backend", "optuna"], "--backend:")):
        proc = cli("resume", plain, "--results", results, *args, env=RAY_ENV)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and field in proc.stderr, proc.stderr
    proc = cli("resume", write_study(tmp_path, n_trials=5), "--results", results, env=RAY_ENV)
    assert proc.returncode == 2 and "n_trials:" in proc.stderr and "launched with (4)" in proc.stderr, proc.stderr
