"""Python API for notebooks and scripts: find a study, read its trials and Pareto front as DataFrames, query it.

    from sparsity_search import open_study
    study = open_study("studies/quickstart.yaml")          # or a name, with storage=/results=
    study.trials()              # every trial, one schema for both backends
    study.pareto()              # the front, sorted by accuracy
    study.query("iso_accuracy") # fewest spikes at no accuracy loss against the baseline
    study.hypervolume()
    study.boundary_findings()   # parameters whose range the front sits on the edge of
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from . import pareto
from .config import TrainConfig, from_dict
from .errors import ConfigError
from .search import RunSettings, StudySpec, get_backend, load_study_file, parse_study, trials_table
from .search import default_storage_url
from .search.recorded import check_matches, read_launch_file, write_launch_file
from .search.study_file import DEFAULT_RESULTS, SNAPSHOT

QUERIES = tuple(pareto.QUERIES)


def locate(study: str | Path | Mapping[str, Any] | StudySpec, storage: str | None = None,
           results: str | None = None) -> tuple[StudySpec, RunSettings]:
    """Resolve a study file, a study dict or spec, a results folder or a study name (+ ``--storage``/``--results``)
    to its spec and home.

    A launch snapshots the validated study file as ``<results>/<name>/study.yaml`` (with the backend it ran on),
    so a name alone finds it; with only ``--storage``, the spec is read back from the storage. A study file whose
    study has a snapshot runs on the recorded backend, and must agree with it on what shapes the trials
    (``search.recorded``): a one-line error names the field otherwise.
    """
    if isinstance(study, Mapping):
        study = parse_study(dict(study), "study", Path.cwd())
    path = Path(study) if not isinstance(study, StudySpec) else None
    if path is None or path.is_file():
        spec = load_study_file(path) if path is not None else study
        source = str(path) if path is not None else None
        recorded = recorded_spec(spec.results_dir(results))
        if recorded is not None:  # launched before: it runs as recorded (backend included), if the file agrees
            check_matches(spec, recorded, str(spec.results_dir(results)), source=source)
            spec.backend = recorded.backend
    elif path.is_dir() and (path / SNAPSHOT).exists():
        spec = load_study_file(path / SNAPSHOT)
        results = results or str(path.parent)
    else:
        name = str(study)
        snapshot = Path(results or DEFAULT_RESULTS) / name / SNAPSHOT
        if snapshot.exists():
            spec = load_study_file(snapshot)
        elif storage is not None:
            from .search import spec_in_storage

            spec = parse_study(spec_in_storage(name, storage), f"{storage} ({name})", Path.cwd())
        else:
            raise ConfigError(f"no study file or results for {name!r} (looked for {snapshot}); "
                              "pass the study file, --results DIR or --storage URL")
    results_dir = spec.results_dir(results)
    url = storage or spec.storage or default_storage_url(results_dir)
    return spec, RunSettings(results_dir=results_dir, storage=url)


def recorded_spec(results_dir: Path) -> StudySpec | None:
    """The spec a study was launched with, from its snapshot; None before its first launch."""
    snapshot = results_dir / SNAPSHOT
    return load_study_file(snapshot) if snapshot.exists() else None


def recorded_flags(spec: StudySpec, results_dir: Path, storage: str, snapshot: bool) -> dict[str, Any] | None:
    """The run flags the study was launched with (``search.recorded``); None when it was never launched
    (``snapshot``: its results folder has a ``study.yaml``). Optuna's come from the storage every machine shares."""
    if spec.backend == "optuna":
        from .search.optuna.study import launch_in_storage

        return launch_in_storage(spec.name, storage)
    return read_launch_file(results_dir) if snapshot else None


