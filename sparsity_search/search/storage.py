"""Where a study lives: an embedded journal file by default, or any RDB URL Optuna takes (PostgreSQL for many machines).

The default is Optuna's journal file (``results/<study>/study.journal``): it needs no server, and several local
worker processes append to it under a file lock, so there is no "database is locked" as with SQLite. Workers open
storages with heartbeats (the study file's ``heartbeat``): a trial whose worker dies is marked failed after the
grace period and queued once more with the same parameters (``MAX_RETRY``), continuing from its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from ..errors import ConfigError

JOURNAL_FILE = "study.journal"
MAX_RETRY = 1


def default_storage_url(results_dir: Path) -> str:
    return str(results_dir / JOURNAL_FILE)


def is_journal(url: str) -> bool:
    return "://" not in url


def _retry_callback() -> optuna.storages.RetryFailedTrialCallback:
    return optuna.storages.RetryFailedTrialCallback(max_retry=MAX_RETRY)


def open_storage(url: str, heartbeat: tuple[int, int] | None = None) -> BaseStorage:
    """Open (creating when needed) the storage at ``url``: a journal file path, or an RDB URL.

    ``heartbeat`` = (interval, grace_period) in seconds, for workers; readers pass None.
    """
    beat = {} if heartbeat is None else {"heartbeat_interval": heartbeat[0], "grace_period": heartbeat[1],
                                         "failed_trial_callback": _retry_callback()}
    if is_journal(url):
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        return JournalStorage(backend, **beat)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs, **beat)
    except Exception as exc:  # sqlalchemy raises many types for a bad URL or an unreachable server
        raise ConfigError(f"cannot open storage {url!r}: {str(exc).splitlines()[0]}", field="storage") from None
