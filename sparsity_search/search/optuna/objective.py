"""The per-trial objective of the Optuna backend: sample (or take the baseline), train, store what happened.

Everything a trial adds to the plain Optuna storage lives in its user attributes: ``is_baseline``, ``config`` (the
resolved TrainConfig; a PBT member's learned one once it finished), ``epoch_NNN`` (per-epoch metrics), ``result``
(the trainer's final row), ``fail_reason``, ``worker``, ``origin`` and the sampler's ``constraints``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Any, Callable

import optuna

from ...config import TrainConfig, save_config
from ...data import LOAD_FIELDS, DataSplits, load_data
from ...devices import resolve_device
from ...errors import ConfigError, DivergedError
from ...trainer import train
from ...training import load_checkpoint
from .. import _compat, _samplers
from .._base import RunSettings
from ..study_file import StudySpec
from .promotion import DUPLICATE_ATTR, drops_out, is_continuation
from .rungs import moasha_hook
from .storage import ORIGIN_ATTR, TrialHeartbeat, is_journal, origin_number

log = logging.getLogger(__name__)


class Objective:
    """Optuna objective: sample (or take the baseline), train with checkpoints, record metrics on the trial."""

    def __init__(self, spec: StudySpec, settings: RunSettings):
        self.spec, self.settings = spec, settings
        self._data: dict[tuple, DataSplits] = {}

    def config_for(self, trial: optuna.Trial) -> TrainConfig:
        """The resolved config of this trial, with its own checkpoint folder (shared by its retry)."""
        if trial.user_attrs.get("is_baseline"):
            cfg = self.spec.baseline_config()
        else:
            cfg = self.spec.sampled_config(self.spec.space().suggest(trial))
        trial_dir = self.settings.results_dir / "trials" / f"{origin_number(trial):05d}"
        cfg = cfg.replace(checkpoint_dir=str(trial_dir), resume=True, device=self.settings.device,
                          threads=self.settings.threads or cfg.threads)
        save_config(cfg, trial_dir / "config.yaml")
        trial.set_user_attr("config", cfg.to_dict())
        return cfg

    def data_for(self, cfg: TrainConfig) -> DataSplits:
        key = cfg.key(LOAD_FIELDS + ("device",))  # trials equal in these share one load
        if key not in self._data:
            self._data = {key: load_data(cfg, resolve_device(cfg.device))}
        return self._data[key]

    def start(self, trial: optuna.Trial) -> TrainConfig:
        """Mark the trial as this worker's and resolve its config (both stored on the trial)."""
        trial.set_user_attr(ORIGIN_ATTR, origin_number(trial))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        cfg = self.config_for(trial)
        self._restore_epochs(trial, cfg)
        return cfg

    @staticmethod
    def _restore_epochs(trial: optuna.Trial, cfg: TrainConfig) -> None:
        """A heartbeat retry resumes from its checkpoint, and its killed attempt may have been killed between saving
        an epoch's checkpoint and storing that epoch's metrics (members save before they report): store the epochs
        the checkpoint has and the trial lacks, so none goes missing. (A continuation's epochs are its origin's.)"""
        if origin_number(trial) == trial.number or is_continuation(trial):
            return
        try:
            state = load_checkpoint(cfg)
        except ConfigError:  # another architecture: training fails the trial with this error
            return
        for metrics in state["history"] if state is not None else []:
            key = f"epoch_{metrics['epoch']:03d}"
            if key not in trial.user_attrs:
                trial.set_user_attr(key, metrics)

    def report_for(self, trial: optuna.Trial, cfg: TrainConfig) -> Callable[[int, dict[str, Any]], None]:
        """The trainer's per-epoch callback: store the epoch's metrics, then let MO-ASHA stop the trial."""
        stop_early = moasha_hook(self.spec, cfg.epochs)

        def report(epoch: int, metrics: dict[str, Any]) -> None:
            trial.set_user_attr(f"epoch_{epoch:03d}", metrics)
            if stop_early is not None:
                stop_early(trial, epoch, metrics)

        return report

    def heartbeat(self, trial: optuna.Trial, cfg: TrainConfig, rdb: bool = False) -> contextlib.AbstractContextManager:
        """The trial's heartbeat file on journal storages; with ``rdb``, Optuna's own heartbeat thread (which
        ``study.optimize`` starts by itself, but trials told by hand need)."""
        if is_journal(self.settings.storage):
            return TrialHeartbeat(Path(cfg.checkpoint_dir), self.spec.heartbeat.interval)
        if rdb:
            return _compat.heartbeat_thread(trial)
        return contextlib.nullcontext()

    def failed(self, trial: optuna.Trial, exc: DivergedError) -> None:
        trial.set_user_attr("fail_reason", str(exc))
        log.warning("trial %d failed: %s", trial.number, exc)

    def finish(self, trial: optuna.Trial, row: dict[str, Any]) -> tuple[float, ...]:
        """Store the result row on the trial (and the config it reports when that is not the one it started with:
        a PBT member's learned ``piecewise`` config); return its objective values."""
        metrics = {k: v for k, v in row.items() if k != "config"}
        if row.get("config", trial.user_attrs.get("config")) != trial.user_attrs.get("config"):
            trial.set_user_attr("config", row["config"])
            learned = TrainConfig(**row["config"])
            save_config(learned, Path(learned.checkpoint_dir) / "config.yaml")
        trial.set_user_attr("result", metrics)
        trial.set_user_attr(_samplers.CONSTRAINTS_ATTR, self.spec.constraint_values(metrics))
        return tuple(float(metrics[name]) for name in self.spec.objective_names)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        if drops_out(trial):  # promotion's residual race: the other continuation trains (promotion.py)
            raise optuna.TrialPruned(f"trial {trial.user_attrs[DUPLICATE_ATTR]} already continues this trial")
        cfg = self.start(trial)
        try:
            with self.heartbeat(trial, cfg):
                row = train(cfg, self.report_for(trial, cfg), data=self.data_for(cfg))
        except DivergedError as exc:
            self.failed(trial, exc)
            raise
        return self.finish(trial, row)
