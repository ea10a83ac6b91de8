"""A tiny study launched once per backend per session, shared by the contract suite and backend-specific checks."""

from pathlib import Path
from typing import Callable

import pytest

from helpers import cli, write_study
from ray_helpers import RAY_ENV

TINY_TRIALS = 4


@pytest.fixture(scope="session")
def tiny_launch(tmp_path_factory) -> Callable[[str], tuple[Path, str]]:
    """``launch(backend)`` -> (results folder, launch's stdout) of a 4-trial study run to its budget, launched from
    the CLI on first use (Ray's start-up is slow on a small machine: one launch serves every check)."""
    done: dict[str, tuple[Path, str]] = {}

    def launch(backend: str) -> tuple[Path, str]:
        if backend not in done:
            folder = tmp_path_factory.mktemp(f"tiny_{backend}")
            study = write_study(folder, n_trials=TINY_TRIALS, backend=backend)
            out = cli("launch", study, "--results", folder / "results", "-q", env=RAY_ENV, check=True).stdout
            done[backend] = (folder / "results", out)
        return done[backend]

    return launch
