"""Promotion-type MO-ASHA on the Optuna backend: trials pause at rungs and are resumed from the rung checkpoint.

The studies search the learning rate over three decades with reduction factor 2 and rungs at epochs 1 and 2 of 4,
as in test_moasha_backends.py. The bookkeeping (claims, duplicates, one row per trial) is checked first on
in-memory studies built by hand, then whole studies run from the CLI.
"""

from __future__ import annotations

import io

import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from helpers import Hold, cli, write_study
from sparsity_search.api import locate, open_study
from sparsity_search.search.optuna import promotion
from sparsity_search.search.optuna.storage import open_storage
from sparsity_search.search.optuna.study import finished_count, records_from_trials

MAX_EPOCHS, RUNGS = 4, (1, 2)
SPACE = {"params": {"lambda_max": {"type": "float", "low": 0.01, "high": 10.0, "log": True},
                    "lr": {"type": "float", "low": 1e-5, "high": 3e-2, "log": True}}}
TRAIN = {"epochs": MAX_EPOCHS, "hidden": [32], "timesteps": 2, "batch_size": 128}
PROMOTION = {"kind": "moasha", "min_epochs": 1, "reduction_factor": 2, "mode": "promotion"}
DIST = {"lr": FloatDistribution(1e-5, 3e-2, log=True)}


def _study(folder, n_trials=8, **changes):
    return write_study(folder, name="promo", n_trials=n_trials, search_space=SPACE, train=dict(TRAIN),
                       **{"early_stopping": PROMOTION, **changes})


def _raw(results, name="promo"):
    return optuna.load_study(study_name=name, storage=open_storage(str(results / name / "study.journal"))).trials


def _epochs(t):
    return sorted(int(k[len("epoch_"):]) for k in t.user_attrs if k.startswith("epoch_"))


# --- bookkeeping on hand-made studies ---------------------------------------------------------------------------

def _paused(study, lr, rung, acc, spikes):
    attrs = {f"rung_{r:03d}": [acc, spikes] for r in RUNGS if r <= rung}
    attrs.update({f"epoch_{e:03d}": {"val_accuracy": acc, "spikes_per_sample": spikes} for e in range(1, rung + 1)})
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"lr": lr}, distributions=DIST,
                                 user_attrs={**attrs, promotion.PAUSED_ATTR: rung}))
    return study.trials[-1].number


def _spec(tmp_path):
    return locate(_study(tmp_path))[0]


def test_a_claimed_promotion_enqueues_one_continuation_that_does_not_count(tmp_path):
    spec, study = _spec(tmp_path), optuna.create_study(directions=["maximize", "minimize"])
    a = _paused(study, 1e-3, 1, 0.9, 10.0)
    assert not promotion.promote(study, spec)  # 1 // 2 = 0: the rung waits for a second record
    b = _paused(study, 1e-4, 1, 0.5, 20.0)  # dominated by a
    assert promotion.promote(study, spec)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs[promotion.CONTINUES_ATTR] == [a, 1]
    assert waiting[0].system_attrs["fixed_params"] == {"lr": 1e-3} and waiting[0].user_attrs["origin"] == a
    assert not promotion.promote(study, spec)  # claimed: a is no longer paused, b is not in the top
    assert set(promotion.paused_trials(study.trials, study.user_attrs)) == {b}
    assert finished_count(study) == 2  # the continuation will not count against n_trials


