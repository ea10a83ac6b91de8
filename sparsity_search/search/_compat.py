"""Every use of a private Optuna or Ray API in the package, in one place.

Tested with optuna 5.0.0 and ray 2.60.0 (pyproject allows optuna >= 4.2, < 6 and ray[tune] >= 2.40, < 3). Each
function says what it reaches into and why no public API does it; when either library moves one of these, this is
the module to change. Ray is imported inside the functions that need it: the Optuna backend never loads it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

# ray.init's keyword for the address its processes bind to and advertise (leading underscore in Ray's signature).
LOOPBACK_NODE = {"_node_ip_address": "127.0.0.1"}


def heartbeat_thread(trial: optuna.Trial) -> contextlib.AbstractContextManager:
    """Optuna's heartbeat for a trial on an RDB storage. ``study.optimize`` starts it by itself; trials asked and
    told by hand (population rounds) need it too, and Optuna has no public function for it.
    Private: ``optuna.storages._heartbeat.get_heartbeat_thread``, ``Trial._trial_id``, ``Study._storage``."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial._trial_id, trial.study._storage)


@contextlib.contextmanager
def ray_cluster_mode(enabled: bool) -> Iterator[None]:
    """While ``enabled`` is False, ``ray.init`` keeps 127.0.0.1 as it is.

    Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when it is imported. While it is on (Linux's default),
    ``ray.init`` rewrites 127.0.0.1 to this host's routable IP, and a local Ray's GCS and raylet then listen on every
    interface. Private: ``ray._private.ray_constants.ENABLE_RAY_CLUSTER`` (Ray has no public switch).
    """
    import ray._private.ray_constants as ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = saved and enabled
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def searcher_trials(search: OptunaSearch) -> dict[str, optuna.Trial]:
    """OptunaSearch's live Optuna trials by Tune trial id, to store a result's constraint values on its trial
    before OptunaSearch tells it. Private: ``OptunaSearch._ot_trials``."""
    return search._ot_trials


def decide_every_result(scheduler: Any) -> None:
    """Make Tune ask a scheduler about every reported result, not a buffered batch of them (a rung decision must
    come at its epoch). Private: ``TrialScheduler._supports_buffered_results``."""
    scheduler._supports_buffered_results = False


def experiment_folder(trial: Any) -> Path:
    """A Tune trial's experiment folder (a restored experiment may have moved). Private: ``Trial.storage`` is a
    ``ray.train._internal.storage.StorageContext``."""
    return Path(trial.storage.experiment_fs_path)


def experiment_staging_folder(trial: Any) -> Path:
    """The driver's staging copy of a Tune experiment folder, which Tune copies over the experiment folder with every
    snapshot; ``Tuner.restore`` fills it with the experiment folder's files, so a file kept up to date only in the
    experiment folder is overwritten by its restore-time copy from then on. Private: ``StorageContext``."""
    return Path(trial.storage.experiment_driver_staging_path)


def repause_trial(tune_controller: Any, trial: Any) -> None:
    """Put a PENDING Tune trial back to PAUSED without running it. ``Tuner.restore`` requeues every unfinished trial as
    PENDING, trials a scheduler had paused included, and has no per-trial choice. Private:
    ``TuneController._set_trial_status`` (on the list of calls Tune's TrialRunnerWrapper lets a scheduler make)."""
    from ray.tune.experiment import Trial

    tune_controller._set_trial_status(trial, Trial.PAUSED)


RAY_AUTH_MODE = "RAY_AUTH_MODE"  # Ray's switch for token authentication: "token" or "disabled"


def ray_gcs_accepts(address: str, without_token: bool = False) -> bool:
    """Whether the GCS at ``address`` accepts this process's credentials (``without_token``: no token at all): one
    GetClusterId call, which fails at once with an AuthenticationError when the cluster asks for a token it did not
    get (``ray.init`` would retry it for 20 s, a warning a second). The one C++ warning line of a refusal is kept off
    the terminal. Private: ``ray._raylet.GcsClient`` (Ray's public API only connects through ``ray.init``),
    ``ray._raylet.Config`` (re-reads RAY_AUTH_MODE)."""
    import os
    import tempfile

    from ray._raylet import Config, GcsClient
    from ray.exceptions import AuthenticationError

    saved, mode = os.dup(2), os.environ.get(RAY_AUTH_MODE)
    if without_token:
        os.environ[RAY_AUTH_MODE] = "disabled"
        Config.initialize("")
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                GcsClient(address=address)
            except AuthenticationError:
                return False
            except Exception:  # anything else is ray.init's to report
                return True
            return True
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if without_token:
            if mode is None:
                del os.environ[RAY_AUTH_MODE]
            else:
                os.environ[RAY_AUTH_MODE] = mode
            Config.initialize("")


def ray_token_found() -> bool:
    """Whether Ray finds an auth token here (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), whatever
    RAY_AUTH_MODE says. Private: ``ray._raylet.AuthenticationTokenLoader``."""
    from ray._raylet import AuthenticationTokenLoader

    return AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True)


def ray_enable_token_auth() -> None:
    """Turn token authentication on for this process (and the processes it starts), as ``ray.init("auto")`` does
    when a token is found, without Ray's warning. Private: ``authentication_token_setup._enable_token_auth``."""
    from ray._private.authentication.authentication_token_setup import _enable_token_auth

    _enable_token_auth()
