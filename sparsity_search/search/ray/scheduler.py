"""MO-ASHA for the Ray backend: a Tune scheduler on the same promotion rule as the Optuna side (``moasha``).

Tune calls ``on_trial_result`` on the driver for every epoch a trial reports. At a rung epoch the scheduler
records the trial's objective vector, asks ``moasha.should_continue`` against every record at that rung, and
answers CONTINUE or STOP at once (asynchronous: nobody waits for a rung to fill). The baseline is never stopped
and its records are not counted, as on the Optuna side. Records are keyed by the trial's number, so a retried
trial (same number) replaces its own record.

State. Tune saves the searcher with its experiment snapshots but never calls a scheduler's ``save``, and the
scheduler in ``tuner.pkl`` is the one pickled at launch, empty. So the scheduler keeps its rung records and the
trials it stopped in ``moasha.json`` in the experiment folder, rewritten atomically after each decision (and in
Tune's staging copy of that folder, which Tune copies over it with every snapshot after a restore):
``Tuner.restore`` builds a scheduler that reads it back (the rung records keep counting, a stopped trial that
Tune resumes because the driver died before its snapshot is stopped again at its first result), and
``RayBackend.records`` reads the stopped trials from it to show them as PRUNED. The promotion form
(``promotion.PromotionScheduler``) keeps its paused trials there too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from ...moasha import should_continue
from .. import _compat
from ..study_file import StudySpec
from .trainable import BASELINE, NUMBER, rungs_of

STATE_FILE = "moasha.json"
_FILE_STATE = ("_rungs", "_stopped", "_paused", "_state_paths")  # kept in STATE_FILE, never pickled


class MOASHAScheduler(FIFOScheduler):
    """Stops a trial at a rung epoch unless it ranks in the top 1/reduction_factor of the trials recorded there."""

    def __init__(self, spec: StudySpec):
        super().__init__()
        _compat.decide_every_result(self)  # decide on every epoch, not on a batch of them
        self._spec = spec
        self._rungs: dict[int, dict[int, list[float]]] = {}  # rung epoch -> trial number -> objective values
        self._stopped: dict[int, int] = {}  # trial number -> epoch at which it was stopped
        self._paused: dict[int, int] = {}  # trial number -> rung epoch it waits at (promotion form only)
        # set from the first trial seen: <experiment>/moasha.json, and its copy in Tune's staging folder
        self._state_paths: list[Path] = []

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles the scheduler into tuner.pkl: the file is the state
        return {k: v for k, v in self.__dict__.items() if k not in _FILE_STATE}

    def __setstate__(self, state: dict[str, Any]) -> None:  # also a tuner.pkl of an older version of this class
        self.__dict__.update({k: v for k, v in state.items() if k not in _FILE_STATE + ("_state_path",)})
        self._rungs, self._stopped, self._paused, self._state_paths = {}, {}, {}, []

    def rungs_of(self, config: dict[str, Any]) -> set[int]:
        return rungs_of(self._spec, config)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._attach(trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        self._attach(trial)
        number = trial.config.get(NUMBER)
        if number is None or trial.config.get(BASELINE):
            return TrialScheduler.CONTINUE
        if number in self._stopped:  # stopped before a driver crash, resumed by Tune from its checkpoint
            return TrialScheduler.STOP
        epoch = result.get("epoch")
        if epoch is None or int(epoch) not in self.rungs_of(trial.config):
            return TrialScheduler.CONTINUE
        epoch = int(epoch)
        self._rungs.setdefault(epoch, {})[number] = [float(result[name]) for name in self._spec.objective_names]
        decision = self._decide(tune_controller, trial, number, epoch)
        self._save()
        return decision

    def _decide(self, tune_controller: Any, trial: Any, number: int, epoch: int) -> str:
        """The stopping form: CONTINUE or STOP for a trial that just recorded its values at rung ``epoch``."""
        es = self._spec.early_stopping
        keep = should_continue(list(self._rungs[epoch].items()), number, self._spec.directions, es.reduction_factor,
                               es.tie_break)
        if not keep:
            self._stopped[number] = epoch
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP

    def debug_string(self) -> str:
        return f"MO-ASHA: {len(self._stopped)} trials stopped at rungs {sorted(self._rungs)}"

    # -- state ---------------------------------------------------------------------------------------------
    def save(self, checkpoint_path: str) -> None:
        """Write the rung records, stopped and paused trials to ``checkpoint_path`` atomically (JSON)."""
        state = {"rungs": {str(e): {str(n): v for n, v in r.items()} for e, r in self._rungs.items()},
                 "stopped": {str(n): e for n, e in self._stopped.items()},
                 "paused": {str(n): e for n, e in self._paused.items()}}
        tmp = Path(f"{checkpoint_path}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        """Replace this scheduler's records with those saved at ``checkpoint_path``."""
        state = json.loads(Path(checkpoint_path).read_text())
        self._rungs = {int(e): {int(n): v for n, v in r.items()} for e, r in state["rungs"].items()}
        self._stopped = {int(n): int(e) for n, e in state["stopped"].items()}
        self._paused = {int(n): int(e) for n, e in state.get("paused", {}).items()}  # files before promotion: none

    def _attach(self, trial: Any) -> None:
        """Find the experiment folder from a trial (restored experiments may have moved) and load its state."""
        if self._state_paths:
            return
        self._state_paths = [_compat.experiment_folder(trial) / STATE_FILE,
                             _compat.experiment_staging_folder(trial) / STATE_FILE]
        if self._state_paths[0].exists():
            self.restore(str(self._state_paths[0]))

    def _save(self) -> None:
        assert self._state_paths, "set by _attach"
        for path in self._state_paths:  # the staging copy too: Tune's snapshots copy it over the other
            path.parent.mkdir(parents=True, exist_ok=True)
            self.save(str(path))


def stopped_trials(experiment: Path) -> dict[int, int]:
    """Trial number -> epoch, for every trial MO-ASHA stopped in this experiment folder (none without the file)."""
    return _read(experiment, "stopped")


def paused_trials(experiment: Path) -> dict[int, int]:
    """Trial number -> rung epoch, for every trial waiting at a rung to be promoted (none without the file)."""
    return _read(experiment, "paused")


def _read(experiment: Path, key: str) -> dict[int, int]:
    path = experiment / STATE_FILE
    if not path.exists():
        return {}
    return {int(n): int(e) for n, e in json.loads(path.read_text()).get(key, {}).items()}
