"""launch / resume flags as a user types them: the study file's settings hold unless a flag is given, and a flag
the run would ignore is one line and exit 2 before anything is stored."""

from __future__ import annotations

import os

import pytest
import yaml

from helpers import TINY_TRAIN, cli, cli_main, write_study

# A thread count this machine would not pick by itself (it splits its cores between workers).
FILE_THREADS = 1 if (os.cpu_count() or 1) > 1 else 2


def _trial_config(results, number: int) -> dict:
    return yaml.safe_load((results / "tiny" / "trials" / f"{number:05d}" / "config.yaml").read_text())


def test_study_file_device_and_threads_hold_unless_given(tmp_path):
    study = write_study(tmp_path, n_trials=1, train={**TINY_TRAIN, "device": "cpu", "threads": FILE_THREADS})
    results = tmp_path / "results"
    cli("launch", study, "--results", results, "-q", check=True)
    assert _trial_config(results, 0)["device"] == "cpu"  # was overwritten by launch's default --device auto
    assert _trial_config(results, 0)["threads"] == FILE_THREADS
    cli_main("resume", study, "--results", results, "--n-trials", "2", "--device", "auto", "--threads", "0", "-q",
             check=True)
    assert _trial_config(results, 1)["device"] == "auto"  # the flag, given, wins
    assert _trial_config(results, 1)["threads"] not in (None, FILE_THREADS)


IGNORED = [
    (["--backend", "ray", "--workers", "2"], "--workers", "--max-concurrent"),
    (["--backend", "ray", "--storage", "sqlite:///x.db"], "--storage", "--results"),
    (["--max-concurrent", "2"], "--max-concurrent", "ray"),
    (["--cpus-per-trial", "1"], "--cpus-per-trial", "ray"),
    (["--ray-address", "127.0.0.1:1"], "--ray-address", "ray"),
    (["--gpus", "auto", "--device", "cpu"], "--gpus", "--device cpu"),
    (["--trials-per-gpu", "2", "--device", "cpu"], "--trials-per-gpu", "--device cpu"),
    (["--trials-per-gpu", "2"], "--trials-per-gpu", "--gpus"),
    (["--gpus", "0", "--workers", "2"], "--workers", "--trials-per-gpu"),
    (["--gpus", "zero"], "--gpus", "zero"),
    (["--timeout", "0"], "--timeout", "> 0"),
    (["--threads", "-1"], "--threads", ">= 0"),
    (["--cpus-per-trial", "0", "--backend", "ray"], "--cpus-per-trial", "> 0"),
]


@pytest.mark.parametrize("case", range(len(IGNORED)), ids=[" ".join(a) for a, _, _ in IGNORED])
def test_a_flag_the_run_would_ignore_is_one_line(case, tmp_path):
    args, flag, says = IGNORED[case]
    command = ("launch", "resume")[case % 2]  # both take the same run flags
    study = write_study(tmp_path)
    proc = cli_main(command, study, "--results", tmp_path / "results", *args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"{flag}:" in proc.stderr and says in proc.stderr, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == [study.name]  # nothing started, nothing stored (x.db neither)


def test_gpus_against_the_study_files_cpu_device(tmp_path):
    study = write_study(tmp_path, train={**TINY_TRAIN, "device": "cpu"})
    proc = cli_main("launch", study, "--results", tmp_path / "results", "--gpus", "auto")
    assert proc.returncode == 2 and "--gpus" in proc.stderr and "train.device" in proc.stderr, proc.stderr


def test_ray_study_with_a_storage_is_refused(tmp_path):
    study = write_study(tmp_path, backend="ray", storage="sqlite:///x.db")
    proc = cli_main("launch", study, "--results", tmp_path / "results", cwd=tmp_path)
    assert proc.returncode == 2 and "storage:" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == [study.name]


def test_gpus_without_a_gpu_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    study = write_study(tmp_path)
    for gpus in ("auto", "0"):
        proc = cli_main("launch", study, "--results", tmp_path / "results", "--gpus", gpus)
        assert proc.returncode == 2 and "--gpus" in proc.stderr and "no CUDA device" in proc.stderr, proc.stderr
    assert not (tmp_path / "results").exists()


def test_journal_storage_that_cannot_be_written(tmp_path):
    study = write_study(tmp_path)
    (tmp_path / "a_file").write_text("")
    proc = cli_main("launch", study, "--results", tmp_path / "results", "--storage", tmp_path / "a_file" / "j.log")
    assert proc.returncode == 2 and "--storage" in proc.stderr and "not a folder" in proc.stderr, proc.stderr
    assert not (tmp_path / "results").exists()
