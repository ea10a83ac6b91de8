"""The per-epoch metrics a run reports and the result row it returns: one shape for single and population runs."""

from __future__ import annotations

from typing import Any, Callable

from ..config import TrainConfig

Report = Callable[[int, dict[str, Any]], None]  # report(epoch, metrics) after every epoch; may raise to stop the run


def epoch_metrics(epoch: int, train_loss: float, lam: float, lr: float, val_accuracy: float,
                  stats: dict[str, float], wall_time_s: float) -> dict[str, Any]:
    """One epoch's entry of the history (``epoch`` counts from 1); validation metrics are the search objectives."""
    return {"epoch": epoch, "train_loss": train_loss, "lambda": lam, "lr": lr, "val_accuracy": val_accuracy,
            **stats, "wall_time_s": wall_time_s}


def result_row(history: list[dict[str, Any]], test_accuracy: float, test_stats: dict[str, float],
               resumed_from_epoch: int, wall_time_s: float, cfg: TrainConfig) -> dict[str, Any]:
    """The last epoch's metrics, the test split's, the epochs run, the resume point, wall time and the config."""
    row = {k: v for k, v in history[-1].items() if k not in ("epoch", "wall_time_s")}
    row.update(test_accuracy=test_accuracy, test_spikes_per_sample=test_stats["spikes_per_sample"],
               test_energy_uj=test_stats["energy_uj"], epochs=len(history), resumed_from_epoch=resumed_from_epoch,
               wall_time_s=wall_time_s, config=cfg.to_dict())
    return row
