"""Constrained studies: every reader builds fronts and answers queries from feasible trials only (the readers run
in this process, ``cli_main``; the study is launched as a user launches it).

Expected answers come from the storage (``optuna.load_study(...).best_trials``, the trials' stored values and
constraints), never from the command under test.
"""

import io

import optuna
import pandas as pd
import pytest

from helpers import cli, cli_main, write_study
from sparsity_search.api import open_study
from sparsity_search.search import load_study_file
from sparsity_search.search.records import TrialRecord, trials_table

# The tiny study's trials reach 11-18 % validation accuracy after two epochs (the baseline is the best); a floor
# of 13 % leaves some trials on each side, and the two sparsest break it.
FLOOR = 0.13


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A constrained TPE study on the default journal storage, launched once for every test here."""
    folder = tmp_path_factory.mktemp("feasible")
    path = write_study(folder, sampler={"name": "tpe"}, n_trials=8, constraints={"min_accuracy": FLOOR})
    results = folder / "results"
    cli("launch", path, "--results", results, "-q", check=True)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(results / "tiny" / "study.journal")))
    stored = optuna.load_study(study_name="tiny", storage=storage)
    return path, results, stored


def _complete(stored: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return stored.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def _constraints(t: optuna.trial.FrozenTrial) -> list[float]:
    """The constraint values Optuna stored (a dict in Optuna 5, a list before)."""
    return list(t.constraints.values()) if isinstance(t.constraints, dict) else list(t.constraints)


def _feasible(t: optuna.trial.FrozenTrial) -> bool:
    return all(c <= 0 for c in _constraints(t))


def _front(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """Brute-force front of (max accuracy, min spikes) over stored values."""
    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    return {t.number for t in trials if not any(dominates(u.values, t.values) for u in trials)}


def _cli_json(*args) -> pd.DataFrame:
    return pd.read_json(io.StringIO(cli_main(*args, check=True).stdout), orient="records")


def test_the_study_has_trials_on_both_sides_of_the_constraint(study):
    _, _, stored = study
    feasible = [t for t in _complete(stored) if _feasible(t)]
    assert 0 < len(feasible) < len(_complete(stored))
    # Some trial breaking the constraint would be on the unconstrained front: the constraint changes the front.
    assert _front(_complete(stored)) - _front(feasible)


def test_constrained_sampling_records_the_constraint_on_every_trial(study):
    """The sampler was built with the study's constraint: Optuna stored ``min_accuracy - accuracy`` per trial
    (the value its constrained TPE/NSGA-II weigh when sampling), and ``best_trials`` filters on it."""
    _, _, stored = study
    for t in _complete(stored):
        assert _constraints(t) == pytest.approx([FLOOR - t.values[0]])
    assert {t.number for t in stored.best_trials} == _front(
        [t for t in _complete(stored) if t.values[0] >= FLOOR])


def test_pareto_cli_and_api_agree_with_optuna_best_trials(study):
    path, results, stored = study
    best = {t.number for t in stored.best_trials}
    shown = _cli_json("pareto", path, "--results", results, "--format", "json")
    assert set(shown["trial"]) == best and shown["is_feasible"].all()
    assert set(open_study(path, results=str(results)).pareto()["trial"]) == best


def test_include_infeasible_lets_every_complete_trial_compete(study):
    path, results, stored = study
    shown = _cli_json("pareto", path, "--results", results, "--format", "json", "--include-infeasible")
    assert set(shown["trial"]) == _front(_complete(stored))
    api = open_study(path, results=str(results)).pareto(include_infeasible=True)
    assert set(api["trial"]) == _front(_complete(stored))


def test_all_export_carries_is_feasible_from_the_stored_constraints(study, tmp_path):
    path, results, stored = study
    out = tmp_path / "all.csv"
    cli_main("pareto", path, "--results", results, "--all", "--format", "csv", "-o", out, check=True)
    table = pd.read_csv(out).set_index("trial")
    expected = {t.number: _feasible(t) for t in _complete(stored)}
    assert table["is_feasible"].to_dict() == expected
    front = set(table.index[table["is_pareto"]])
    assert front == {t.number for t in stored.best_trials}


def _cheapest(trials: list[optuna.trial.FrozenTrial]) -> int:
    return min(trials, key=lambda t: (t.values[1], -t.values[0])).number


def _query(path, results, *rule) -> list[int]:
    proc = cli_main("query", path, "--results", results, *rule, check=True)
    return [int(line.split()[0]) for line in proc.stdout.splitlines()[1:] if line.strip()]


def test_queries_answer_from_feasible_trials_only(study):
    path, results, stored = study
    best = stored.best_trials
    assert _query(path, results, "--min-accuracy", "0") == [_cheapest(best)]
    everyone = [t for t in _complete(stored) if t.number in _front(_complete(stored))]
    assert _query(path, results, "--min-accuracy", "0", "--include-infeasible") == [_cheapest(everyone)]
    assert _cheapest(everyone) != _cheapest(best)
    api = open_study(path, results=str(results))
    assert list(api.query("max_accuracy_drop", 100.0)["trial"]) == [_cheapest(best)]
    assert list(api.query("knee")["trial"])[0] in {t.number for t in best}
    assert list(api.query("max_accuracy_drop", 100.0, include_infeasible=True)["trial"]) == [_cheapest(everyone)]


def _hv_2d(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by (max accuracy, min spikes) points, summed strip by strip along the spikes axis."""
    xs = sorted({p[1] for p in points if p[1] < ref[1]} | {ref[1]})
    area = 0.0
    for lo, hi in zip(xs, xs[1:]):
        best = max([a for a, s in points if s <= lo], default=ref[0])
        area += (hi - lo) * max(best - ref[0], 0.0)
    return area


