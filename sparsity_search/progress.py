"""Terminal progress displays (rich), kept out of the trainer and the backends: they only get callbacks."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from .search.records import TrialRecord
    from .search.study_file import StudySpec


class EpochProgress:
    """A per-epoch bar whose ``update`` is the trainer's ``report(epoch, metrics)`` callback."""

    def __init__(self, epochs: int, enabled: bool = True):
        self._progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                  console=Console(file=sys.stderr), disable=not enabled, transient=False)
        self._task = self._progress.add_task("train", total=epochs, status="")

    def __enter__(self) -> "EpochProgress":
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def update(self, epoch: int, metrics: dict[str, Any]) -> None:
        status = (f"val_acc={metrics['val_accuracy']:.4f} spikes/sample={metrics['spikes_per_sample']:.1f} "
                  f"lambda={metrics['lambda']:.3g}")
        self._progress.update(self._task, completed=epoch, status=status)


class StudyProgress:
    """Trials done / running / failed and the current Pareto size, refreshed from a backend's trial records."""

    def __init__(self, spec: "StudySpec", enabled: bool = True, total: int | None = None):
        """``total``: the run's trial budget when a flag overrides the study file's ``n_trials``."""
        self._spec = spec
        self._progress = Progress(TextColumn(f"[bold]{spec.name}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                  console=Console(file=sys.stderr), disable=not enabled)
        self._task = self._progress.add_task(spec.name, total=total or spec.n_trials, status="")

    def __enter__(self) -> "StudyProgress":
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def update(self, records: list["TrialRecord"]) -> None:
        from .pareto import pareto_front_mask
        from .search.records import is_feasible, state_counts

        counts = state_counts(records)
        done = [r for r in records if r.state == "COMPLETE" and is_feasible(self._spec, r.metrics)]
        values = np.array([[r.metrics[m] for m in self._spec.objective_names] for r in done], dtype=float)
        front = int(pareto_front_mask(values, self._spec.directions).sum()) if len(done) else 0
        cut = counts["PRUNED"] + counts["PAUSED"]
        status = (f"done={counts['COMPLETE']} pruned={cut} running={counts['RUNNING']} "
                  f"failed={counts['FAIL']} pareto={front}")
        self._progress.update(self._task, completed=counts["COMPLETE"] + cut, status=status)
