"""The one place results are formatted: trial tables in every output format, and a training run's result row.

``pareto``, ``query``, ``status`` and ``launch`` all pick their columns with :func:`trial_columns` and write
through :func:`render`, so a column or a format added here shows up in every command alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .names import LAYER_PREFIX

if TYPE_CHECKING:  # imported where used: the CLI reads FORMATS while parsing, before any table exists
    import pandas as pd
    from rich.console import Console

FORMATS = ("table", "csv", "markdown", "latex", "json", "parquet")
# What a trial table shows, after ``trial`` and the searched parameters (``params_*``), where present.
TRIAL_COLUMNS = ("val_accuracy", "test_accuracy", "spikes_per_sample", "energy_uj", "spike_reduction_pct",
                 "accuracy_delta", "pareto_rank", "is_pareto", "is_feasible")
RESULT_KEYS = ("val_accuracy", "test_accuracy", "spikes_per_sample", "firing_rate", "synops_per_sample",
               "energy_uj", "epochs", "wall_time_s")


def trial_columns(table: pd.DataFrame, layers: bool = False) -> pd.DataFrame:
    """``table`` cut to the columns a user reads: trial, parameters (and ``pbt`` when any trial's schedule was
    learned: its parameters are then the first draw), metrics, front and feasibility, with ``layers`` the per-layer
    spikes (``spikes_per_sample_<layer>``) too; ``state`` only when the rows are not all in one state."""
    params = [c for c in table.columns if c.startswith("params_")]
    if "pbt" in table.columns and table["pbt"].any():
        params.append("pbt")
    per_layer = [c for c in table.columns if c.startswith(LAYER_PREFIX)] if layers else []
    columns = [c for c in ("trial", *params, *TRIAL_COLUMNS, *per_layer) if c in table.columns]
    if "state" in table.columns and table["state"].nunique() > 1:
        columns.append("state")
    return table[columns]


def render(df: pd.DataFrame, fmt: str, path: str | Path | None = None) -> str | None:
    """Render ``df`` as table | csv | markdown | latex | json | parquet; return the text, or write ``path``.

    ``json`` is a list of records (read back with ``pd.read_json(..., orient="records")``); ``parquet`` is
    binary and needs ``path``. LaTeX is pandas' ``to_latex`` (booktabs rules); Markdown is written here, since
    pandas' own needs the tabulate package.
    """
    if fmt == "parquet":
        if path is None:
            raise ValueError("parquet output is binary: give a file path")
        df.to_parquet(path, index=False)
        return None
    renderers = {
        "table": lambda: df.to_string(index=False) + "\n",
        "csv": lambda: df.to_csv(index=False),
        "json": lambda: df.to_json(orient="records", double_precision=15),
        "markdown": lambda: _markdown(df),
        "latex": lambda: df.to_latex(index=False, na_rep="", float_format=_float, escape=True),
    }
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    text = renderers[fmt]()
    if path is None:
        return text
    Path(path).write_text(text)
    return None


def print_trials(table: pd.DataFrame) -> None:
    """A trial table on the terminal, in the columns of :func:`trial_columns`; ``(none)`` when it is empty."""
    print(render(trial_columns(table), "table") if len(table) else "(none)")


def _float(value: float) -> str:
    return f"{value:.6g}"


def _cell(value: Any) -> str:
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return _float(value)
    return str(value)


def _markdown(df: pd.DataFrame) -> str:
    import pandas as pd

    def row(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(_cell(c).replace("|", "\\|") for c in cells) + " |"

    numeric = [pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in df.dtypes]
    rule = "|" + "|".join("---:" if num else "---" for num in numeric) + "|"
    lines = [row(df.columns), rule] + [row(r) for r in df.itertuples(index=False, name=None)]
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def print_result_row(row: dict[str, Any], console: "Console | None" = None) -> None:
    """Headline metrics first, then per-layer spike counts, as a two-column table."""
    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "value", title="result")
    for key in RESULT_KEYS:
        table.add_row(key, _fmt(row[key]))
    for key, value in row.items():
        if key.startswith(LAYER_PREFIX):
            table.add_row(key, _fmt(value))
    (console or Console()).print(table)