def test_a_second_continuation_of_the_same_rung_drops_out_and_rows_merge(tmp_path):
    spec, study = _spec(tmp_path), optuna.create_study(directions=["maximize", "minimize"])
    a = _paused(study, 1e-3, 1, 0.9, 10.0)
    _paused(study, 1e-4, 1, 0.5, 20.0)
    for _ in range(2):  # the residual race: two workers both enqueued a continuation of a at rung 1
        study.enqueue_trial({"lr": 1e-3}, user_attrs={"origin": a, promotion.CONTINUES_ATTR: [a, 1]})
    first, second = study.ask(), study.ask()
    assert promotion.duplicate_of(first) is None and promotion.duplicate_of(second) == first.number
    second.set_user_attr(promotion.DUPLICATE_ATTR, first.number)
    study.tell(second, state=TrialState.PRUNED)
    for e in range(2, MAX_EPOCHS + 1):
        first.set_user_attr(f"epoch_{e:03d}", {"val_accuracy": 0.95, "spikes_per_sample": 9.0, "epoch": e})
    first.set_user_attr("result", {"val_accuracy": 0.95, "spikes_per_sample": 9.0, "epochs": MAX_EPOCHS,
                                   "resumed_from_epoch": 1})
    study.tell(first, (0.95, 9.0))
    records = {r.number: r for r in records_from_trials(spec, study.trials)}
    assert sorted(records) == [0, 1]  # the continuation and the dropped duplicate are a's row
    assert records[a].state == "COMPLETE" and records[a].epochs == MAX_EPOCHS
    assert records[a].metrics["val_accuracy"] == 0.95 and records[1].state == "PAUSED"


# --- studies from the CLI ---------------------------------------------------------------------------------------

def _check_promoted_study(results, n_trials, overshoot=0):
    """Budget met by first attempts; continuations resumed at their rung; one row per trial; PAUSED shown."""
    raw = _raw(results)
    firsts = [t for t in raw if promotion.CONTINUES_ATTR not in t.user_attrs]
    assert n_trials <= sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in firsts) <= n_trials + overshoot
    assert any(promotion.PAUSED_ATTR in t.user_attrs for t in raw), "no trial paused"
    # the sampler sees every paused attempt ranked: positive constraint values, higher rungs lower
    scores = {r: [t.constraints[promotion.RUNG_CONSTRAINT] for t in raw if t.state == TrialState.PRUNED
                  and t.user_attrs.get(promotion.PAUSED_ATTR) == r] for r in RUNGS}
    assert all(v > 0 for vs in scores.values() for v in vs)
    assert not (scores[1] and scores[2]) or max(scores[2]) < min(scores[1])
    assert not any(t.constraints for t in raw if t.state == TrialState.COMPLETE)
    continuations = [t for t in raw if promotion.CONTINUES_ATTR in t.user_attrs
                     and promotion.DUPLICATE_ATTR not in t.user_attrs]
    assert continuations, "no paused trial was resumed"
    for c in continuations:
        origin, rung = c.user_attrs[promotion.CONTINUES_ATTR]
        paused = [t for t in raw if t.user_attrs.get("origin", t.number) == origin
                  and t.user_attrs.get(promotion.PAUSED_ATTR) == rung]
        # queued with its origin's parameters; one killed before it started has not taken them yet
        assert len(paused) == 1 and c.system_attrs["fixed_params"] == paused[0].params
        if c.state == TrialState.FAIL and not _epochs(c):
            continue  # killed before its first epoch (its heartbeat retry continues)
        assert c.params == paused[0].params
        assert _epochs(c)[0] == rung + 1  # nothing before the rung was trained again
        if c.state == TrialState.COMPLETE:
            retry = "failed_trial" in c.system_attrs  # resumed from where the killed attempt got to
            assert (c.user_attrs["result"]["resumed_from_epoch"] >= rung) if retry else \
                (c.user_attrs["result"]["resumed_from_epoch"] == rung)
            assert c.user_attrs["result"]["epochs"] == MAX_EPOCHS

    table = open_study("promo", results=str(results)).trials()
    assert sorted(table["trial"]) == sorted(t.number for t in firsts)  # one row per trial, whole history
    paused = table[table["state"] == "PAUSED"]
    assert paused["epochs"].isin(RUNGS).all() and paused["test_accuracy"].isna().all()
    rows = table.set_index("trial")
    for c in continuations:  # a continuation's row is the latest first attempt of its origin (a retry's, if any)
        if c.state == TrialState.COMPLETE:
            row = max(t.number for t in firsts if t.user_attrs.get("origin", t.number) == c.user_attrs["origin"]
                      and t.number < c.number)
            assert rows.loc[row, "state"] == "COMPLETE" and rows.loc[row, "epochs"] == MAX_EPOCHS
    status = cli("status", "promo", "--results", results, check=True).stdout
    assert f"paused={len(paused)}" in status
    out = cli("pareto", "promo", "--results", results, "--format", "json", "--all", check=True).stdout
    shown = pd.read_json(io.StringIO(out), orient="records")
    assert set(paused["trial"]) <= set(shown["trial"])
    return raw


