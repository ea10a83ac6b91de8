"""The pieces ``trainer.train`` (one network) and ``population.train_population`` (K at once) share: run setup,
evaluation per member (one network is K = 1), checkpoints in one format, the per-epoch metrics and the result row.

Each loop stays in its own module, readable top to bottom; only these pieces live here, so the two cannot drift.
"""

from .checkpoints import ARCHITECTURE_KEYS, CHECKPOINT, checkpoint_path, load_checkpoint, save_checkpoint
from .evaluate import EVAL_BATCH, evaluate_members
from .hold import HOLD_ENV, hold_after
from .rows import Report, epoch_metrics, result_row
from .setup import Runtime, make_optimizer, setup

__all__ = ["ARCHITECTURE_KEYS", "CHECKPOINT", "EVAL_BATCH", "HOLD_ENV", "Report", "Runtime", "checkpoint_path",
           "epoch_metrics", "evaluate_members", "hold_after", "load_checkpoint", "make_optimizer", "result_row",
           "save_checkpoint", "setup"]