def test_hypervolume_and_status_count_feasible_trials_only(study):
    path, results, stored = study
    api = open_study(path, results=str(results))
    ref = api.reference_point()
    ref_point = (ref["val_accuracy"], ref["spikes_per_sample"])
    feasible = [t.values for t in stored.best_trials]
    everyone = [t.values for t in _complete(stored)]
    assert api.hypervolume() == pytest.approx(_hv_2d(feasible, ref_point))
    assert api.hypervolume(include_infeasible=True) == pytest.approx(_hv_2d(everyone, ref_point))
    assert api.hypervolume() < api.hypervolume(include_infeasible=True)
    history = api.hypervolume_history()
    assert len(history) == len(everyone) and history[-1] == pytest.approx(api.hypervolume())

    status = cli_main("status", path, "--results", results, check=True).stdout
    n_feasible = sum(_feasible(t) for t in _complete(stored))
    assert f"({n_feasible} of {len(everyone)} complete trials meet it)" in status
    assert f"hypervolume: {api.hypervolume():.6g}" in status


def test_a_bad_study_name_with_the_new_flag_is_one_line_and_exit_2(tmp_path):
    proc = cli_main("pareto", "nosuchstudy", "--results", tmp_path, "--include-infeasible")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def _records(accuracies: list[float | None]) -> list[TrialRecord]:
    return [TrialRecord(number=i, state="COMPLETE" if a is not None else "FAIL",
                        metrics={} if a is None else {"val_accuracy": a, "spikes_per_sample": 10.0 * a})
            for i, a in enumerate(accuracies)]


def test_trials_table_marks_feasibility_for_any_backend(tmp_path):
    """Both backends build their table from ``TrialRecord``s: feasibility comes from the spec and the metrics."""
    records = _records([0.9, 0.5, 0.95, None])
    constrained = load_study_file(write_study(tmp_path, name="c", constraints={"min_accuracy": 0.9}))
    table = trials_table(records, constrained)
    assert table["is_feasible"].tolist() == [True, False, True, False]
    assert table["is_pareto"].tolist() == [True, False, True, False]  # trial 1, the cheapest, breaks the floor
    free = trials_table(records, load_study_file(write_study(tmp_path, name="f")))
    assert free["is_feasible"].tolist() == [True, True, True, True]  # no constraint: every trial is feasible
    assert free["is_pareto"].tolist() == [True, True, True, False]


def test_empty_table_has_the_column(tmp_path):
    table = trials_table([], load_study_file(write_study(tmp_path)))
    assert "is_feasible" in table and table["is_feasible"].dtype == bool
