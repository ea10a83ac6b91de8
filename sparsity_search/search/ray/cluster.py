"""Joining a Ray cluster a user started (``ray start --head``), and the one line for a sweep whose trials all failed.

- **Reachable.** A plain TCP connect first: a wrong address is one line, not Ray's half-minute of retries.
- **Token authentication.** Ray 2.60 turns token auth on for ``ray start --head`` whenever a token exists on the
  head (``RAY_AUTH_TOKEN``, the file at ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``, which any local
  ``ray.init()`` creates), yet ``ray.init(address=...)`` never turns it on by itself: the driver then retries
  unauthenticated calls in a stream of warnings. One GCS call probes the cluster first; when it asks for a token and
  ``RAY_AUTH_MODE`` is unset here, the token found here is tried (as ``ray.init(address="auto")`` would); a cluster
  that still refuses is one line saying where the token goes.
- **The package.** Trials unpickle ``sparsity_search`` on the cluster's workers, whose Python may lack it: the
  package folder travels with the job as Ray's ``runtime_env`` ``py_modules`` (zipped into the cluster's GCS, at most
  Ray's gRPC message size, ``__pycache__`` left out) and goes first on the workers' ``PYTHONPATH``, so the cluster
  also runs this very version of it. Its dependencies (torch, optuna, ...) must be installed on every node. The
  user's own modules (model and dataset factories, neuron classes) travel the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from pathlib import Path
from typing import Any, Iterator

from ...errors import ConfigError, SparsitySearchError
from ...factories import SHIPPED_ENV
from .. import _compat

FLAG = "--ray-address"
TOKEN_HELP = ("copy the head node's token file (~/.ray/auth_token, or the file its RAY_AUTH_TOKEN_PATH names) to "
              "~/.ray/auth_token here (or set RAY_AUTH_TOKEN_PATH to it), or start the cluster with "
              "RAY_AUTH_MODE=disabled")
HOST_PORT = re.compile(r"[^:/\s]+:\d+")  # a GCS address, as `ray start --head` prints it
# A raised exception's line: "ValueError: ...", "sparsity_search.errors.DataError: ..."
ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception)\b[^:]*:")


def runtime_env(user_modules: dict[str, str] | None = None) -> dict[str, Any]:
    """The job's ``runtime_env`` on a cluster: this package's folder and the user's modules (model and dataset
    factories: ``{name: file or package folder}``), uploaded for the workers, which import those by name."""
    package = Path(__file__).resolve().parents[2]
    env: dict[str, Any] = {"py_modules": [str(package), *(user_modules or {}).values()],
                           "excludes": ["__pycache__/", "*.pyc"]}
    if user_modules:
        env["env_vars"] = {SHIPPED_ENV: ",".join(user_modules)}
    return env


def check_cluster(address: str) -> None:
    """Fail in one line, before ``ray.init``, when nothing answers at ``address`` or its token auth refuses us.
    Other forms Ray accepts (``auto``, ``ray://...``) are left to ``ray.init``."""
    if not HOST_PORT.fullmatch(address):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=10):
            pass
    except OSError as exc:
        raise ConfigError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                          "`ray start --head --port PORT` and pass HOST:PORT", field=FLAG) from None
    mode = os.environ.get(_compat.RAY_AUTH_MODE)
    if mode is not None and mode.lower() == "token" and _compat.ray_gcs_accepts(address, without_token=True):
        # the cluster would call back into this driver without the token this driver's servers then ask for
        raise ConfigError(f"the Ray cluster at {address} does not use token authentication but RAY_AUTH_MODE=token "
                          "here: unset RAY_AUTH_MODE here, or restart the cluster with RAY_AUTH_MODE=token",
                          field=FLAG)
    if _compat.ray_gcs_accepts(address):
        return
    if mode is None and _compat.ray_token_found():
        _compat.ray_enable_token_auth()  # the cluster asks for a token and one is here: use it, as "auto" does
        if _compat.ray_gcs_accepts(address):
            return
        raise ConfigError(f"the Ray cluster at {address} uses token authentication and refused the token found "
                          f"here: {TOKEN_HELP}", field=FLAG)
    if mode is not None and mode.lower() != "token":
        raise ConfigError(f"the Ray cluster at {address} uses token authentication but RAY_AUTH_MODE={mode} here: "
                          f"set RAY_AUTH_MODE=token (or unset it), and {TOKEN_HELP}", field=FLAG)
    found = "refused the token found here" if _compat.ray_token_found() else "no token was found here"
    raise ConfigError(f"the Ray cluster at {address} uses token authentication and {found}: {TOKEN_HELP}",
                      field=FLAG)


# Tune logs each failed attempt of a trial with its whole traceback, and a summary of them at the end
TUNE_ERROR_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune")


@contextlib.contextmanager
def quiet_trial_errors() -> Iterator[None]:
    """Keep Tune's per-trial tracebacks off the terminal unless ``-v``: each trial's reason is in ``status`` (and its
    folder's error.txt), and a sweep whose trials all fail ends in one line (``check_trials``)."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in TUNE_ERROR_LOGGERS]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, saved):
            logger.setLevel(level)


def check_trials(study: str, failures: list[str], total: int, on_cluster: bool) -> None:
    """One line when every trial of the sweep failed (as the Optuna backend's worker does): the first failure's last
    line, and for a module missing on the cluster's workers what to install where."""
    if not total or len(failures) < total:
        return
    first = next((line for line in failures if line), "no reason recorded")
    hint = ""
    if "ModuleNotFoundError" in first or "No module named" in first:
        where = "on every node of the Ray cluster, in the Python that runs `ray start`" if on_cluster else "here"
        hint = f"; install it {where}"
    raise SparsitySearchError(f"study {study!r}: all {total} trials failed; the first: {first}{hint}; "
                              "`status` shows each trial's reason")


def reason(error: BaseException | str | None) -> str:
    """The line of a trial's error that says why: Ray wraps a trial's exception in tracebacks of its own, ending in
    lines such as "An unexpected internal error occurred": a missing module first, else the last ``...Error: ...``
    line, else the last line."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    missing = [line for line in lines if line.startswith("ModuleNotFoundError")]
    raised = [line for line in lines if ERROR_LINE.match(line)]
    return (missing or raised or lines or [""])[-1]
