"""The search-backend contract. Backends know studies and trials, never neurons: they call ``train(cfg, report)``.

Call order, for every backend:

1. ``run(spec, settings)``: create or continue the study at ``settings`` (idempotent: a finished trial never runs
   again), run the baseline trial first when the spec asks for one, then trials until the budget counts
   ``spec.n_trials`` finished trials (complete or pruned) or the timeout passes.
2. ``records(spec, settings)``: every trial so far, as backend-neutral ``TrialRecord``s (during or after a run).
3. ``histories(spec, settings, numbers)``: the per-epoch metric rows those trials reported (reports, curves).

``launch``, ``resume`` and ``worker`` are all ``run``; they differ only in ``RunSettings``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import TrialRecord
from .study_file import StudySpec


@dataclass
class RunSettings:
    """Where a study lives and how to spread its trials; resolved once from CLI flags and the study file."""

    results_dir: Path
    storage: str
    n_trials: int | None = None
    timeout: float | None = None
    workers: int = 1
    device: str = "auto"
    gpus: list[int] = field(default_factory=list)
    trials_per_gpu: int = 1
    threads: int = 0  # per worker process; 0 = split this machine's cores between workers
    ray_address: str | None = None
    cpus_per_trial: float | None = None
    max_concurrent: int | None = None
    population: int | None = None  # Optuna: trials trained at once as one network; None = population.size
    show_progress: bool = True
    # The run flags to record with the study (``search.recorded``): launch's and resume's, merged; None: keep them.
    launch: dict[str, Any] | None = None


class SearchBackend(abc.ABC):
    name: str

    @abc.abstractmethod
    def run(self, spec: StudySpec, settings: RunSettings) -> None:
        """Run (or continue) the study until its budget is met."""

    @abc.abstractmethod
    def records(self, spec: StudySpec, settings: RunSettings) -> list[TrialRecord]:
        """All trials of the study, in any state."""

    @abc.abstractmethod
    def histories(self, spec: StudySpec, settings: RunSettings, numbers: set[int]) -> dict[int, list[dict]]:
        """Per-epoch metric rows (epoch order) of the trials ``numbers``; a trial with none may be left out."""
