"""The benchmark scripts as a user starts them: gpu_check.sh parses and refuses a machine without a GPU in one line,
and the Python benchmarks accept the flags gpu_check.sh passes them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU_CHECK = ROOT / "benchmarks" / "gpu_check.sh"


def _gpu_check(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": "",  # no GPU, even on a GPU machine
           "GPU_CHECK_WHEELS": str(tmp_path / "no_wheels"), "GPU_CHECK_SITE": str(tmp_path / "site")}
    return subprocess.run(["bash", str(GPU_CHECK), *args], capture_output=True, text=True, env=env, timeout=120)


def test_gpu_check_is_valid_bash() -> None:
    proc = subprocess.run(["bash", "-n", str(GPU_CHECK)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_gpu_check_without_gpu_exits_with_one_line(tmp_path: Path) -> None:
    proc = _gpu_check(tmp_path=tmp_path)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.strip() == "gpu_check: no CUDA GPU found (torch.cuda.is_available() is False)"
    assert not (tmp_path / "site").exists()  # nothing installed before the GPU is checked


def test_gpu_check_unknown_argument_is_a_usage_error(tmp_path: Path) -> None:
    proc = _gpu_check("--gpus", tmp_path=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown argument '--gpus'" in lines[0], proc.stderr


@pytest.mark.parametrize("script", ["trainer_throughput.py", "population.py"])
def test_python_benchmarks_take_the_flags_gpu_check_passes(script: str) -> None:
    """Every --flag gpu_check.sh gives a Python benchmark is one that benchmark's --help lists."""
    text = GPU_CHECK.read_text()
    call = re.search(rf"benchmarks/{re.escape(script)}(.*?)\n\n", text, re.S)
    assert call is not None, f"gpu_check.sh does not run {script}"
    flags = set(re.findall(r"(--[a-z][a-z-]+)", call.group(1)))
    assert flags
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert flags <= set(re.findall(r"(--[a-z][a-z-]+)", proc.stdout))


def test_search_efficiency_smoke_run_prints_one_line_per_method(tmp_path: Path) -> None:
    """A tiny real run (one seed, a budget of two full trials): each method trains through the library and gets the
    issue's summary line, with the ratios against plain TPE."""
    methods = ["tpe", "tpe_promotion_population", "pbt_population"]
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search_efficiency.py"), "--quick", "--seeds",
                           "1", "--budget-trials", "2", "--jobs", "1", "--methods", *methods],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pattern = (r"method=(\S+) epochs_to_target=\d+ seconds_to_target=[\d.]+ final_hv=[\d.]+ "
               r"ratio_epochs_vs_tpe=[\d.]+ ratio_seconds_vs_tpe=[\d.]+ reached=[01]/1")
    lines = re.findall(pattern, proc.stdout)
    assert lines == methods, proc.stdout
    assert "ratio_epochs_vs_tpe=1.00 ratio_seconds_vs_tpe=1.00" in proc.stdout.splitlines()[-4]
    assert re.search(r"pbt_vs_fixed pbt_front_hv=[\d.]+ fixed_front_hv=[\d.]+ pbt_points_dominated_by_fixed=\d+/\d+ ",
                     proc.stdout), proc.stdout
    # the population method really trained populations: several trials sampled within the small budget
    sampled = re.search(r"# seed=0 method=tpe_promotion_population sampled=(\d+)", proc.stdout)
    assert sampled is not None and int(sampled.group(1)) >= 2, proc.stdout


def test_plugin_overhead_smoke_run_prints_the_ratio() -> None:
    """The user-model overhead benchmark trains both loops (one round of two tiny epochs) and prints its ratio."""
    pytest.importorskip("snntorch")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "plugin_overhead.py"), "--rounds", "1",
                           "--epochs", "2", "--hidden", "16", "--timesteps", "2", "--cpu-time"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"ratio=[\d.]+", proc.stdout), proc.stdout
