"""A pause after a stored epoch, so that kill tests land exactly where they mean to instead of racing a poller.

Tests set ``SPARSITY_SEARCH_HOLD=EPOCH:FOLDER``; users never need it. After epoch EPOCH is stored (checkpoint
written, report made), a run writes ``FOLDER/held-TAG`` holding its process id, TAG being its checkpoint folder's
name (the trial number, ``00003``, on both backends) or ``pid<PID>`` without one, and waits until
``FOLDER/release-TAG`` or ``FOLDER/release`` exists. A population holds once for all its members. Unset, it costs
one environment lookup per epoch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError

HOLD_ENV = "SPARSITY_SEARCH_HOLD"
POLL_S = 0.05


def hold_after(epoch: int, checkpoint_dirs: Sequence[str]) -> None:
    """Block after ``epoch`` while ``SPARSITY_SEARCH_HOLD`` asks for it (see the module docstring)."""
    spec = os.environ.get(HOLD_ENV)
    if not spec:
        return
    at, sep, where = spec.partition(":")
    if not (sep and at.isdigit() and where):
        raise ConfigError(f"{HOLD_ENV}={spec!r}: expected EPOCH:FOLDER")
    if int(at) != epoch:
        return
    folder = Path(where)
    tags = [Path(d).name if d else f"pid{os.getpid()}" for d in checkpoint_dirs]
    for tag in tags:
        partial = folder / f".held-{tag}.{os.getpid()}"
        partial.write_text(str(os.getpid()))
        partial.replace(folder / f"held-{tag}")  # whole or absent: a reader never sees an empty pid
    while not ((folder / "release").exists() or all((folder / f"release-{t}").exists() for t in tags)):
        time.sleep(POLL_S)
