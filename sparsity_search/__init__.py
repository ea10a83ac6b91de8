"""sparsity-search: find the accuracy / spike-count trade-off of spiking neural networks.

The trainer (``train``) knows nothing of Optuna or Ray; the search backends (``sparsity_search.search``) know
nothing of neurons; ``open_study`` reads any launched study back as tables. Heavy modules (torch, optuna) load
on first use, so ``import sparsity_search`` and the CLI's argument errors stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError, DivergedError, SparsitySearchError

if TYPE_CHECKING:
    from .api import open_study
    from .launching import launch, resume
    from .config import TrainConfig, load_config
    from .report import write_report
    from .trainer import train

# pydantic (behind TrainConfig) is slow to import: load it on first use too.
_LAZY = {"train": ".trainer", "open_study": ".api", "TrainConfig": ".config", "load_config": ".config",
         "write_report": ".report", "launch": ".launching", "resume": ".launching"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ConfigError", "DataError", "DivergedError", "SparsitySearchError", "TrainConfig", "launch", "load_config",
           "open_study", "resume", "train", "write_report"]
__version__ = "0.1.0"
