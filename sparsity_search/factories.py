"""The user's code, named as ``MODULE:NAME`` strings: importing it with one-line errors, and naming callables.

A study file names a model factory, a dataset factory or a neuron class as ``MODULE:NAME``. ``MODULE`` is imported
with ``module_dir`` (the study file's folder, recorded absolute) first on ``sys.path``, so a study runs the same from
any working directory, in worker processes and on resume. A Python callable given where such a string is accepted
is recorded by its import path (``callable_path``), so snapshots and storages stay plain data; one defined in
``__main__`` (a script or a notebook) resolves only in the process that defined it (``in_main``).

Nothing here runs at import or when a study file is parsed: only commands that train (``launch``, ``resume``,
``worker``, ``train``) resolve factories, so ``pareto``, ``query``, ``status``, ``plot`` and ``report`` never
import the user's code.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError

MAIN = "__main__"
# Modules of the user's code shipped to a Ray cluster's workers with the job (``runtime_env`` ``py_modules``): there
# they are imported from what was shipped, never from ``module_dir``, a path on the machine that launched the run.
SHIPPED_ENV = "SPARSITY_SEARCH_SHIPPED_MODULES"


def split_path(text: str, field: str) -> tuple[str, str]:
    """``MODULE:NAME`` as (module, name); anything else is a one-line ``ConfigError`` naming ``field``."""
    module, sep, name = text.partition(":")
    if not sep or not module.strip() or not name.strip() or ":" in name:
        raise ConfigError(f"expected MODULE:NAME (e.g. my_snn:build), got {text!r}", field=field)
    return module.strip(), name.strip()


def callable_path(obj: Callable[..., Any], field: str) -> str:
    """The ``MODULE:NAME`` that finds ``obj`` again; a lambda, a nested function or a method cannot be found by a
    name, which is a one-line error (define it at the top level of a module, a script or a notebook)."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not callable(obj) or not module or not qualname:
        raise ConfigError(f"expected a function or class or a MODULE:NAME string, got {obj!r}", field=field)
    if "<" in qualname or "." in qualname:
        raise ConfigError(f"{qualname} is not defined at the top level of a module, so other processes and "
                          "records cannot name it; define it with def at the top level", field=field)
    found = getattr(sys.modules.get(module), qualname, None)
    if found is not obj:
        raise ConfigError(f"{module}.{qualname} cannot be found again by its name", field=field)
    return f"{module}:{qualname}"


def in_main(text: str) -> bool:
    """Whether a ``MODULE:NAME`` string names something defined in ``__main__`` (this process only)."""
    return text.partition(":")[0].strip() == MAIN


def _user_frame(exc: BaseException, roots: list[Path]) -> str:
    """``file:line`` of the innermost traceback frame in the user's code (under ``roots``), else the innermost."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if any(_under(Path(f.filename), r) for r in roots)]
    frame = (mine or frames or [None])[-1]
    return f"{frame.filename}:{frame.lineno}" if frame is not None else "?"


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def _import(module: str, module_dir: str, field: str) -> Any:
    if module == MAIN:
        return sys.modules[MAIN]
    shipped = module.split(".")[0] in os.environ.get(SHIPPED_ENV, "").split(",")
    folder = str(Path(module_dir).resolve()) if module_dir and not shipped else ""
    if folder and folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        return importlib.import_module(module)
    except SyntaxError as exc:
        raise ConfigError(f"syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}", field=field) from None
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
            where = f" (searched {folder} first)" if folder else ""
            raise ConfigError(f"no module named {module!r}{where}", field=field) from None
        raise ConfigError(f"importing {module!r} failed at {_user_frame(exc, [Path(folder or '.')])}: {exc}",
                          field=field) from None
    except Exception as exc:  # noqa: BLE001 - the user's module raised while it was imported
        raise ConfigError(f"importing {module!r} failed at {_user_frame(exc, [Path(folder or '.')])}: "
                          f"{type(exc).__name__}: {exc}", field=field) from None


def load_object(text: str, module_dir: str, field: str) -> Any:
    """Import ``MODULE:NAME`` (``module_dir`` first on ``sys.path``) and return the object; one-line errors name
    ``field``: a bad string, a missing module or name, a syntax error (file and line) or an import that raises."""
    module, name = split_path(text, field)
    if module == MAIN and name not in vars(sys.modules[MAIN]):
        raise ConfigError(f"{name} was defined in __main__ of the process that started the run and cannot "
                          "reach this one; define it in a module file next to the study", field=field)
    mod = _import(module, module_dir, field)
    try:
        obj = getattr(mod, name)
    except AttributeError:
        raise ConfigError(f"module {module!r} ({getattr(mod, '__file__', '?')}) has no attribute {name!r}",
                          field=field) from None
    return obj


def module_sources(texts: list[str]) -> dict[str, str]:
    """For the imported modules the ``MODULE:NAME`` strings name (not ``__main__``), by top-level name: the file of
    a single-file module or the folder of a package, which is what a Ray job ships to its workers."""
    sources = {}
    for text in texts:
        top = text.partition(":")[0].strip().split(".")[0]
        mod = sys.modules.get(top)
        if top == MAIN or mod is None:
            continue
        path = getattr(mod, "__path__", None)
        sources[top] = list(path)[0] if path else getattr(mod, "__file__", None)
    return {k: v for k, v in sources.items() if v}


def load_callable(text: str, module_dir: str, field: str) -> Callable[..., Any]:
    """``load_object``, which must be callable."""
    obj = load_object(text, module_dir, field)
    if not callable(obj):
        raise ConfigError(f"{text} is not a function or class (its type: {type(obj).__name__})", field=field)
    return obj


def call_user(fn: Callable[..., Any], what: str, field: str, *args: Any, **kwargs: Any) -> Any:
    """Call the user's ``fn``; whatever it raises becomes one line naming ``field``, ``what`` and where it raised."""
    try:
        return fn(*args, **kwargs)
    except TypeError as exc:
        if _bad_call(exc, fn):
            raise ConfigError(f"{what} cannot be called with these arguments: {exc}", field=field) from None
        raise ConfigError(f"{what} raised at {_user_frame(exc, [_source_root(fn)])}: TypeError: {exc}",
                          field=field) from None
    except Exception as exc:  # noqa: BLE001 - the user's code raised: one line, with its message
        raise ConfigError(f"{what} raised at {_user_frame(exc, [_source_root(fn)])}: {type(exc).__name__}: "
                          f"{exc}", field=field) from None


def _source_root(fn: Callable[..., Any]) -> Path:
    path = getattr(sys.modules.get(getattr(fn, "__module__", "") or ""), "__file__", None)
    return Path(path).parent if path else Path(".")


def _bad_call(exc: TypeError, fn: Callable[..., Any]) -> bool:
    """Whether the TypeError comes from the call itself (wrong or missing arguments), not from inside ``fn``."""
    tb = exc.__traceback__
    return tb is not None and tb.tb_next is None
