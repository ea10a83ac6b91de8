"""The study report: one self-contained HTML page (``write_report``) and the data behind it and the plot kinds.

``data.gather`` reads a study once; ``figures`` draws it with plotly, ``page`` assembles the page. The static
``plot`` kinds (``sparsity_search.plots``) draw from the same ``ReportData``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .data import ReportData, feasible, gather

if TYPE_CHECKING:
    from ..api import Study


def write_report(study: "Study", path: str | Path, full_range: bool = False) -> int:
    """Write the report of ``study`` to ``path`` (atomically); return its size in bytes."""
    from .page import render

    text = render(gather(study), full_range=full_range)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return len(text.encode("utf-8"))


__all__ = ["ReportData", "feasible", "gather", "write_report"]
