"""What each trial recorded per epoch (validation accuracy, spikes in total and per layer, lambda), by backend.

The trial table keeps only final metrics; each backend reads back the per-epoch rows where it put them
(``SearchBackend.histories``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..names import LAYER_PREFIX
from ..search import get_backend

if TYPE_CHECKING:
    from ..api import Study

Rows = list[dict[str, Any]]


def epoch_histories(study: "Study", numbers: Iterable[int]) -> dict[int, Rows]:
    """Per-epoch metric rows (epoch order) of the given trials; a trial with none recorded is left out."""
    wanted = set(int(n) for n in numbers)
    if not wanted:
        return {}
    found = get_backend(study.spec.backend).histories(study.spec, study.settings, wanted)
    return {n: rows for n, rows in found.items() if rows}


def layer_spikes(rows: Rows) -> dict[str, float]:
    """Spikes per sample of each spiking layer at the last recorded epoch (validation split), in layer order."""
    if not rows:
        return {}
    last = rows[-1]
    return {k[len(LAYER_PREFIX):]: float(v) for k, v in last.items() if k.startswith(LAYER_PREFIX)}
