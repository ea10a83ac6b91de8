"""Output paths checked when the command line is parsed, so a bad one fails before any work starts.

The rule (README, "Output paths"): a file a command writes must be creatable in an existing folder, or be an
existing writable file; a missing folder is refused, not created (a typo in a path should not grow a tree of
folders). A folder a command fills (``--results``, ``--checkpoint-dir``) is created when missing, so it is refused
only when it cannot be: an existing non-folder on its way, or no permission to write where it would go.

Writability is tested by doing (an existing file is opened for append, which neither truncates nor touches it;
a new one is probed with a temporary file that is removed at once), because ``os.access`` says yes to root for
places that still refuse to be written, such as ``/proc``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import OutputPathError

__all__ = ["check_output_file", "check_output_folder", "output_file", "output_folder"]


def _probe_folder(folder: Path, problem: str) -> None:
    """Raise (``problem``: why it matters) unless a file can be created, and removed, in the existing ``folder``."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".sparsity-search-probe-"):
            pass
    except OSError as exc:
        raise OutputPathError(f"{problem}: cannot create files in folder {folder} ({exc.strerror or exc})") from None


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if a command can write a file there; else ``OutputPathError`` saying why."""
    text = os.fspath(path)
    if not text:
        raise OutputPathError("empty path")
    out = Path(text)
    if text.endswith(os.sep) or out.is_dir():
        raise OutputPathError(f"{text} is a folder, not a file")
    parent = out.parent
    if out.exists():
        try:
            os.close(os.open(out, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK))
        except OSError as exc:
            raise OutputPathError(f"cannot write {text}: {exc.strerror or exc}") from None
        return out
    if not parent.exists():
        raise OutputPathError(f"cannot write {text}: folder {parent} does not exist (create it first)")
    if not parent.is_dir():
        raise OutputPathError(f"cannot write {text}: {parent} is not a folder")
    _probe_folder(parent, f"cannot write {text}")
    return out


def check_output_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if it is a folder a command can write in, or one it can create; else ``OutputPathError``."""
    text = os.fspath(path)
    if not text:
        raise OutputPathError("empty path")
    out = Path(text)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"cannot use folder {text}: {existing} exists and is not a folder")
    _probe_folder(existing, f"cannot use folder {text}")
    return out


def _as_argument(check: Callable[[str], Path], text: str) -> str:
    try:
        check(text)
    except OutputPathError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None  # argparse prefixes the flag: one line, exit 2
    return text


def output_file(text: str) -> str:
    """argparse ``type=`` for a file a command writes: checked at parse time, kept as the string."""
    return _as_argument(check_output_file, text)


def output_folder(text: str) -> str:
    """argparse ``type=`` for a folder a command writes in (created later when missing)."""
    return _as_argument(check_output_folder, text)
