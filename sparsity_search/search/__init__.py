"""Search backends over the trainer. Public names only; the modules behind them are private.

Layout (imports go one way; ``_samplers`` is a leaf, ``_compat`` holds every private Optuna and Ray API use):

    _samplers <- study_file <- records, _base        what to search, the trial table, the backend contract
    optuna/  storage <- study <- ... <- backend      the Optuna backend (see its docstring)
    ray/     trainable <- ... <- backend             the Ray Tune backend, imported only by ``get_backend("ray")``

``run_worker``, ``spec_in_storage`` and ``default_storage_url`` are the Optuna backend's functions the CLI and the
Python API call; they are imported on first use, like the backends.
"""

from __future__ import annotations

from typing import Any

from ._base import RunSettings, SearchBackend
from .records import TrialRecord, trials_table
from .space import SearchSpace, load_space
from .study_file import DEFAULT_RESULTS, StudySpec, check_population, load_study_file, parse_study

BACKENDS = ("optuna", "ray")


def get_backend(backend: str | SearchBackend) -> SearchBackend:
    """A backend by name (imported lazily: Ray is heavy), or the object itself, like Optuna's ``get_storage``."""
    if isinstance(backend, SearchBackend):
        return backend
    if backend == "optuna":
        from .optuna.backend import OptunaBackend

        return OptunaBackend()
    if backend == "ray":
        from .ray.backend import RayBackend

        return RayBackend()
    raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")


def __getattr__(name: str) -> Any:
    """The Optuna backend's public functions, imported on first use (the backend imports torch and Optuna)."""
    if name == "run_worker":
        from .optuna.worker import run_worker

        return run_worker
    if name == "spec_in_storage":
        from .optuna.study import spec_in_storage

        return spec_in_storage
    if name == "default_storage_url":
        from .optuna.storage import default_storage_url

        return default_storage_url
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKENDS", "DEFAULT_RESULTS", "RunSettings", "SearchBackend", "SearchSpace", "StudySpec", "TrialRecord",
           "check_population", "default_storage_url", "get_backend", "load_space", "load_study_file", "parse_study",
           "run_worker", "spec_in_storage", "trials_table"]
