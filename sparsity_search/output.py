"""The one place results are printed as tables on the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

RESULT_KEYS = ("val_accuracy", "test_accuracy", "spikes_per_sample", "firing_rate", "synops_per_sample",
               "energy_uj", "epochs", "wall_time_s")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def print_result_row(row: dict[str, Any], console: Console | None = None) -> None:
    """Headline metrics first, then per-layer spike counts, as a two-column table."""
    table = Table("metric", "value", title="result")
    for key in RESULT_KEYS:
        table.add_row(key, _fmt(row[key]))
    for key, value in row.items():
        if key.startswith("spikes_per_sample_"):
            table.add_row(key, _fmt(value))
    (console or Console()).print(table)
