"""Boundary notes on real tiny studies, in every place users read a study: the end of ``launch`` and ``resume``,
``status``, under ``pareto`` and ``query`` (stderr), the report, and ``Study.boundary_findings()``.

The edge study samples ``timesteps`` from {2, 3}: every front trial sits on a bound, so at least half of the front
shares one. What each place must say is worked out from the stored front (``Study.pareto``), not from the rule.
"""

from __future__ import annotations

import html
import io

import pandas as pd
import pytest

from helpers import cli, write_study
from sparsity_search.api import open_study
from sparsity_search.cli import main
from sparsity_search.report import write_report

LAMBDA = {"type": "float", "low": 0.05, "high": 5.0, "log": True}
EDGE_SPACE = {"params": {"lambda_max": LAMBDA, "timesteps": {"type": "int", "low": 2, "high": 3}}}


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    """(study file, results, launch's output): launched once, from the command line, for every check here."""
    folder = tmp_path_factory.mktemp("edge")
    path = write_study(folder, name="edge", search_space=EDGE_SPACE, n_trials=8)
    results = folder / "results"
    proc = cli("launch", path, "--results", results, "-q", check=True)
    return path, results, proc


def _notes(text: str) -> list[str]:
    return [line[len("note: "):] for line in text.splitlines() if line.startswith("note: ")]


def _sitting(front: pd.DataFrame) -> dict[str, int]:
    """Front trials (the baseline left out) on each bound of timesteps, whose range holds nothing else."""
    values = front.loc[~front["is_baseline"], "params_timesteps"]
    return {"lower": int((values == 2).sum()), "upper": int((values == 3).sum())}


def test_the_api_reports_every_bound_a_third_of_the_front_sits_on(edge):
    path, results, _ = edge
    study = open_study(path, results=str(results))
    front = study.pareto()
    size = int((~front["is_baseline"]).sum())
    assert size >= 3, "the edge study needs 3 front trials besides the baseline; give it more trials"
    found = {f.side: f for f in study.boundary_findings() if f.param == "timesteps"}
    sitting = _sitting(front)
    assert {side for side, n in sitting.items() if 3 * n >= size} <= set(found)
    assert {side: (f.count, f.front_size) for side, f in found.items()} == {
        side: (sitting[side], size) for side in found}
    assert {f.space_file for f in found.values()} == {str(path.resolve())}  # an inline space names the study file


def test_launch_ends_with_the_notes_on_stderr(edge):
    path, results, proc = edge
    expected = [f.message() for f in open_study(path, results=str(results)).boundary_findings()]
    assert expected and _notes(proc.stderr) == expected
    assert "note:" not in proc.stdout and "Pareto-optimal trials" in proc.stdout


def test_resume_status_pareto_and_query_print_them(edge, capsys):
    path, results, _ = edge
    study = open_study(path, results=str(results))
    expected = [f.message() for f in study.boundary_findings()]
    assert expected
    for command in (["resume", "-q"], ["status"]):
        assert main([command[0], str(path), "--results", str(results), *command[1:]]) == 0
        assert _notes(capsys.readouterr().err) == expected, command
    assert main(["pareto", str(path), "--results", str(results), "--format", "csv"]) == 0
    out = capsys.readouterr()
    assert _notes(out.err) == expected
    assert set(pd.read_csv(io.StringIO(out.out))["trial"]) == set(study.pareto()["trial"])  # stdout: the table only
    sparsest = int(study.query("max_accuracy_drop", 100.0).iloc[0]["trial"])
    side = "lower" if int(study.pareto().set_index("trial").loc[sparsest, "params_timesteps"]) == 2 else "upper"
    assert main(["query", str(path), "--results", str(results), "--max-accuracy-drop", "100"]) == 0
    notes = _notes(capsys.readouterr().err)  # the query's own answer counts too
    assert [n for n in notes if "max-accuracy-drop 100" in n] == [
        n for n in notes if n.startswith("timesteps: ") and f"{side} bound" in n]
    assert len(notes) >= 1 and not any("max-accuracy-drop" in n for n in expected)


def test_the_report_highlights_them(edge, tmp_path):
    path, results, _ = edge
    study = open_study(path, results=str(results))
    page = tmp_path / "report.html"
    write_report(study, page)
    text = page.read_text()
    assert "class='note' id='boundary'" in text
    for f in study.boundary_findings():  # the report judges with the answers it marks: compare the counts
        assert f"{f.param}: {f.count} of {f.front_size} front trials" in text
        assert html.escape("within " + f.message().split(" within ", 1)[1]) in text  # bound and file


def test_an_interior_front_says_nothing(tmp_path, capsys):
    path = write_study(tmp_path, name="inside", search_space={"params": {"lambda_max": LAMBDA}}, n_trials=6,
                       sampler={"name": "random"}, seed=3)
    results = tmp_path / "results"
    assert main(["launch", str(path), "--results", str(results), "-q"]) == 0
    launched = capsys.readouterr()
    study = open_study(path, results=str(results))
    front = study.pareto()
    values = front.loc[~front["is_baseline"], "params_lambda_max"]
    assert len(values) >= 3 and values.between(0.05 * 100 ** 0.02, 5.0 / 100 ** 0.02, inclusive="neither").all(), \
        f"the interior study needs 3 front trials away from the bounds; got {values.tolist()}: pick another seed"
    assert study.boundary_findings() == []
    assert "note:" not in launched.err
    for command in ("status", "pareto"):
        assert main([command, str(path), "--results", str(results)]) == 0
        assert "note:" not in capsys.readouterr().err
    write_report(study, tmp_path / "report.html")
    assert "id='boundary'" not in (tmp_path / "report.html").read_text()
