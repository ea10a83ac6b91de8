"""Pareto fronts, hypervolume, knee point and the accuracy/spike queries, by topic.

- :mod:`.fronts`: direction normalisation, dominance, fronts, non-dominated ranks, knee point.
- :mod:`.indicators`: exact hypervolume (a quality indicator; the module is not named after the function
  so that `pareto.hypervolume` is always the function), its history, the fixed reference point.
- :mod:`.table`: the trial table annotated with ranks (feasible trials only) and baseline-relative columns.
- :mod:`.queries`: query name -> function.
- :mod:`.boundary`: whether the front sits on the edge of the search space (a range worth widening).
Tables are written by ``sparsity_search.output`` (``to_table`` here is its ``render``).
"""

from ..output import FORMATS
from ..output import render as to_table
from .boundary import BoundaryFinding, boundary_findings, study_findings
from .fronts import Direction, dominates, knee_point, nondominated_ranks, normalize, pareto_front_mask
from .indicators import default_reference, hypervolume, hypervolume_history
from .queries import (
    QUERIES,
    best_tradeoffs,
    query_iso_accuracy,
    query_knee,
    query_max_accuracy_drop,
    query_min_accuracy,
    run_query,
)
from .table import SPIKES, annotate, baseline_row, by_accuracy, feasible

__all__ = [
    "FORMATS", "QUERIES", "SPIKES", "BoundaryFinding", "Direction", "annotate", "baseline_row", "best_tradeoffs",
    "boundary_findings", "by_accuracy", "default_reference", "dominates", "feasible", "hypervolume",
    "hypervolume_history", "knee_point", "nondominated_ranks", "normalize", "pareto_front_mask", "query_iso_accuracy",
    "query_knee", "query_max_accuracy_drop", "query_min_accuracy", "run_query", "study_findings", "to_table",
]