def test_two_workers_pause_and_resume_trials_from_their_rung_checkpoint(tmp_path):
    # whether a paused trial is ever resumed depends on the order the two workers' trials reach a rung in (one that
    # is itself the promotable trial goes on without pausing): with 8 trials one of six suite runs saw none; with
    # 12, three runs had 2, 4 and 2 continuations
    results = tmp_path / "r"
    cli("launch", _study(tmp_path, n_trials=12), "--results", results, "--workers", "2", "-q", check=True)
    raw = _check_promoted_study(results, 12, overshoot=1)
    assert len({t.user_attrs["worker"] for t in raw if "worker" in t.user_attrs}) == 2


@pytest.mark.parametrize("population", [1, 4])
def test_a_killed_and_resumed_study_keeps_its_paused_trials(tmp_path, population):
    # held after epoch 3, which only the baseline (let through) and continuations past the last rung reach: by then
    # trials have paused at both rungs, and the kill lands in the middle of a continuation
    study = _study(tmp_path, n_trials=10, heartbeat={"interval": 1, "grace_period": 3})
    results = tmp_path / "r"
    held = Hold(tmp_path / "hold", epoch=RUNGS[-1] + 1).kill_launch_when(
        bool, study, "--results", results, "--population", str(population), "-q",
        what="a continuation past the last rung")
    raw = _raw(results)
    before = {t.number: t for t in raw if promotion.PAUSED_ATTR in t.user_attrs}
    assert len(before) >= 2, "fewer than two trials paused before a continuation passed the last rung"
    running = [t for t in raw if t.state == TrialState.RUNNING]
    assert running and all(t.user_attrs.get(promotion.CONTINUES_ATTR) for t in running)
    assert {f"{t.user_attrs['origin']:05d}" for t in running} == set(held)  # the held ones are the continuations
    assert all(_epochs(t)[-1] == RUNGS[-1] + 1 for t in running)

    cli("resume", "promo", "--results", results, "-q", check=True)
    raw = _check_promoted_study(results, 10)
    after = {t.number: t for t in raw}
    for number, t in before.items():  # kept as they were: state, rung, records
        assert after[number].state == TrialState.PRUNED and after[number].user_attrs == t.user_attrs


def test_an_unknown_mode_is_one_line_and_exit_2(tmp_path):
    proc = cli("launch", _study(tmp_path, early_stopping={**PROMOTION, "mode": "sometimes"}), "--results",
               tmp_path / "r", "-q")
    assert proc.returncode == 2 and "early_stopping.mode" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_population_rounds_pause_members_and_resume_them_together(tmp_path):
    results = tmp_path / "r"
    cli("launch", _study(tmp_path, n_trials=10), "--results", results, "--population", "4", "-q", check=True)
    raw = _check_promoted_study(results, 10)
    # members of one population share their clock: continuations trained as one population report the same
    # wall time for the epochs after their rung
    continuations = [t for t in raw if promotion.CONTINUES_ATTR in t.user_attrs and t.state == TrialState.COMPLETE]
    clocks = [t.user_attrs[f"epoch_{MAX_EPOCHS:03d}"]["wall_time_s"] for t in continuations]
    print(sorted(clocks), [t.user_attrs[promotion.CONTINUES_ATTR] for t in continuations])
    assert len(clocks) > len(set(clocks)), "no two continuations trained as one population"
