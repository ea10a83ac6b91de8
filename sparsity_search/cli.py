"""``sparsity-search`` command line: parse, call one library function, print through one formatter.

Every error becomes one line on stderr: a ``SparsitySearchError`` with its exit code (2 for bad input), anything
else (a file that cannot be written, a bug) with exit code 1. ``--debug`` or ``SPARSITY_SEARCH_DEBUG=1`` adds the
traceback. Output paths are checked while parsing (``output_paths``), before any work starts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any, Sequence

from .errors import ConfigError, SparsitySearchError
from .output_paths import output_file, output_folder
from .process_state import command_scope

DEBUG_ENV = "SPARSITY_SEARCH_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (``sparsity-search train: error: ...``) with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


# CLI flag -> config field, for the training flags the issue names; anything else goes through --set KEY=VALUE.
TRAIN_FLAGS: dict[str, tuple[str, type]] = {
    "--dataset": ("dataset", str), "--model": ("model", str), "--epochs": ("epochs", int),
    "--timesteps": ("timesteps", int), "--lambda-max": ("lambda_max", float), "--schedule": ("schedule", str),
    "--temperature": ("temperature", float), "--device": ("device", str), "--seed": ("seed", int),
    "--lr": ("lr", float), "--batch-size": ("batch_size", int), "--precision": ("precision", str),
    "--data-dir": ("data_dir", str), "--checkpoint-dir": ("checkpoint_dir", str),
}


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one spiking network and print its result row",
                       description="Train one SNN on cross_entropy + lambda(t) * spikes. Flags override --config.")
    p.add_argument("--config", metavar="FILE.yaml", help="YAML file of config fields (flags override it)")
    for flag, (field, kind) in TRAIN_FLAGS.items():
        p.add_argument(flag, dest=field, type=output_folder if flag == "--checkpoint-dir" else kind, default=None,
                       metavar=field.upper())
    p.add_argument("--download", action="store_true", default=None, help="download MNIST/CIFAR-10 if missing")
    p.add_argument("--resume", action="store_true", default=None, help="continue from --checkpoint-dir")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config field, value in YAML syntax (repeatable), e.g. --set hidden=[128,64]")
    p.add_argument("--json", metavar="OUT.json", type=output_file,
                   help="write the result row as JSON (its folder must exist; checked before training)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .config import load_config, load_yaml, parse_override
    from .progress import EpochProgress
    from .trainer import train

    overrides: dict[str, Any] = dict(parse_override(item) for item in args.set)
    for field in [f for f, _ in TRAIN_FLAGS.values()] + ["download", "resume"]:
        value = getattr(args, field)
        if value is not None:
            overrides[field] = value
    cfg = load_config(args.config, overrides)
    if cfg.encoding == "none" and "timesteps" not in {*overrides, *(load_yaml(args.config) if args.config else {})}:
        from .data import data_timesteps

        cfg = cfg.replace(timesteps=data_timesteps(cfg))  # the data's own time axis decides
    if args.resume and not cfg.checkpoint_dir:  # else it would silently train from scratch
        raise ConfigError("needs --checkpoint-dir (the folder of the run to continue)", field="--resume")
    with EpochProgress(cfg.epochs, enabled=not args.quiet) as progress:
        row = train(cfg, report=progress.update)
    from .output import print_result_row

    print_result_row(row)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(row, fh, indent=2)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sparsity-search",
                     description="Search the accuracy / spike-count trade-off of spiking neural networks.",
                     epilog=f"Errors are one line; --debug (or {DEBUG_ENV}=1) adds the Python traceback.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", default=False,
                        help=f"show the traceback of an error (also {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    from .commands import add_study_commands

    add_study_commands(sub)
    for command in sub.choices.values():  # --debug after the command works too (SUPPRESS: no default to clobber)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _debug_from_env() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def describe(exc: BaseException) -> str:
    """One line for an error the library did not turn into a ``SparsitySearchError``."""
    if isinstance(exc, OSError) and exc.strerror:
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        text = f"{where}: {exc.strerror}" if where else exc.strerror
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())  # messages of yaml, pandas or pyarrow span lines: one line on the terminal


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code. Many calls can share a process (``process_state``)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # a usage error (one line, printed; 2) or --help (0)
        return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    debug = args.debug or _debug_from_env()
    prefix = f"sparsity-search {args.command}"
    try:
        with command_scope(args.verbose):
            return args.func(args)
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `sparsity-search pareto x | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001 - the one place every error becomes one line (or a traceback)
        if debug:
            traceback.print_exc()
        if isinstance(exc, SparsitySearchError):
            print(f"{prefix}: error: {exc}", file=sys.stderr)
            return exc.exit_code
        hint = "" if debug else f" (--debug or {DEBUG_ENV}=1 shows the traceback)"
        print(f"{prefix}: error: {describe(exc)}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
