"""Shared fixtures: the tiny study launched once per backend per session (read-only for every test that takes it),
and one torch thread per pytest-xdist worker."""

import os
import sys
from pathlib import Path
from typing import Callable

import pytest
from filelock import FileLock

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch thread per xdist worker (and per CLI run it starts), unless asked otherwise: as many workers as
    # cores already fill the machine, and more threads than cores only wait on each other. Tests of the thread
    # settings set theirs explicitly.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py
sys.path.insert(0, str(Path(__file__).parent / "search_tests"))  # ray_helpers.py

from helpers import TINY_TRIALS, cli, write_study  # noqa: E402
from ray_helpers import RAY_ENV  # noqa: E402


@pytest.fixture(scope="session")
def tiny_launch(tmp_path_factory) -> Callable[[str], tuple[Path, str]]:
    """``launch(backend)`` -> (results folder, launch's stdout) of a 4-trial study run to its budget, launched from
    the CLI on first use (Ray's start-up is slow on a small machine: one launch serves every check). The study file
    is ``tiny.yaml`` beside the results folder. Tests that change a study launch their own or copy this one."""
    # under pytest-xdist each worker is its own session: the first to ask launches, the others read its results
    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared

    def launch(backend: str) -> tuple[Path, str]:
        folder = shared / f"tiny_{backend}"
        with FileLock(str(folder) + ".lock"):
            if not (folder / "launch.out").exists():
                folder.mkdir(exist_ok=True)
                study = write_study(folder, n_trials=TINY_TRIALS, backend=backend)
                out = cli("launch", study, "--results", folder / "results", "-q", env=RAY_ENV, check=True).stdout
                (folder / "launch.out").write_text(out)
        return folder / "results", (folder / "launch.out").read_text()

    return launch


@pytest.fixture(scope="session")
def tiny_study(tiny_launch) -> tuple[Path, Path]:
    """(study file, results root) of the session's tiny study on the Optuna backend."""
    results, _ = tiny_launch("optuna")
    return results.parent / "tiny.yaml", results
