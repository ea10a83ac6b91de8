"""Does the front sit on the edge of the search space? The rule, as pure functions of a front table.

A front whose best trials all sit at one end of a range found the limit of the search space, not of the method:
better trade-offs may lie beyond the bound. For each searched numeric parameter (float or int), count the front's
trials within ``MARGIN`` (2 %) of the range's width from its lower or upper bound, the width measured in log space
for ``log: true``. A bound is a finding when a query's answer sits there, or at least ``MIN_SHARE`` (a third) of
the front does.

Skipped: categorical parameters; a trial whose ``when`` condition left a parameter unsampled (its ``params_NAME``
is missing) for that parameter; a bound at the field's own limit (timesteps 1, warmup_epochs 0: nothing lies beyond
it to search); the lambda = 0 baseline (its values are the study's fixed settings, not a sample of the space), which
is neither counted nor part of the front's size; and a front of fewer than ``MIN_FRONT`` (3) trials, which says
nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pandas as pd

from .queries import run_query
from .table import annotate

if TYPE_CHECKING:
    from ..search.space import Param, SearchSpace

MARGIN = 0.02
MIN_SHARE = Fraction(1, 3)
MIN_FRONT = 3
# The queries whose answers count wherever a study is summed up (launch, status, pareto, Study.boundary_findings);
# ``query`` adds the one it ran, and the report the answers it marks.
QUERIES: tuple[tuple[str, float | None], ...] = (("iso_accuracy", None), ("knee", None))


class Spec(Protocol):
    """What :func:`study_findings` reads of a ``StudySpec`` (not imported: its module imports ``moasha``, which
    imports this package)."""

    objective_names: list[str]
    directions: list[str]
    accuracy_metric: str
    cost_metric: str
    search_space_file: str | None

    def space(self) -> SearchSpace: ...

    def fixed(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BoundaryFinding:
    """One bound of one parameter that the front sits on."""

    param: str
    side: Literal["lower", "upper"]
    bound: float
    count: int  # front trials within MARGIN of the bound
    front_size: int  # front trials checked (the baseline left out)
    answers: tuple[str, ...] = ()  # labels of the query answers among them, e.g. ("iso-accuracy",)
    space_file: str | None = None  # the file to edit (absolute), or None when unknown

    def message(self) -> str:
        """The one line users see; the file is shown relative to the working folder when it lies inside it."""
        answers = ""
        if self.answers:
            answers = f" (and the {' and '.join(self.answers)} answer{'s' if len(self.answers) > 1 else ''})"
        where = f"in {_shown(self.space_file)}" if self.space_file else "of the search space"
        return (f"{self.param}: {self.count} of {self.front_size} front trials{answers} within {MARGIN:.0%} of the "
                f"{self.side} bound {self.bound:g} — widen the range {where}")


def boundary_findings(front: pd.DataFrame, space: SearchSpace, answers: Mapping[str, Collection[int]] | None = None,
                      space_file: str | None = None, fixed: Mapping[str, Any] | None = None) -> list[BoundaryFinding]:
    """The bounds the front sits on, in the space's parameter order (lower before upper).

    ``front``: the Pareto front's rows, with ``trial``, ``params_NAME`` and optionally ``is_baseline`` columns.
    ``answers``: query label -> the trial number(s) answering it (answers outside the front are ignored).
    ``fixed``: the study's fixed training settings, against which a bound is checked to be movable.
    """
    rows = front[~front["is_baseline"].fillna(False).astype(bool)] if "is_baseline" in front else front
    if len(rows) < MIN_FRONT:
        return []
    findings = []
    for name, param in space.params.items():
        column = f"params_{name}"
        if param.type == "categorical" or column not in rows or not param.low < param.high:  # type: ignore[operator]
            continue
        position = _position(pd.to_numeric(rows[column], errors="coerce").to_numpy(dtype=float), param)
        sides = (("lower", position <= MARGIN, param.low), ("upper", position >= 1.0 - MARGIN, param.high))
        for side, near, bound in sides:
            trials = set(rows.loc[near, "trial"].astype(int))
            sitting = tuple(label for label, numbers in (answers or {}).items() if trials & {int(n) for n in numbers})
            if (sitting or len(trials) >= MIN_SHARE * len(rows)) and space.can_widen(name, side, dict(fixed or {})):
                findings.append(BoundaryFinding(name, side, float(bound), len(trials), len(rows),  # type: ignore
                                                sitting, space_file))
    return findings


def _position(values: np.ndarray, param: Param) -> np.ndarray:
    """Where each value lies in the range: 0 at ``low``, 1 at ``high`` (log scale for ``log``); NaN if unsampled."""
    low, high = float(param.low), float(param.high)  # type: ignore[arg-type]
    if param.log:
        with np.errstate(divide="ignore", invalid="ignore"):
            values, low, high = np.log(values), np.log(low), np.log(high)
    return (values - low) / (high - low)


def query_label(rule: str, value: float | None = None) -> str:
    """A query answer's name in a finding: the CLI flag without its dashes and its value, ``max-accuracy-drop 1``."""
    return rule.replace("_", "-") + ("" if value is None else f" {value:g}")


def study_findings(table: pd.DataFrame, spec: Spec, include_infeasible: bool = False,
                   query: tuple[str, float | None] | None = None) -> list[BoundaryFinding]:
    """:func:`boundary_findings` of a study's trial table: its front (feasible trials only unless
    ``include_infeasible``), with the answers of ``QUERIES`` and of ``query`` (rule, value) when given, those that
    exist (a query needing a baseline the study lacks is left out)."""
    ranked = annotate(table, spec.objective_names, spec.directions, include_infeasible)  # type: ignore[arg-type]
    answers = {}
    for rule, value in QUERIES + ((query,) if query else ()):
        try:
            rows = run_query(table, rule, value, spec.accuracy_metric, spec.cost_metric, include_infeasible)
        except ValueError:  # no baseline to measure a drop from
            continue
        answers[query_label(rule, value)] = rows["trial"].tolist()
    return boundary_findings(ranked[ranked["is_pareto"]], spec.space(), answers, spec.search_space_file,
                             spec.fixed())


def _shown(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:  # outside the working folder
        return path
