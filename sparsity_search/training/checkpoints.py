"""One checkpoint per run (a population member is a run), rewritten atomically after every epoch.

The file, ``<cfg.checkpoint_dir>/checkpoint.pt``, holds the network's ``state_dict`` (a ``SpikingNet``'s, also for
a population member), the torch optimizer's ``state_dict`` (``setup.make_optimizer``'s format), the data-order
generator's state, the epochs done, the metrics history and the config. One format, so a member of a killed
population can resume alone or in a population, and a single run's checkpoint could join one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..config import TrainConfig
from ..errors import ConfigError

CHECKPOINT = "checkpoint.pt"
# Changing these between a checkpoint and its resume would silently train a different network.
ARCHITECTURE_KEYS = ("dataset", "model", "hidden", "channels", "neuron", "timesteps", "encoding", "seed", "epochs")


def checkpoint_path(cfg: TrainConfig) -> Path | None:
    """Where ``cfg``'s run keeps its checkpoint, or None when it keeps none."""
    return Path(cfg.checkpoint_dir) / CHECKPOINT if cfg.checkpoint_dir else None


def save_checkpoint(cfg: TrainConfig, *, model: dict[str, Any], optimizer: dict[str, Any], generator: torch.Tensor,
                    epoch: int, history: list[dict[str, Any]], **extra: Any) -> None:
    """Write the checkpoint of ``cfg``'s run after ``epoch`` epochs; a crash while saving leaves the previous one.
    ``extra`` entries are stored beside (a PBT member's lineage); ``train`` ignores them."""
    path = checkpoint_path(cfg)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model, "optimizer": optimizer, "generator": generator, "epoch": epoch, "history": history,
                "config": cfg.to_dict(), **extra}, tmp)
    os.replace(tmp, path)


def load_checkpoint(cfg: TrainConfig) -> dict[str, Any] | None:
    """The checkpoint to resume ``cfg``'s run from (with ``cfg.resume`` and a file there), else None.

    Raises ``ConfigError`` when the checkpoint's run had another architecture (``ARCHITECTURE_KEYS``).
    """
    path = checkpoint_path(cfg)
    if path is None or not (cfg.resume and path.exists()):
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    saved, mine = state["config"], cfg.to_dict()
    for key in ARCHITECTURE_KEYS:
        if saved.get(key) != mine[key]:
            raise ConfigError(f"differs from the checkpoint in {path} ({saved.get(key)!r})", field=key)
    return state