def write_snapshot(spec: StudySpec, results_dir: Path, launch: dict[str, Any] | None = None) -> None:
    """Record the validated spec (search space inlined, backend included) beside the study's results, and the run
    flags it was launched with (``launch``, as ``launch.yaml``; see ``search.recorded``)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    tmp = results_dir / (SNAPSHOT + ".tmp")
    tmp.write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    tmp.replace(results_dir / SNAPSHOT)
    if launch is not None:
        write_launch_file(results_dir, launch)


@dataclass
class Study:
    """A launched study, whichever backend ran it."""

    spec: StudySpec
    settings: RunSettings

    def trials(self) -> pd.DataFrame:
        """Every trial (any state) in trial order, with ``pareto_rank``, ``is_pareto`` and reductions against the baseline."""
        records = get_backend(self.spec.backend).records(self.spec, self.settings)
        return trials_table(records, self.spec)

    def pareto(self, all_trials: bool = False, include_pruned: bool = False,
               include_infeasible: bool = False) -> pd.DataFrame:
        """The Pareto front of the trials meeting the study's constraints, sorted by accuracy.

        With ``all_trials`` every complete (and pruned) trial is listed, feasible or not (see ``is_feasible``).
        With ``include_pruned`` pruned trials count as points at the epoch they reached, and with
        ``include_infeasible`` trials breaking the constraints compete too: the front (``pareto_rank``,
        ``is_pareto``) is then recomputed over them, and they are listed.
        """
        table = self.trials()
        states = ["COMPLETE", "PRUNED", "PAUSED"] if all_trials or include_pruned else ["COMPLETE"]
        table = table[table["state"].isin(states)]
        if include_pruned or include_infeasible:
            ranked = pareto.annotate(table.assign(state="COMPLETE") if include_pruned else table,
                                     self.spec.objective_names, self.spec.directions, include_infeasible)
            table = table.assign(pareto_rank=ranked["pareto_rank"].to_numpy(),
                                 is_pareto=ranked["is_pareto"].to_numpy())
        if not all_trials:
            table = table[table["is_pareto"]]
        return pareto.by_accuracy(table, self.spec.accuracy_metric)

    def query(self, rule: str, value: float | None = None, include_infeasible: bool = False) -> pd.DataFrame:
        """One of ``QUERIES``: the Pareto-optimal (feasible, unless ``include_infeasible``) trial(s) satisfying
        it, possibly none."""
        return pareto.run_query(self.trials(), rule, value, self.spec.accuracy_metric, self.spec.cost_metric,
                                include_infeasible)

    def _front_values(self, table: pd.DataFrame, include_infeasible: bool) -> np.ndarray:
        """Objective values of the complete trials in trial order; an infeasible trial's are NaN (worst), so it
        adds nothing to a hypervolume but still counts as a step of its history."""
        done = table[table["state"] == "COMPLETE"].sort_values("trial")
        values = done[self.spec.objective_names].to_numpy(dtype=float)
        if not include_infeasible:
            values[~pareto.feasible(done).to_numpy()] = np.nan
        return values

    def reference_point(self, table: pd.DataFrame | None = None) -> dict[str, float]:
        table = self.trials() if table is None else table
        baseline = table[table["is_baseline"] & (table["state"] == "COMPLETE")]
        row = baseline.iloc[0].to_dict() if len(baseline) else None
        return pareto.default_reference(self.spec.objective_names, row, table)

    def hypervolume(self, include_infeasible: bool = False) -> float:
        """Volume dominated by the complete trials that meet the constraints (all of them with
        ``include_infeasible``), against ``reference_point``."""
        table = self.trials()
        ref = self.reference_point(table)
        return pareto.hypervolume(self._front_values(table, include_infeasible), self.spec.directions,
                                  [ref[o] for o in self.spec.objective_names])

    def hypervolume_history(self, include_infeasible: bool = False) -> np.ndarray:
        """Hypervolume after each complete trial, in trial order, against the same reference point."""
        table = self.trials()
        ref = self.reference_point(table)
        return pareto.hypervolume_history(self._front_values(table, include_infeasible), self.spec.directions,
                                          [ref[o] for o in self.spec.objective_names])

    def boundary_findings(self, include_infeasible: bool = False,
                          query: tuple[str, float | None] | None = None) -> list[pareto.BoundaryFinding]:
        """The ranges whose bound the front sits on (``pareto.boundary``): widen them. The iso-accuracy and knee
        answers count, and ``query`` (rule, value) too when given."""
        return pareto.study_findings(self.trials(), self.spec, include_infeasible, query)

    def trial_config(self, number: int) -> TrainConfig:
        """The config trial ``number`` trained, made portable (no checkpoint folder, device auto) to retrain it; a
        PBT trial's is the learned one (``piecewise`` lambda and lr along its weights' lineage)."""
        configs = self.trial_configs([number])
        if number not in configs:
            raise ConfigError(f"trial {number} of study {self.spec.name!r} has no recorded config")
        return configs[number]

    def trial_configs(self, numbers: list[int]) -> dict[int, TrainConfig]:
        """``trial_config`` of each of ``numbers`` that has one, reading the study once."""
        records = get_backend(self.spec.backend).records(self.spec, self.settings)
        return {r.number: from_dict(r.config).replace(checkpoint_dir="", resume=False, device="auto", threads=0)
                for r in records if r.number in numbers and r.config}

    def baseline(self) -> dict[str, Any] | None:
        table = self.trials()
        rows = table[table["is_baseline"] & (table["state"] == "COMPLETE")]
        return rows.iloc[0].to_dict() if len(rows) else None


def open_study(study: str | Path, storage: str | None = None, results: str | None = None) -> Study:
    """Find a study by file, results folder or name (see ``locate``)."""
    spec, settings = locate(study, storage, results)
    return Study(spec, settings)
