"""The Optuna backend class: create the study, queue its baseline, run the workers; read its trials back."""

from __future__ import annotations

from .._base import RunSettings, SearchBackend
from ..records import TrialRecord
from ..study_file import StudySpec
from .launcher import run_workers
from .study import ensure_baseline, open_optuna_study, record_from_trial


class OptunaBackend(SearchBackend):
    name = "optuna"

    def run(self, spec: StudySpec, settings: RunSettings) -> None:
        study = open_optuna_study(spec, settings.storage, create=True, launch=settings.launch)
        ensure_baseline(study, spec)
        run_workers(spec, settings, study)

    def records(self, spec: StudySpec, settings: RunSettings) -> list[TrialRecord]:
        study = open_optuna_study(spec, settings.storage, create=False)
        return [record_from_trial(spec, t) for t in study.get_trials(deepcopy=False)]

    def histories(self, spec: StudySpec, settings: RunSettings, numbers: set[int]) -> dict[int, list[dict]]:
        study = open_optuna_study(spec, settings.storage, create=False)
        return {t.number: [t.user_attrs[k] for k in sorted(k for k in t.user_attrs if k.startswith("epoch_"))]
                for t in study.get_trials(deepcopy=False) if t.number in numbers}
