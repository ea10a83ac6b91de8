"""What a launch recorded about its study, and holding later commands to it.

A study outlives the command that launched it: ``resume`` after a crash and ``worker`` on another machine must run
it as it was launched, not as the study file's defaults say. Two things are recorded:

* the validated study file (``study.yaml`` beside the results; on Optuna also in the storage): a later command
  given a study file that differs in what shapes the trials (``SHAPING``) is a one-line error, and the recorded
  backend wins over the file's;
* the run flags launch was given (``FLAGS``): in ``launch.yaml`` beside the results, and on Optuna also as a study
  user attribute (``optuna.study.LAUNCH_ATTR``), so ``worker NAME --storage URL`` elsewhere sees them. A later
  ``launch``/``resume`` adds the flags it is given; a flag not given again takes its recorded value.

Folders written before ``launch.yaml`` existed load as launched without flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..config import from_dict
from ..errors import ConfigError
from .study_file import StudySpec

LAUNCH_FILE = "launch.yaml"
# Run flags recorded at launch, by their RunSettings (and argparse) names; gpus as typed ("auto" or "0,1").
FLAGS = ("n_trials", "timeout", "population", "workers", "gpus", "trials_per_gpu", "device", "threads",
         "ray_address", "cpus_per_trial", "max_concurrent")
# Flags that together say how trials are laid out on this machine: given one, the recorded others do not apply.
LAYOUT = ("workers", "gpus", "trials_per_gpu")
# Study-file fields that decide what a trial trains and how it is judged: changing one mixes incomparable trials.
SHAPING = ("dataset", "model", "train", "search_space", "objectives", "constraints", "early_stopping", "baseline",
           "pbt")
# train: fields that say where a trial runs, not what it trains: they may differ between machines and runs.
MACHINE_KEYS = ("device", "threads", "data_dir", "download")


def read_launch_file(results_dir: Path) -> dict[str, Any]:
    """The flags recorded in ``<results>/<name>/launch.yaml``; none for a folder without it."""
    path = results_dir / LAUNCH_FILE
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return {k: v for k, v in data.items() if k in FLAGS} if isinstance(data, dict) else {}


def write_launch_file(results_dir: Path, flags: dict[str, Any]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    tmp = results_dir / (LAUNCH_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump({k: flags[k] for k in FLAGS if k in flags}, sort_keys=False))
    tmp.replace(results_dir / LAUNCH_FILE)


def _shape(spec: StudySpec) -> dict[str, Any]:
    shape = {k: v for k, v in spec.to_dict().items() if k in SHAPING}
    trained = from_dict(spec.fixed()).to_dict()  # resolved: an explicit default equals an omitted one
    shape["train"] = {k: v for k, v in trained.items() if k not in MACHINE_KEYS}
    shape.pop("dataset"), shape.pop("model")  # inside the resolved train fields
    return shape


def _plain(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def check_matches(spec: StudySpec, recorded: StudySpec, where: str, source: str | None = None) -> None:
    """A one-line error naming the first field that shapes the trials where ``spec`` differs from ``recorded``."""
    mine, theirs = _shape(spec), _shape(recorded)
    for key in mine:
        if mine[key] != theirs[key]:
            was, now = theirs[key], mine[key]
            if isinstance(now, dict) and isinstance(was, dict):  # a plain field inside: train.lr
                sub = next(k for k in {**was, **now} if now.get(k) != was.get(k))
                if _plain(was.get(sub)) and _plain(now.get(sub)):
                    key, was, now = f"{key}.{sub}", was.get(sub), now.get(sub)
            what = f"{key} {was!r} (this file: {now!r})" if _plain(was) and _plain(now) else f"another {key}"
            raise ConfigError(f"study {spec.name!r} in {where} was launched with {what}; restore it, or launch "
                              "under another name or --results", field=key, source=source)


def ray_restorable(results_dir: Path) -> bool:
    """Whether a Ray study's Tune experiment (``ray.backend.EXPERIMENT``) would be restored, keeping the budget and
    timeout it started with: Tune's own ``Tuner.can_restore`` test, without importing Ray."""
    return (results_dir / "ray" / "tuner.pkl").exists()
