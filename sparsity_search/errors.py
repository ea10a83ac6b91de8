"""Error types with one-line messages, so the CLI can print them and exit non-zero.

Each carries where the problem is (file and/or field) because a user fixing a YAML file needs exactly that.
"""

from __future__ import annotations


class SparsitySearchError(Exception):
    """Base class: every error the CLI turns into a one-line message."""

    exit_code = 2


class ConfigError(SparsitySearchError, ValueError):
    """A configuration value, file or override is invalid (exit code 2)."""

    def __init__(self, message: str, *, field: str | None = None, source: str | None = None):
        self.reason = message
        self.field = field
        self.source = source
        where = ": ".join(p for p in (source, field) if p)
        super().__init__(f"{where}: {message}" if where else message)


class DataError(SparsitySearchError):
    """A dataset cannot be found or read (exit code 2)."""


class DivergedError(SparsitySearchError, ArithmeticError):
    """Training loss became NaN or infinite; a search records the trial as failed with this reason."""

    exit_code = 3

    def __init__(self, epoch: int, step: int, value: float):
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(f"loss diverged ({value}) at epoch {epoch}, step {step}")


class DeviceError(SparsitySearchError):
    """The requested device is not available (e.g. --device cuda without CUDA)."""


class OutputPathError(ConfigError):
    """A file or folder a command would write cannot be written there (exit code 2); raised before any work."""
