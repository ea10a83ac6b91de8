"""Shared test helpers: tiny study files and running the CLI as a user would (a subprocess)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from sparsity_search.cli import main
from sparsity_search.training import HOLD_ENV

TINY_TRIALS = 4  # the session's shared tiny study (conftest.tiny_launch)
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


def cli_main(*args: Any, check: bool = False, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``cli.main(ARGS)`` in this process, its output captured: for read-only commands and argument errors, where a
    subprocess adds only torch's import. Each command keeps a subprocess test of its own (``cli``), run as a user
    runs it."""
    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(cwd or here)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        os.chdir(here)
    proc = subprocess.CompletedProcess(["sparsity-search", *map(str, args)], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"exit {code}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def cli_background(*args: Any, quiet_output: bool = True, env: dict[str, str] | None = None,
                   new_session: bool = False) -> subprocess.Popen:
    """Start ``python -m sparsity_search ARGS`` and return at once (to kill it mid-way); output discarded unless
    ``quiet_output`` is False (then piped, as text). ``new_session`` makes it a process group (to kill what it starts)."""
    out = subprocess.DEVNULL if quiet_output else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-m", "sparsity_search", *map(str, args)], stdout=out, stderr=out,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
                            start_new_session=new_session)


class Hold:
    """Runs held after a stored epoch (``sparsity_search/training/hold.py``): a kill test starts its process with
    ``env``, waits until the runs it means to kill are held there, kills, and never races a poller."""

    def __init__(self, folder: Path, epoch: int, passing: tuple[str, ...] = ("00000",)):
        """Hold runs after ``epoch``; those tagged ``passing`` (by default the baseline, trial 0) go on at once."""
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.env = {HOLD_ENV: f"{epoch}:{folder}"}
        for tag in passing:
            self.release(tag)

    def held(self) -> dict[str, int]:
        """Tag (a trial number as ``00003``) -> pid of each run held now or before."""
        return {p.name[len("held-"):]: int(p.read_text()) for p in self.folder.glob("held-*")}

    def waiting(self) -> dict[str, int]:
        """The held runs not yet released."""
        if (self.folder / "release").exists():
            return {}
        return {t: pid for t, pid in self.held().items() if not (self.folder / f"release-{t}").exists()}

    def wait_for(self, predicate: Callable[[dict[str, int]], bool], proc: subprocess.Popen, what: str,
                 timeout: float = 240) -> dict[str, int]:
        """Wait until ``predicate(waiting())`` holds while ``proc`` lives; return ``waiting()``."""
        deadline = time.monotonic() + timeout
        while not predicate(self.waiting()):
            assert proc.poll() is None, f"the process ended before {what} was held"
            assert time.monotonic() < deadline, f"{what} was not held within {timeout:.0f} s"
            time.sleep(0.05)
        return self.waiting()

    def release(self, tag: str | None = None) -> None:
        """Let one held run (or, without a tag, every run from now on) go on."""
        (self.folder / ("release" if tag is None else f"release-{tag}")).touch()

    def kill_launch_when(self, ready: Callable[[dict[str, int]], bool], *args: Any, what: str) -> dict[str, int]:
        """``launch ARGS`` under this hold; kill -9 it once ``ready(waiting())`` (it dies on a failed wait too);
        return the runs it was killed with held."""
        proc = cli_background("launch", *args, env=self.env)
        try:
            return self.wait_for(ready, proc, what)
        finally:
            proc.kill()
            proc.wait()


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes below ``folder``: to prove a failing command left stored results untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
