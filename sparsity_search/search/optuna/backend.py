"""The Optuna backend class: create the study, queue its baseline, run the workers; read its trials back."""

from __future__ import annotations

from .._base import RunSettings, SearchBackend
from ..records import TrialRecord
from ..study_file import StudySpec
from .launcher import run_workers
from .promotion import chains
from .study import ensure_baseline, open_optuna_study, records_from_trials


class OptunaBackend(SearchBackend):
    name = "optuna"

    def run(self, spec: StudySpec, settings: RunSettings) -> None:
        study = open_optuna_study(spec, settings.storage, create=True, launch=settings.launch)
        ensure_baseline(study, spec)
        run_workers(spec, settings, study)

    def records(self, spec: StudySpec, settings: RunSettings) -> list[TrialRecord]:
        study = open_optuna_study(spec, settings.storage, create=False)
        return records_from_trials(spec, study.get_trials(deepcopy=False))

    def histories(self, spec: StudySpec, settings: RunSettings, numbers: set[int]) -> dict[int, list[dict]]:
        """Per-epoch rows by trial number; a promoted trial's row holds its continuations' epochs too."""
        study = open_optuna_study(spec, settings.storage, create=False)
        rows = {}
        for chain in chains(study.get_trials(deepcopy=False)):
            if chain[0].number in numbers:
                epochs = {k: v for t in chain for k, v in t.user_attrs.items() if k.startswith("epoch_")}
                rows[chain[0].number] = [epochs[k] for k in sorted(epochs)]
        return rows
