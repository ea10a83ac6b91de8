"""Reading a Tune experiment's trial folders (``params.json``, ``result.json``, ``error.txt``) as records.

No Ray calls: ``records`` works during or after a sweep. Tune writes the files on the driver and copies them to the
results folder with its experiment snapshots (every 2 s here, ``TUNE_GLOBAL_CHECKPOINT_S``), so a live view lags
by a few seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..records import TrialRecord, baseline_params
from ..study_file import StudySpec
from .trainable import BASELINE, DIVERGED, FINAL, NUMBER, TRAIN_CONFIG, config_from_tune

# Keys Tune adds to every reported result; records keep only the trainer's metrics (plus node_id, worker).
TUNE_KEYS = frozenset({"timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration",
                       "trial_id", "date", "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip",
                       "config", "time_since_restore", "iterations_since_restore", "experiment_tag",
                       FINAL, TRAIN_CONFIG})
FAILURE = re.compile(r"^Failure # (\d+) \(occurred at (\S+)\)$", re.MULTILINE)


def read_trial(folder: Path, spec: StudySpec, stopped: dict[int, int] | None = None,
               paused: dict[int, int] | None = None) -> tuple[tuple, TrialRecord] | None:
    """One Tune trial folder as a record, with a rank (finished first, then most recent) to pick duplicates.

    ``stopped``: the trial numbers MO-ASHA stopped (``scheduler.stopped_trials``), read as PRUNED; ``paused``: those
    waiting at a rung to be promoted (``scheduler.paused_trials``), read as PAUSED.
    """
    try:
        config = json.loads((folder / "params.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if NUMBER not in config:
        return None
    rows = read_results(folder / "result.json")
    failures = read_failures(folder / "error.txt")
    last_date = rows[-1].get("date", "") if rows else ""
    errored = (len(failures) > spec.ray.max_failures and failures[-1][0] >= last_date) if failures else False
    number = int(config[NUMBER])
    record = record_from_results(spec, config, rows, failed=errored, pruned=number in (stopped or {}),
                                 paused=number in (paused or {}),
                                 reason=failures[-1][1] if failures and errored else "")
    return (record.state != "RUNNING", last_date), record


def read_results(path: Path) -> list[dict[str, Any]]:
    """The JSON lines Tune wrote; a half-written last line (a snapshot taken mid-write) is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_failures(path: Path) -> list[tuple[str, str]]:
    """``(date, last line of the error)`` per failure Tune logged in ``error.txt``."""
    if not path.exists():
        return []
    text = path.read_text()
    marks = list(FAILURE.finditer(text))
    failures = []
    for i, mark in enumerate(marks):
        body = text[mark.end(): marks[i + 1].start() if i + 1 < len(marks) else len(text)]
        lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
        failures.append((mark.group(2), lines[-1] if lines else "trial failed"))
    return failures


def record_from_results(spec: StudySpec, config: dict[str, Any], rows: list[dict[str, Any]], failed: bool = False,
              reason: str = "", pruned: bool = False, paused: bool = False) -> TrialRecord:
    """A trial from its Tune config and reported rows (epoch rows, then the final or diverged row).

    ``pruned``: Tune ended the trial without an error; without a final or diverged row, MO-ASHA stopped it.
    ``paused``: it waits at an MO-ASHA rung (promotion) with the rung epoch as its last row.
    """
    baseline = bool(config.get(BASELINE))
    last = rows[-1] if rows else {}
    epoch_rows = [r for r in rows if "epoch" in r and not r.get(FINAL)]
    if last.get(DIVERGED):
        state, reason = "FAIL", last.get("fail_reason", "diverged")
        shown = epoch_rows[-1] if epoch_rows else {}
    elif last.get(FINAL):
        state, shown = "COMPLETE", last
    elif pruned and not failed:
        state, shown = "PRUNED", last
    elif paused and not failed:
        state, shown = "PAUSED", last
    else:
        state, shown = ("FAIL" if failed else "RUNNING"), last
    metrics = {k: v for k, v in shown.items() if k not in TUNE_KEYS and v is not None}
    metrics.pop(DIVERGED, None)
    epochs = int(metrics.get("epochs", max((int(r["epoch"]) for r in epoch_rows), default=0)))
    used = last.get(TRAIN_CONFIG) or config_from_tune(spec, config).to_dict()
    params = baseline_params(spec) if baseline else {n: config[n] for n in spec.space().names() if n in config}
    return TrialRecord(number=int(config[NUMBER]), state=state, is_baseline=baseline, params=params,
                       metrics=metrics, epochs=epochs, fail_reason=reason if state == "FAIL" else "",
                       duration_s=last.get("time_total_s"), config=used)


def epoch_rows(experiment: Path, numbers: set[int]) -> dict[int, list[dict[str, Any]]]:
    """The per-epoch rows of the trials ``numbers``; a trial run again after a killed driver has two folders, and
    the one with more epochs wins."""
    found: dict[int, list[dict[str, Any]]] = {}
    for folder in sorted(experiment.iterdir()):
        try:
            number = int(json.loads((folder / "params.json").read_text())[NUMBER])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if number in numbers:
            rows = [r for r in read_results(folder / "result.json") if "epoch" in r and not r.get(FINAL)]
            if len(rows) > len(found.get(number, [])):
                found[number] = rows
    return found
