"""What each trial recorded per epoch (validation accuracy, spikes in total and per layer, lambda), by backend.

The trial table keeps only final metrics; the per-epoch rows live where each backend put them: the ``epoch_NNN``
user attributes of Optuna trials, and the ``result.json`` lines of Ray Tune trial folders. Only reading here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api import Study

Rows = list[dict[str, Any]]
LAYER_PREFIX = "spikes_per_sample_"


def epoch_histories(study: "Study", numbers: Iterable[int]) -> dict[int, Rows]:
    """Per-epoch metric rows (epoch order) of the given trials; a trial with none recorded is left out."""
    wanted = set(int(n) for n in numbers)
    if not wanted:
        return {}
    read = _ray_histories if study.spec.backend == "ray" else _optuna_histories
    return {n: rows for n, rows in read(study, wanted).items() if rows}


def layer_spikes(rows: Rows) -> dict[str, float]:
    """Spikes per sample of each spiking layer at the last recorded epoch (validation split), in layer order."""
    if not rows:
        return {}
    last = rows[-1]
    return {k[len(LAYER_PREFIX):]: float(v) for k, v in last.items() if k.startswith(LAYER_PREFIX)}


def _optuna_histories(study: "Study", wanted: set[int]) -> dict[int, Rows]:
    from ..search._optuna import open_study

    found: dict[int, Rows] = {}
    for t in open_study(study.spec, study.settings.storage, create=False).get_trials(deepcopy=False):
        if t.number in wanted:
            keys = sorted(k for k in t.user_attrs if k.startswith("epoch_"))
            found[t.number] = [t.user_attrs[k] for k in keys]
    return found


def _ray_histories(study: "Study", wanted: set[int]) -> dict[int, Rows]:
    # Tune's own files; a trial run again after a killed driver has two folders: the one with more epochs wins.
    from ..search._ray import EXPERIMENT, FINAL, NUMBER, read_results

    found: dict[int, Rows] = {}
    experiment = study.settings.results_dir / EXPERIMENT
    for folder in sorted(experiment.iterdir()) if experiment.is_dir() else []:
        try:
            number = int(json.loads((folder / "params.json").read_text())[NUMBER])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if number in wanted:
            rows = [r for r in read_results(folder / "result.json") if "epoch" in r and not r.get(FINAL)]
            if len(rows) > len(found.get(number, [])):
                found[number] = rows
    return found
