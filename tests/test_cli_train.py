"""`sparsity-search train` as a user runs it: flags over YAML, JSON row, one-line errors with exit code 2 (those\nin this process, ``cli_main``)."""

import json
import subprocess
import sys

import pytest

from helpers import cli, cli_main

FAST = ["--epochs", "2", "--set", "hidden=[32]", "--timesteps", "2", "-q"]


def test_train_writes_the_result_row(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 5\nlambda_max: 0.5\nschedule: constant\n")
    proc = cli("train", "--config", cfg, *FAST, "--lambda-max", "1.5", "--json", tmp_path / "row.json")
    assert proc.returncode == 0, proc.stderr
    row = json.loads((tmp_path / "row.json").read_text())
    for key in ("val_accuracy", "test_accuracy", "spikes_per_sample", "firing_rate", "energy_uj",
                "synops_per_sample", "epochs", "wall_time_s"):
        assert key in row
    assert row["config"]["lambda_max"] == 1.5 and row["config"]["epochs"] == 2  # flags override the file
    assert row["config"]["schedule"] == "constant" and row["epochs"] == 2
    assert "val_accuracy" in proc.stdout  # the final table


@pytest.mark.parametrize("args,field", [
    (["--lambda-max", "-1"], "lambda_max"),
    (["--timesteps", "0"], "timesteps"),
    (["--lr", "0"], "lr"),
    (["--epochs", "two"], "--epochs"),
    (["--schedule", "cubic"], "schedule"),
    (["--set", "bogus=1"], "bogus"),
    (["--set", "hidden=abc"], "hidden"),
    (["--device", "tpu"], "device"),
])
def test_bad_values_are_one_line_exit_2(args, field):
    proc = cli_main("train", *args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and field in proc.stderr, proc.stderr


def test_bad_config_file_names_file_and_field(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("timesteps: 0\n")
    proc = cli_main("train", "--config", cfg)
    assert proc.returncode == 2 and f"{cfg}: timesteps" in proc.stderr and proc.stderr.count("\n") == 1


def test_annealing_without_lambda_max_is_one_line_exit_2():
    proc = cli_main("train", "--schedule", "annealing", *FAST)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "lambda_max: not given, so schedule 'annealing'" in proc.stderr


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\xff\xfe", None])
def test_a_config_that_is_not_a_yaml_text_file_is_one_line_exit_2(tmp_path, content):
    cfg = tmp_path / "binary.yaml"
    if content is None:
        cfg.mkdir()  # a folder given as the file
    else:
        cfg.write_bytes(content)
    proc = cli_main("train", "--config", cfg, *FAST)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and str(cfg) in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_cuda_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = cli_main("train", "--device", "cuda", *FAST)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr and proc.stderr.count("\n") == 1


def test_python_m_matches_console_script():
    help_m = cli("train", "--help", check=True).stdout
    console = subprocess.run([sys.executable, "-c", "import sys; from sparsity_search.cli import main; "
                              "sys.argv = ['sparsity-search', 'train', '--help']; sys.exit(main())"],
                             capture_output=True, text=True)
    assert console.returncode == 0 and console.stdout == help_m


def test_resume_without_a_checkpoint_dir_is_refused():
    proc = cli_main("train", "--resume", *FAST)
    assert proc.returncode == 2 and "--resume" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
