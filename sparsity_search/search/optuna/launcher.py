"""Spread an Optuna study over local worker processes: K slots per GPU, or CPU cores split between workers.

Each slot is a ``sparsity-search worker`` process on the shared storage; this parent only starts them, shows
progress from the storage, and reports a worker that exits badly. With one CPU worker the trials run in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

import optuna

from ...errors import SparsitySearchError
from ...progress import StudyProgress
from .._base import RunSettings
from ..study_file import StudySpec
from .study import records_from_trials
from .worker import run_worker

POLL_S = 1.0


@dataclass(frozen=True)
class Slot:
    """One worker process: a GPU index (None for CPU) and the torch threads it may use."""

    gpu: int | None
    threads: int


def plan_slots(settings: RunSettings) -> list[Slot]:
    """GPU slots when GPUs are given (K per GPU, one thread each), else ``workers`` CPU slots sharing the cores."""
    if settings.gpus and settings.device != "cpu":
        return [Slot(gpu, settings.threads or 1) for gpu in settings.gpus for _ in range(settings.trials_per_gpu)]
    n = max(1, settings.workers)
    threads = settings.threads or max(1, (os.cpu_count() or 1) // n)
    return [Slot(None, threads) for _ in range(n)]


def _worker_command(spec_path: str, settings: RunSettings, slot: Slot) -> list[str]:
    cmd = [sys.executable, "-m", "sparsity_search", "worker", spec_path, "--storage", settings.storage,
           "--results", str(settings.results_dir.parent), "--threads", str(slot.threads),
           "--device", "cuda" if slot.gpu is not None else settings.device, "--quiet"]
    if settings.n_trials is not None:
        cmd += ["--n-trials", str(settings.n_trials)]
    if settings.timeout is not None:
        cmd += ["--timeout", str(settings.timeout)]
    if settings.population is not None:
        cmd += ["--population", str(settings.population)]
    return cmd


def run_workers(spec: StudySpec, settings: RunSettings, study: optuna.Study) -> None:
    """Run the study to its budget with the planned slots; raise if any worker process fails."""
    slots = plan_slots(settings)
    progress = StudyProgress(spec, enabled=settings.show_progress, total=settings.n_trials)

    def show(s: optuna.Study) -> None:
        progress.update(records_from_trials(spec, s.get_trials(deepcopy=False)))

    if len(slots) == 1 and slots[0].gpu is None:
        settings.threads = slots[0].threads
        with progress:
            show(study)
            run_worker(spec, settings, on_trial=show)
        return
    spec_path = str(settings.results_dir / "study.yaml")
    procs = []
    for slot in slots:
        env = dict(os.environ, OMP_NUM_THREADS=str(slot.threads))
        if slot.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(slot.gpu)
        procs.append(subprocess.Popen(_worker_command(spec_path, settings, slot), env=env))
    with progress:
        while any(p.poll() is None for p in procs):
            show(study)
            time.sleep(POLL_S)
        show(study)
    failed = [p.returncode for p in procs if p.returncode != 0]
    if failed:
        raise SparsitySearchError(f"{len(failed)} of {len(procs)} workers exited with errors "
                                  f"(codes {sorted(set(failed))}); finished trials are kept: run `resume`")

