"""Shared test helpers: tiny study files and running the CLI as a user would (a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

TINY_TRAIN = {"epochs": 2, "hidden": [32], "timesteps": 2, "batch_size": 128}
TINY_SPACE = {"params": {
    "lambda_max": {"type": "float", "low": 0.05, "high": 5.0, "log": True},
    "schedule": {"type": "categorical", "choices": ["constant", "annealing"]},
    "temperature": {"type": "float", "low": 0.1, "high": 1.0, "log": True, "when": {"schedule": "annealing"}},
}}


def write_study(folder: Path, name: str = "tiny", **changes: Any) -> Path:
    """A digits study that trains in about a second per trial."""
    spec: dict[str, Any] = {"name": name, "dataset": "digits", "model": "mlp", "train": dict(TINY_TRAIN),
                            "search_space": TINY_SPACE, "sampler": {"name": "random"}, "n_trials": 4, "seed": 0}
    spec.update(changes)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None,
        check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m sparsity_search ARGS`` and capture its output."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "sparsity_search", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def cli_background(*args: Any, quiet_output: bool = True) -> subprocess.Popen:
    """Start ``python -m sparsity_search ARGS`` and return at once (to kill it mid-way); output discarded unless
    ``quiet_output`` is False (then piped, as text)."""
    out = subprocess.DEVNULL if quiet_output else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-m", "sparsity_search", *map(str, args)], stdout=out, stderr=out,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes below ``folder``: to prove a failing command left stored results untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
