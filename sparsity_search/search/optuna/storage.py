"""Where a study lives: an embedded journal file by default, or any RDB URL Optuna takes (PostgreSQL for many machines).

The default is Optuna's journal file (``results/<study>/study.journal``): it needs no server, and several local
worker processes append to it under a file lock, so there is no "database is locked" as with SQLite.

Dead workers. A trial whose worker dies stays RUNNING until someone notices: RDB storages use Optuna's own
heartbeats; Optuna's journal storage has none, so workers touch a heartbeat file in the trial's folder instead
(``TrialHeartbeat``) and ``fail_stale_trials`` fails RUNNING trials whose file is older than the grace period.
Either way a stale trial is failed and queued once more with the same parameters and user attributes
(``MAX_RETRY``), so its retry continues from the trial's last epoch checkpoint.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from ...errors import ConfigError

JOURNAL_FILE = "study.journal"
HEARTBEAT_FILE = "heartbeat"
MAX_RETRY = 1
ORIGIN_ATTR = "origin"


def default_storage_url(results_dir: Path) -> str:
    return str(results_dir / JOURNAL_FILE)


def is_journal(url: str) -> bool:
    return "://" not in url


def storage_exists(url: str) -> bool:
    """False for a journal or SQLite file that is not there yet: reading it would create it (a server database can
    only be asked)."""
    if is_journal(url):
        return Path(url).exists()
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):]).exists()
    return True


def origin_number(trial: optuna.Trial | FrozenTrial) -> int:
    """The number of a trial's first attempt: a retry inherits its original's user attributes, this one too."""
    return int(trial.user_attrs.get(ORIGIN_ATTR, trial.number))


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Optuna warns at each use of an experimental API; the ones called inside this block (heartbeats, their retry
    callback, ``fail_stale_trials``, metric names) are this package's choice, not something a user can act on.
    So is asking trials by hand on a storage with heartbeats (population rounds start the heartbeat themselves)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        yield


def waiting_retries(study: optuna.Study) -> int:
    """Queued retries of interrupted trials. Each runs, even once the budget is met: an interrupted trial is
    always retried once."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return sum("failed_trial" in t.system_attrs for t in waiting)  # set by RetryHeartbeatStaleTrialCallback


def _retry() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    with quiet_experimental():
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def open_storage(url: str, heartbeat: tuple[int, int] | None = None) -> BaseStorage:
    """Open (creating when needed) the storage at ``url``: a journal file path, or an RDB URL.

    ``heartbeat`` = (interval, grace_period) in seconds, for workers on RDB storages; readers pass None.
    """
    if is_journal(url):
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    beat = {} if heartbeat is None else {"heartbeat_interval": heartbeat[0], "grace_period": heartbeat[1],
                                         "heartbeat_stale_trial_callback": _retry()}
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with quiet_experimental():
            return RDBStorage(url, engine_kwargs=engine_kwargs, **beat)
    except Exception as exc:  # sqlalchemy raises many types for a bad URL or an unreachable server
        raise ConfigError(f"cannot open storage {url!r}: {str(exc).splitlines()[0]}", field="storage") from None


class TrialHeartbeat:
    """Touch ``<trial_dir>/heartbeat`` every ``interval`` seconds while a trial runs (journal storages only)."""

    def __init__(self, trial_dir: Path, interval: float):
        self.path, self.interval = trial_dir / HEARTBEAT_FILE, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while True:
            self.path.touch()
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "TrialHeartbeat":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _last_sign_of_life(trial: FrozenTrial) -> float:
    """When the trial's worker last beat (or the trial started, before its first beat), as a Unix time."""
    start = trial.datetime_start.timestamp() if trial.datetime_start else time.time()
    folder = trial.user_attrs.get("config", {}).get("checkpoint_dir")
    beat = Path(folder) / HEARTBEAT_FILE if folder else None
    return max(start, beat.stat().st_mtime) if beat is not None and beat.exists() else start


def fail_stale_trials(study: optuna.Study, storage_url: str, grace_period: float) -> list[int]:
    """Fail the RUNNING trials of dead workers and queue each once more; returns the trials failed here.

    RDB storages delegate to Optuna's heartbeat (which reports nothing back); journal storages read the
    trials' heartbeat files.
    """
    if not is_journal(storage_url):
        with quiet_experimental():
            optuna.storages.fail_stale_trials(study)
        return []
    failed = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if now - _last_sign_of_life(trial) <= grace_period:
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):  # another worker failed (or the owner finished) it first
            continue
        failed.append(trial.number)
        _retry()(study, trial)  # copies params and user attributes; the state it had does not matter
    return failed
