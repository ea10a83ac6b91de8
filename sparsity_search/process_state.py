"""What a command changes process-wide, put back when it returns, so that ``cli.main`` runs many commands in one
process (tests, notebooks) as separate processes would run them: the log handler and level, environment variables
(the Ray backend's settings, ``CUDA_VISIBLE_DEVICES``) and torch's thread count (``training.setup``).

The CPU allocator setting (``devices.tune_cpu_allocator``) stays: it changes no result, only how glibc keeps freed
blocks, and every run sets the same value.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
_SETUP = "sparsity_search.training.setup"  # imports torch; looked up, never imported here (commands start fast)


@contextlib.contextmanager
def command_scope(verbose: bool) -> Iterator[None]:
    """Run one command with its own log handler on stderr; restore the process as it was when it returns."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.handlers, root.level = [handler], logging.DEBUG if verbose else logging.WARNING
    environ = dict(os.environ)
    threads = _threads()
    try:
        yield
    finally:
        root.handlers, root.level = handlers, level
        if dict(os.environ) != environ:
            os.environ.clear()
            os.environ.update(environ)
        setup = sys.modules.get(_SETUP)
        if setup is not None:  # torch came in with it; before this command, torch had its own count or none yet
            setup.set_threads(threads if threads is not None else setup.PROCESS_THREADS)


def _threads() -> int | None:
    setup = sys.modules.get(_SETUP)
    return setup.get_threads() if setup is not None else None
