"""Tune's function trainable: it only wraps ``train(cfg, report)``.

It reports every epoch's metrics, with the trainer's ``checkpoint.pt`` as a ``tune.Checkpoint`` after the first
epoch and then at most every ``CHECKPOINT_EVERY_S`` seconds (each epoch of a real network), and with promotion-type
MO-ASHA at every rung epoch too (a trial paused there resumes from exactly that epoch); a retried or resumed
trial gets that checkpoint back (``tune.get_checkpoint()``), copies it into its checkpoint folder and the trainer
continues from the epoch after it. The last report is the trainer's row (test metrics included) with ``final: True``.
``DivergedError`` is not retried (it would diverge again): the trial reports ``diverged: True`` and its reason,
returns, and counts as failed, for the searcher (Optuna ``FAIL``) and in the records.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

import ray
from ray import tune

from ...config import TrainConfig
from ...errors import DivergedError
from ...moasha import rung_epochs
from ...trainer import train
from ..study_file import StudySpec

NUMBER, BASELINE = "trial_number", "is_baseline"  # added to every trial's config by StudySearch
FINAL, DIVERGED, TRAIN_CONFIG = "final", "diverged", "train_config"  # keys of a trial's last report
# A trial hands Tune its checkpoint with the first epoch's report and then at most once per this many seconds.
# Tune deletes all but the newest two (num_to_keep), while the experiment snapshot that names a trial's latest
# checkpoint reaches the results folder asynchronously: with checkpoints a fraction of a second apart (small
# nets) a driver killed on a busy machine left a snapshot naming a deleted checkpoint, and restore failed.
CHECKPOINT_EVERY_S = 10.0


@dataclass
class TrialJob:
    """What every trial of one run shares: the study, where to train, and the training function."""

    spec: StudySpec
    device: str
    threads: int
    train_fn: Callable[..., dict[str, Any]] = train  # tests pass a wrapper that injects faults


def config_from_tune(spec: StudySpec, config: dict[str, Any]) -> TrainConfig:
    """The TrainConfig a Tune trial config stands for: the baseline, or the fixed settings plus sampled params."""
    if config.get(BASELINE):
        return spec.baseline_config()
    return spec.sampled_config({k: v for k, v in config.items() if k not in (NUMBER, BASELINE)})


def rungs_of(spec: StudySpec, config: dict[str, Any]) -> set[int]:
    """Rung epochs of one trial: its own training epochs decide where they end, as on the Optuna side."""
    es = spec.early_stopping
    return set(rung_epochs(es.min_epochs, es.reduction_factor, es.max_epochs or config_from_tune(spec, config).epochs))


def pause_epochs(spec: StudySpec, config: dict[str, Any]) -> set[int]:
    """Epochs at which the scheduler may pause this trial: its rungs under promotion (never the baseline's)."""
    es = spec.early_stopping
    if es.kind != "moasha" or es.mode != "promotion" or config.get(BASELINE):
        return set()
    return rungs_of(spec, config)


def run_trial(config: dict[str, Any], job: TrialJob) -> None:
    """Tune's function trainable: train one config, reporting each epoch with the trainer's checkpoint."""
    where = {"node_id": ray.get_runtime_context().get_node_id(), "worker": f"{socket.gethostname()}:{os.getpid()}"}
    # Tune checks that every result names the searcher's metrics; test metrics are only known at the end.
    pending = dict.fromkeys(job.spec.objective_names)
    with tempfile.TemporaryDirectory(prefix="sparsity-search-") as scratch:
        work = os.path.join(scratch, f"{config[NUMBER]:05d}")  # named by the trial number, as on the Optuna backend
        os.mkdir(work)
        cfg = config_from_tune(job.spec, config).replace(checkpoint_dir=work, resume=True, device=job.device,
                                                     threads=job.threads)
        restored = tune.get_checkpoint()
        if restored is not None:  # a retry after a failure, or a resumed experiment
            restored.to_directory(work)

        last_checkpoint, pauses = -math.inf, pause_epochs(job.spec, config)

        def report(epoch: int, metrics: dict[str, Any]) -> None:
            nonlocal last_checkpoint
            result, now = {**pending, **metrics, **where}, time.monotonic()
            if now - last_checkpoint < CHECKPOINT_EVERY_S and epoch not in pauses:
                tune.report(result)
                return
            last_checkpoint = now
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(work))

        try:
            row = job.train_fn(cfg, report)
        except DivergedError as exc:
            tune.report({**pending, DIVERGED: True, "fail_reason": str(exc), **where})
            return
        row = dict(row)
        used = row.pop("config", cfg.to_dict())
        tune.report({**pending, **row, **where, FINAL: True, TRAIN_CONFIG: used})
