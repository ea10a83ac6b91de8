"""The boundary rule (``pareto.boundary``) on hand-built fronts: which bounds the front sits on, and the line users see.

Every expected count below is worked out by hand from the positions in the comments (2 % of the range's width,
measured in log space for ``log: true``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import yaml

from helpers import write_study
from sparsity_search.api import open_study, write_snapshot
from sparsity_search.pareto import BoundaryFinding, boundary_findings, study_findings
from sparsity_search.search import load_study_file, parse_study
from sparsity_search.search.space import SearchSpace

SPACE = SearchSpace.model_validate({"params": {
    "lambda_max": {"type": "float", "low": 0.01, "high": 100.0, "log": True},  # 4 decades: 2 % = 0.08 decade
    "threshold": {"type": "float", "low": 0.5, "high": 10.5},  # 2 % = 0.2
    "timesteps": {"type": "int", "low": 2, "high": 8},  # 2 % = 0.12: only 2 and 8 count
    "batch_size": {"type": "int", "low": 1, "high": 64, "log": True},  # 2 % = 0.12 of ln 64 = 0.083: 60 counts
    "schedule": {"type": "categorical", "choices": ["constant", "annealing"]},
    "temperature": {"type": "float", "low": 0.1, "high": 1.0, "when": {"schedule": "annealing"}},
}})
MIDDLE = {"lambda_max": 1.0, "threshold": 5.5, "timesteps": 5, "batch_size": 8, "schedule": "constant",
          "temperature": math.nan, "beta": 0.75}


def front(*changes: dict, baseline: dict | None = None) -> pd.DataFrame:
    """A front of one trial per ``changes`` (numbered from 1), every parameter mid-range unless changed; a
    lambda = 0 baseline (trial 0) first when ``baseline`` is given."""
    rows = [{"trial": i + 1, "is_baseline": False, **MIDDLE, **c} for i, c in enumerate(changes)]
    if baseline is not None:
        rows.insert(0, {"trial": 0, "is_baseline": True, **MIDDLE, **baseline})
    return pd.DataFrame(rows).rename(columns={n: f"params_{n}" for n in MIDDLE})


def sides(findings: list[BoundaryFinding]) -> set[tuple[str, str, int]]:
    return {(f.param, f.side, f.count) for f in findings}


def test_an_interior_front_says_nothing():
    assert boundary_findings(front({}, {}, {}, {}, {}, {}), SPACE, {"knee": [1]}) == []


def test_a_third_of_the_front_at_a_linear_bound_is_a_finding():
    # threshold 10.3 sits at position 0.98 (on the margin), 10.4 and 10.5 above it: 2 and 3 of 6.
    assert sides(boundary_findings(front({"threshold": 10.3}, {"threshold": 10.5}, {}, {}, {}, {}), SPACE)) == {
        ("threshold", "upper", 2)}
    three = front({"threshold": 10.4}, {"threshold": 10.5}, {"threshold": 10.3}, {}, {}, {})
    assert sides(boundary_findings(three, SPACE)) == {("threshold", "upper", 3)}
    # 10.2 (0.97) is just inside; 2 of 7 is under a third
    assert boundary_findings(front({"threshold": 10.2}, {"threshold": 10.5}, {}, {}, {}, {}), SPACE) == []
    assert boundary_findings(front({"threshold": 10.4}, {"threshold": 10.5}, {}, {}, {}, {}, {}), SPACE) == []


def test_the_lower_bound_too():
    found = boundary_findings(front({"threshold": 0.5}, {"threshold": 0.65}, {}, {}, {}, {}), SPACE)
    assert [(f.side, f.bound, f.count, f.front_size) for f in found] == [("lower", 0.5, 2, 6)]


def test_a_bound_at_the_fields_own_limit_is_no_finding():
    """Nothing lies below timesteps 1, warmup_epochs 0 or a threshold of 0 (> 0), or above beta 1: no range can grow
    there."""
    limits = SearchSpace.model_validate({"params": {
        "timesteps": {"type": "int", "low": 1, "high": 8}, "warmup_epochs": {"type": "float", "low": 0.0, "high": 3.0},
        "threshold": {"type": "float", "low": 0.0, "high": 2.0}, "beta": {"type": "float", "low": 0.5, "high": 1.0}}})
    edge = {"timesteps": 1, "warmup_epochs": 0.0, "threshold": 0.0, "beta": 1.0}
    table = front(edge, edge, edge).assign(params_warmup_epochs=[0.0] * 3)
    assert boundary_findings(table, limits) == []
    top = {"timesteps": 8, "warmup_epochs": 3.0, "threshold": 2.0, "beta": 0.5}
    assert sides(boundary_findings(front(top, top, top).assign(params_warmup_epochs=[3.0] * 3), limits)) == {
        ("timesteps", "upper", 3), ("warmup_epochs", "upper", 3), ("threshold", "upper", 3), ("beta", "lower", 3)}
    # the study's fixed settings count: with 3 epochs a warm-up past 3 is refused for a ramping schedule
    fixed = {"epochs": 3, "lambda_max": 1.0, "schedule": "linear"}
    found = boundary_findings(front(top, top, top).assign(params_warmup_epochs=[3.0] * 3), limits, fixed=fixed)
    assert "warmup_epochs" not in {f.param for f in found}


def test_log_ranges_measure_distance_in_log_space():
    # 0.05 is 0.04 % of the linear width above 0.01 but 17 % of the log width; 95 is 95 % linear, 99.4 % log;
    # 50 is mid-range either way (50 % linear, 92.5 % log).
    linear = SearchSpace.model_validate({"params": {"lambda_max": {"type": "float", "low": 0.01, "high": 100.0}}})
    low = front({"lambda_max": 0.05}, {"lambda_max": 0.05}, *[{"lambda_max": 50.0}] * 4)
    assert boundary_findings(low, SPACE) == []
    assert sides(boundary_findings(low, linear)) == {("lambda_max", "lower", 2)}
    high = front({"lambda_max": 95.0}, {"lambda_max": 95.0}, *[{"lambda_max": 50.0}] * 4)
    assert sides(boundary_findings(high, SPACE)) == {("lambda_max", "upper", 2)}
    assert boundary_findings(high, linear) == []
    # 0.012 is 0.079 decade above 0.01: inside the margin of the log width
    assert sides(boundary_findings(front({"lambda_max": 0.012}, {"lambda_max": 0.0101}, {}, {}, {}, {}), SPACE)) == {
        ("lambda_max", "lower", 2)}


def test_int_parameters_linear_and_log():
    assert sides(boundary_findings(front({"timesteps": 8}, {"timesteps": 8}, {"timesteps": 7}, {}, {}, {}),
                                   SPACE)) == {("timesteps", "upper", 2)}
    assert sides(boundary_findings(front({"timesteps": 2}, {"timesteps": 3}, {}), SPACE)) == {
        ("timesteps", "lower", 1)}  # 1 of 3 is a third
    # batch_size: ln 60 / ln 64 = 0.984 counts in log space (59/63 = 0.94 would not in linear)
    found = boundary_findings(front({"batch_size": 60}, {"batch_size": 64}, {"batch_size": 50}, {}, {}, {}), SPACE)
    assert [(f.param, f.side, f.bound, f.count) for f in found] == [("batch_size", "upper", 64.0, 2)]


def test_a_query_answer_at_a_bound_is_a_finding_on_its_own():
    one = front({"threshold": 10.5}, {}, {}, {}, {}, {})  # 1 of 6: under a third
    assert boundary_findings(one, SPACE) == []
    assert boundary_findings(one, SPACE, {"knee": [2]}) == []  # the knee sits mid-range
    found = boundary_findings(one, SPACE, {"iso-accuracy": [1], "knee": [2], "max-accuracy-drop 1": [1, 3]})
    assert [(f.param, f.side, f.count, f.answers) for f in found] == [
        ("threshold", "upper", 1, ("iso-accuracy", "max-accuracy-drop 1"))]
    assert boundary_findings(one, SPACE, {"iso-accuracy": []}) == []  # a query nobody answers


def test_fewer_than_three_front_trials_say_nothing_and_the_baseline_does_not_count():
    edge = {"threshold": 10.5, "timesteps": 8}
    assert boundary_findings(front(edge, edge), SPACE, {"knee": [1]}) == []
    # the baseline is no sample of the space: its lambda_max = 0 lies below the log range, and it is no front trial
    assert boundary_findings(front(edge, edge, baseline={"lambda_max": 0.0, **edge}), SPACE) == []
    found = boundary_findings(front(edge, edge, {}, baseline={"lambda_max": 0.0}), SPACE, {"iso-accuracy": [0]})
    assert sides(found) == {("threshold", "upper", 2), ("timesteps", "upper", 2)}
    assert {f.front_size for f in found} == {3} and all(f.answers == () for f in found)


def test_categorical_and_when_inactive_parameters_are_skipped():
    numeric_choices = SearchSpace.model_validate({"params": {"timesteps": {"type": "categorical", "choices": [2, 8]}}})
    assert boundary_findings(front({"timesteps": 8}, {"timesteps": 8}, {"timesteps": 8}), numeric_choices) == []
    # temperature is unsampled (NaN) on constant-schedule trials: they neither count nor trip the rule
    inactive = front(*[{"schedule": "constant", "temperature": math.nan}] * 5, {"schedule": "annealing",
                                                                                "temperature": 1.0})
    assert boundary_findings(inactive, SPACE) == []
    assert sides(boundary_findings(inactive, SPACE, {"knee": [6]})) == {("temperature", "upper", 1)}
    as_none = inactive.astype({"params_temperature": object})
    as_none.loc[:4, "params_temperature"] = None  # how a trial table holds a parameter never sampled
    assert boundary_findings(as_none, SPACE) == []
    assert sides(boundary_findings(front(*[{"schedule": "annealing", "temperature": 0.1}] * 2, {}, {}, {}, {}),
                                   SPACE)) == {("temperature", "lower", 2)}  # a third of the whole front


def test_a_range_of_one_value_and_a_parameter_missing_from_the_table_are_skipped():
    fixed = SearchSpace.model_validate({"params": {"threshold": {"type": "float", "low": 1.0, "high": 1.0},
                                                   "lr": {"type": "float", "low": 0.001, "high": 0.1}}})
    assert boundary_findings(front({"threshold": 1.0}, {"threshold": 1.0}, {"threshold": 1.0}), fixed) == []


def test_the_message_is_the_one_line_of_the_issue(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space_file = str(tmp_path / "search_spaces" / "paper.yaml")
    finding = BoundaryFinding("lambda_max", "upper", 20.0, 4, 6, ("iso-accuracy",), space_file)
    assert finding.message() == ("lambda_max: 4 of 6 front trials (and the iso-accuracy answer) within 2% of the "
                                 "upper bound 20 — widen the range in search_spaces/paper.yaml")
    both = BoundaryFinding("timesteps", "lower", 2.0, 1, 3, ("iso-accuracy", "knee"), "/elsewhere/space.yaml")
    assert both.message() == ("timesteps: 1 of 3 front trials (and the iso-accuracy and knee answers) within 2% of "
                              "the lower bound 2 — widen the range in /elsewhere/space.yaml")
    unknown = BoundaryFinding("lr", "lower", 0.0005, 2, 5)
    assert unknown.message() == ("lr: 2 of 5 front trials within 2% of the lower bound 0.0005 — widen the range of "
                                 "the search space")


def _table(rows: list[tuple[int, bool, bool, float, float, float]]) -> pd.DataFrame:
    """A trial table: (trial, is_baseline, is_feasible, val_accuracy, spikes_per_sample, threshold)."""
    columns = ["trial", "is_baseline", "is_feasible", "val_accuracy", "spikes_per_sample", "params_threshold"]
    return pd.DataFrame(rows, columns=columns).assign(state="COMPLETE")


def test_study_findings_judge_the_feasible_front_with_the_iso_accuracy_and_knee_answers(tmp_path):
    spec = load_study_file(write_study(tmp_path, search_space={"params": {
        "threshold": {"type": "float", "low": 0.5, "high": 10.5}}}))
    # front: baseline 0, then 1 (iso-accuracy: as accurate, fewer spikes), 2, 3 (the knee), 4; trial 5 dominated
    table = _table([(0, True, True, 0.90, 100.0, 5.5), (1, False, True, 0.90, 60.0, 10.5),
                    (2, False, True, 0.89, 40.0, 5.5), (3, False, True, 0.88, 10.0, 5.5),
                    (4, False, True, 0.50, 5.0, 5.5), (5, False, True, 0.40, 50.0, 10.5)])
    found = study_findings(table, spec)
    assert [(f.side, f.count, f.front_size, f.answers) for f in found] == [("upper", 1, 4, ("iso-accuracy",))]
    assert found[0].space_file == spec.search_space_file
    assert study_findings(table, spec, query=("max_accuracy_drop", 5.0)) == found  # answered by trial 3
    with_drop = study_findings(table, spec, query=("max_accuracy_drop", 0.5))  # trial 1 again
    assert with_drop[0].answers == ("iso-accuracy", "max-accuracy-drop 0.5")
    # without a baseline there is no iso-accuracy answer: nothing sits at the bound but 1 of 4 front trials
    assert study_findings(table.assign(is_baseline=False), spec) == []
    # trial 1 breaks the constraint: off the front, unless infeasible trials compete
    infeasible = table.assign(is_feasible=table["trial"] != 1)
    assert study_findings(infeasible, spec) == []
    assert study_findings(infeasible, spec, include_infeasible=True) == found


def test_the_study_records_which_file_holds_its_search_space(tmp_path):
    inline = write_study(tmp_path, name="inline")
    assert load_study_file(inline).search_space_file == str(inline.resolve())
    (tmp_path / "spaces").mkdir()
    (tmp_path / "spaces" / "s.yaml").write_text("params:\n  lambda_max: {type: float, low: 0.1, high: 1.0}\n")
    spec = load_study_file(write_study(tmp_path, name="by_path", search_space="spaces/s.yaml"))
    assert spec.search_space_file == str((tmp_path / "spaces" / "s.yaml").resolve())
    # a snapshot (search space inlined) keeps the file; read back from a storage, nothing names the inline one
    again = parse_study(spec.to_dict(), str(tmp_path / "snapshot.yaml"), Path("/"))
    assert again.search_space_file == spec.search_space_file
    data = load_study_file(inline).to_dict()
    data.pop("search_space_file")
    assert parse_study(data, "sqlite:///x.db (inline)", Path("/")).search_space_file is None


def test_a_snapshot_keeps_the_search_space_file(tmp_path, monkeypatch):
    """Read back by name from its snapshot (search space inlined), a study still names its space's file."""
    monkeypatch.chdir(tmp_path)
    Path("spaces").mkdir()
    Path("spaces", "s.yaml").write_text("params:\n  lambda_max: {type: float, low: 0.1, high: 1.0}\n")
    write_snapshot(load_study_file(write_study(tmp_path, name="byfile", search_space="spaces/s.yaml")),
                   Path("results", "byfile"))
    assert open_study("byfile", results="results").spec.search_space_file == str(Path("spaces/s.yaml").resolve())
    # a snapshot written before the record existed names no file: editing the snapshot would change nothing
    snapshot = Path("results", "byfile", "study.yaml")
    data = yaml.safe_load(snapshot.read_text())
    del data["search_space_file"]
    snapshot.write_text(yaml.safe_dump(data))
    assert open_study("byfile", results="results").spec.search_space_file is None
