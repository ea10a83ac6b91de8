"""Search backends over the trainer. Public names only; the modules behind them are private."""

from __future__ import annotations

from ._base import RunSettings, SearchBackend
from .records import TrialRecord, trials_table
from .space import SearchSpace, load_space
from .study_file import StudySpec, load_study_file, parse_study

BACKENDS = ("optuna", "ray")


def get_backend(backend: str | SearchBackend) -> SearchBackend:
    """A backend by name (imported lazily: Ray is heavy), or the object itself, like Optuna's ``get_storage``."""
    if isinstance(backend, SearchBackend):
        return backend
    if backend == "optuna":
        from .optuna.objective import OptunaBackend

        return OptunaBackend()
    if backend == "ray":
        from .ray.backend import RayBackend

        return RayBackend()
    raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "RunSettings", "SearchBackend", "SearchSpace", "StudySpec", "TrialRecord", "get_backend",
           "load_space", "load_study_file", "parse_study", "trials_table"]
